"""ONNX files as users have them: one `.onnx`, or the `.onnx` plus external data files beside it (how
every model over 2 GB is stored, protobuf's limit, and a common choice below it).

The graph is parsed without its data (`parse`), the data files are checked before anything is loaded
(`check_external_data`: each file present, inside the model's folder and long enough for every
tensor that points into it), and so is the memory the weights need (`check_memory`). Weights are
read with the model's folder as the base (`load_data`), and ONNX Runtime is given the model's path,
never serialised bytes, which cannot hold more than 2 GB or external data. Every problem is a
`ConversionError` naming the file and the fix.
"""
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional

from .errors import ConversionError, first_line

GIB = 1024 ** 3


@dataclass
class ExternalTensor:
    name: str
    location: str  # as written in the model, relative to its folder
    offset: int
    length: int  # bytes the tensor needs


def require_onnx():
    try:
        import onnx
        return onnx
    except ImportError:
        raise ConversionError("the ONNX formats need the `onnx` package: pip install 'bgmv2-zoo[onnx]'.") from None


def parse(path: str):
    """The ModelProto of `path` without external data (never more than the .onnx file itself)."""
    onnx = require_onnx()
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as error:  # noqa: BLE001 - untrusted file: only our error leaves
        raise ConversionError(f"{path} looks like ONNX but cannot be parsed ({first_line(error)}); it is probably "
                              "truncated or corrupt: fetch it again, or export it again with `bgmv2 convert`."
                              ) from None


def all_tensors(model) -> Iterator:
    """Every TensorProto of the model: initializers and Constant-like attributes, subgraphs included."""
    def of_graph(graph):
        yield from graph.initializer
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                if attribute.HasField("g"):
                    yield from of_graph(attribute.g)
                for sub in attribute.graphs:
                    yield from of_graph(sub)
    yield from of_graph(model.graph)


def tensor_bytes(tensor) -> int:
    import numpy as np
    from onnx import helper
    count = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
    try:
        return count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except Exception:  # noqa: BLE001 - a type numpy lacks (4-bit, float8): one byte a value at least
        return count


def external_tensors(model) -> List[ExternalTensor]:
    """The tensors whose data lives in external files, with where it lies."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    found = []
    for tensor in all_tensors(model):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        length = int(info.length) if info.length else tensor_bytes(tensor)
        found.append(ExternalTensor(tensor.name, info.location or "", int(info.offset or 0), length))
    return found


def check_external_data(path: str, model) -> int:
    """Bytes of external data `model` (parsed from `path`) needs; ConversionError when a data file is
    missing, lies outside the model's folder or is shorter than a tensor that points into it."""
    tensors = external_tensors(model)
    if not tensors:
        return 0
    folder = os.path.dirname(os.path.abspath(path))
    files = {}
    for tensor in tensors:
        files.setdefault(tensor.location, []).append(tensor)
    total = 0
    for location, inside in files.items():
        where = os.path.normpath(os.path.join(folder, location))
        if not location or os.path.isabs(location) or not where.startswith(folder + os.sep):
            raise ConversionError(f"{path}: its external data file {location!r} (tensor {inside[0].name}) is not a "
                                  "file name inside the model's folder; save the model again with "
                                  "onnx.save_model(..., save_as_external_data=True, location='NAME.data').")
        if not os.path.isfile(where):
            raise ConversionError(f"{path} keeps {len(inside)} weight tensors in the external data file {location}, "
                                  f"which is missing beside it: copy the .onnx together with its data file(s) "
                                  f"({len(files)} in all).")
        size = os.path.getsize(where)
        end = max(tensor.offset + tensor.length for tensor in inside)
        if size < end:
            last = max(inside, key=lambda tensor: tensor.offset + tensor.length)
            raise ConversionError(f"{path}: its external data file {location} is cut short ({size:,} bytes; tensor "
                                  f"{last.name} needs bytes up to {end:,}): copy or download it again.")
        total += sum(tensor.length for tensor in inside)
    return total


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(path: str, needed: int) -> None:
    """ConversionError when the weights (`needed` bytes) do not fit the memory available now."""
    free = available_memory()
    if free is not None and needed > free:
        raise ConversionError(f"{path} needs {needed / GIB:.1f} GiB of memory for its weights, more than the "
                              f"{free / GIB:.1f} GiB available on this machine: run it on a machine with more memory "
                              "(or close what uses it).")


def opened(path: str, check: bool = True):
    """(the ModelProto without external data, bytes of weights it needs): data files and memory checked,
    and with `check` the ONNX checker run on the path (large models and external data included)."""
    onnx = require_onnx()
    model = parse(path)
    external = check_external_data(path, model)
    if check:
        try:
            onnx.checker.check_model(path)
        except Exception as error:  # noqa: BLE001
            raise ConversionError(f"{path} looks like ONNX but does not pass the ONNX checker ({first_line(error)}); "
                                  "it is probably truncated or corrupt: fetch it again, or export it again with "
                                  "`bgmv2 convert`.") from None
    return model, os.path.getsize(path) + external


def load_data(model, path: str) -> None:
    """Read the external data of `model` (parsed from `path`) into it, from the model's folder."""
    from onnx.external_data_helper import load_external_data_for_model
    if not external_tensors(model):
        return
    try:
        load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: its external data cannot be read ({first_line(error)}); copy the .onnx "
                              "together with its data file(s) again.") from None


def data_files(path: str) -> List[str]:
    """The external data files of `path` (paths), in the order first used; [] for a one-file model."""
    seen: List[str] = []
    folder = os.path.dirname(os.path.abspath(path))
    for tensor in external_tensors(parse(path)):
        where = os.path.join(folder, tensor.location)
        if where not in seen:
            seen.append(where)
    return seen


SMALL = 64 * 1024  # external tensors up to this size are read into the graph for ONNX Runtime


def session_source(path: str, model, options) -> object:
    """What ONNX Runtime loads: the model's path; or, when small tensors (shapes, axes) lie in external
    data, which ONNX Runtime's shape inference cannot read there (it refuses the model), the graph with
    those read in, as bytes, and the model's folder set for the large ones (`options` gets the entry)."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data
    onnx = require_onnx()
    small = [t for t in all_tensors(model) if uses_external_data(t) and 0 < tensor_bytes(t) <= SMALL]
    if not small:
        return os.path.abspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in all_tensors(copy):
        if uses_external_data(tensor) and 0 < tensor_bytes(tensor) <= SMALL:
            load_external_data_for_tensor(tensor, folder)
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    return copy.SerializeToString()
