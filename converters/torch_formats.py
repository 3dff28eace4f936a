"""PyTorch-side formats: state dicts (`.pth`, safetensors), TorchScript and `torch.export` (`.pt2`).

Each has `read(path) -> ModelSpec` (weights in the official layout, knobs and metadata the file
carries), `write(spec, path, metadata, precision, ...)` and `load(path, **knobs) -> Runner`.
Inputs are NCHW. Reading never executes pickled Python: state dicts go through
`torch.load(weights_only=True)` (via `pytorch_impl`), TorchScript through `torch.jit.load` (C++,
TorchScript's own restricted unpickler), `.pt2` through `torch.export.load`.
"""
import contextlib
import io
import json
import os
import zipfile
from typing import Dict, Optional

import numpy as np

from . import meta as meta_mod
from .errors import ConversionError, first_line
from .formats import OUTPUTS_BASE, OUTPUTS_REFINE
from .meta import ModelSpec
from .pt2_safety import check_pt2
from .runner import Runner

META_FILE = "bgmv2.json"


# -- shared ---------------------------------------------------------------------------------------
def torch_state(state: Dict[str, np.ndarray], dtype=None):
    import torch
    out = {}
    for key, value in state.items():
        tensor = torch.from_numpy(np.array(value, order="C"))  # keeps 0-d arrays 0-d
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor
    return out


def numpy_state(state) -> Dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        out[key] = value.numpy().copy()
    return out


def precision_of(state) -> str:
    import torch
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    return "fp16" if dtypes == {torch.float16} else "fp32"


def spec_from_torch_state(state, source: str, metadata: Dict[str, str], knobs: Dict[str, object]) -> ModelSpec:
    from bgmv2 import pytorch_impl
    from bgmv2.pytorch_impl.checkpoint import unwrap
    try:
        state = unwrap(state, source)
        info = pytorch_impl.describe(state, source)
        model = build_torch_model_from(state, info, source)  # strict check of every key and shape
    except pytorch_impl.CheckpointError as error:
        raise ConversionError(str(error)) from None
    state = {key: state[key] for key in model.state_dict()}  # the official order (safetensors sorts keys)
    del model
    return ModelSpec(numpy_state(state), info.kind, info.backbone, info.refine_kernel_size, dict(knobs),
                     precision_of(state), dict(metadata))


def build_torch_model_from(state, info, source):
    from bgmv2 import pytorch_impl
    return pytorch_impl.load_model(state, kind=info.kind, backbone=info.backbone)


def torch_model(spec: ModelSpec, knobs: Optional[Dict[str, object]] = None, precision: str = "fp32",
                static_shapes: bool = False):
    """The eager PyTorch model of `spec` (eval mode) with `knobs` (default: the spec's)."""
    import torch
    from bgmv2 import pytorch_impl
    options = {}
    if spec.kind == "refine":
        options = dict(spec.knob_values() if knobs is None else knobs)
        if static_shapes:
            options["refine_static_shapes"] = True
    try:
        model = pytorch_impl.load_model(torch_state(spec.state), kind=spec.kind, backbone=spec.backbone, **options)
    except (pytorch_impl.CheckpointError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot build the PyTorch model: {error}") from None
    return model.to(torch.float16) if precision == "fp16" else model


TORCH_PRECISIONS = ("fp32", "fp16", "bf16")


def torch_dtype(precision: str):
    import torch
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}[precision]


def check_precision(path: str, precision: Optional[str], fixed: Optional[str] = None) -> str:
    """The precision a PyTorch runner computes in: `precision` (fp32, fp16, bf16) or the file's own;
    a file whose precision is fixed (`fixed`: a .pt2 program) refuses another."""
    if precision is None:
        return fixed or "fp32"
    if precision not in TORCH_PRECISIONS:
        raise ConversionError(f"precision {precision!r}; PyTorch runs {', '.join(TORCH_PRECISIONS)}")
    if fixed is not None and precision != fixed:
        raise ConversionError(f"{path} computes in {fixed}, fixed when it was exported; convert it again with "
                              f"--precision {precision} (or leave the precision out).")
    return precision


def torch_runner(model, fmt: str, path: str, metadata: Dict[str, str], precision: str = "fp32", device: str = "cpu",
                 any_size: bool = False) -> Runner:
    """A PyTorch module (eager, scripted, or an exported program's) as the Runner: moved to `device`,
    computing in `precision`, called under `torch.inference_mode`."""
    import torch
    dtype = torch_dtype(precision)
    model = model.to(device) if device != "cpu" else model
    if fmt != "pt2" and precision != "fp32":
        model = model.to(dtype)

    def run(src, bgr):
        with torch.inference_mode():
            return model(src.to(dtype), bgr.to(dtype))

    outputs = OUTPUTS_REFINE if is_refine(model) else OUTPUTS_BASE
    kind = {"torchscript": "TorchScript", "pt2": "torch.export program"}.get(fmt, "eager")
    return Runner(run, fmt, path, outputs, "NCHW", metadata, precision, model, any_size, device=device,
                  runtime="torch", engine=f"PyTorch {torch.__version__.split('+')[0]} {kind}", takes="torch")


def is_refine(model) -> bool:
    """Whether a PyTorch module (eager, scripted production wrapper, exported program) has the refiner."""
    from bgmv2.pytorch_impl import MattingBase, MattingRefine
    if isinstance(model, MattingRefine):
        return True
    if isinstance(model, MattingBase):
        return False
    names = [name for name, _ in model.named_parameters()]
    return any(".refiner." in f".{n}" or n.startswith("refiner.") for n in names)


def spec_runner(spec: ModelSpec, fmt: str, path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
                precision: Optional[str] = None, kind: Optional[str] = None) -> Runner:
    """The weights of `spec` in PyTorch eager with `knobs` over the spec's own: the runner of every
    format that holds weights and no program (state dicts, and formats added beside them).
    `kind="base"`: the base network alone (of MattingRefine's weights too)."""
    if kind == "base":
        model = base_model(spec)
    else:
        model = torch_model(spec, {**spec.knob_values(), **(knobs or {})} if spec.kind == "refine" else None)
    return torch_runner(model, fmt, path, dict(spec.metadata), check_precision(path, precision), device)


def base_model(spec: ModelSpec):
    """The MattingBase of `spec`'s weights (a MattingRefine's without its refiner), eval mode."""
    from bgmv2 import pytorch_impl
    state = {k: v for k, v in torch_state(spec.state).items() if not k.startswith("refiner.")}
    try:
        return pytorch_impl.load_model(state, kind="base", backbone=spec.backbone)
    except (pytorch_impl.CheckpointError, ValueError) as error:
        raise ConversionError(f"cannot build the base network: {error}") from None


def zip_member(path: str, suffix: str) -> Optional[bytes]:
    """The bytes of the first zip member ending with `suffix`, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(suffix):
                    return archive.read(name)
    except Exception:  # noqa: BLE001 - unreadable archives are reported by the loader
        return None
    return None


def wrap_errors(path: str, fmt: str, error: BaseException) -> ConversionError:
    from bgmv2 import pytorch_impl
    if isinstance(error, ConversionError):
        return error
    if isinstance(error, pytorch_impl.CheckpointError):
        return ConversionError(str(error))
    return ConversionError(f"{path} looks like {fmt} but cannot be read ({first_line(error)}); it is probably truncated "
                           "or corrupt: fetch it again, or re-create it with `bgmv2 convert`.")


# -- .pth and .safetensors ------------------------------------------------------------------------
def read_state_file(path: str, fmt: str) -> ModelSpec:
    from bgmv2 import pytorch_impl
    from bgmv2.pytorch_impl import file_kinds
    try:
        state = pytorch_impl.read_state_dict(path)
        metadata = {}
        if fmt == "safetensors":
            metadata = meta_mod.unprefixed(file_kinds.safetensors_metadata(path))
        else:
            raw = zip_member(path, "/" + META_FILE)
            metadata = meta_mod.from_json(raw) if raw else {}
        return spec_from_torch_state(state, path, metadata, meta_mod.knobs_from_metadata(metadata, path))
    except Exception as error:  # noqa: BLE001 - untrusted file: only our error leaves
        raise wrap_errors(path, fmt, error) from None


def write_state_file(spec: ModelSpec, path: str, metadata: Dict[str, str], precision: str, fmt: str) -> None:
    import torch
    state = torch_state(spec.state, torch.float16 if precision == "fp16" else None)
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(state, path, metadata=meta_mod.prefixed(metadata))
        return
    torch.save(state, path)
    # A record beside data.pkl: torch.load ignores it, `--info` reads it.
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/")[0]
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{prefix}/{META_FILE}", meta_mod.to_json(metadata))


def load_state_file(path: str, fmt: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
                    precision: Optional[str] = None) -> Runner:
    return spec_runner(read_state_file(path, fmt), fmt, path, knobs, device, precision)


# -- TorchScript ----------------------------------------------------------------------------------
def production_class():
    """`pytorch_impl.MattingRefineProduction` with the metadata as a TorchScript attribute."""
    from bgmv2.pytorch_impl import MattingRefineProduction

    class MattingRefineProductionWithMetadata(MattingRefineProduction):
        bgmv2_metadata: str

        def __init__(self, model, metadata: str):
            super().__init__(model, any_size=True)
            self.bgmv2_metadata = metadata

    return MattingRefineProductionWithMetadata


def write_torchscript(spec: ModelSpec, path: str, metadata: Dict[str, str], precision: str) -> None:
    """The production wrapper (MattingBase: `MattingBaseAnySize`) with `any_size` on: any frame size
    is padded to a multiple of 4 and cropped back inside the module, as in every other format."""
    import torch
    from bgmv2.pytorch_impl.torchscript import MattingBaseAnySize
    model = torch_model(spec, precision=precision)
    text = meta_mod.to_json(metadata)
    if spec.kind == "refine":
        scripted = torch.jit.script(production_class()(model, text).eval())
    else:
        scripted = torch.jit.script(MattingBaseAnySize(model).eval())
    scripted.save(path, _extra_files={META_FILE: text})


def read_torchscript_module(path: str):
    from bgmv2 import pytorch_impl
    try:
        return pytorch_impl.load_torchscript(path)
    except Exception as error:  # noqa: BLE001
        raise wrap_errors(path, "a TorchScript archive", error) from None


def torchscript_knobs(module, path: str = "the TorchScript archive") -> Dict[str, object]:
    knobs = {}
    for name in meta_mod.KNOBS:
        if hasattr(module, name):
            try:
                knobs[name] = meta_mod.parse_knob(name, getattr(module, name))
            except ValueError as error:
                raise ConversionError(f"{path}: its knob attributes hold a value the model refuses: {error}") from None
    return knobs


def read_torchscript(path: str) -> ModelSpec:
    module = read_torchscript_module(path)
    raw = zip_member(path, "/extra/" + META_FILE)
    metadata = meta_mod.from_json(raw) if raw else {}
    try:
        state = module.state_dict()
        spec = spec_from_torch_state(state, path, metadata, torchscript_knobs(module, path))
    except Exception as error:  # noqa: BLE001
        raise wrap_errors(path, "a TorchScript archive", error) from None
    spec.precision = precision_of(state)
    return spec


def load_torchscript(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
                     precision: Optional[str] = None) -> Runner:
    """The scripted module itself; `knobs` are set as its attributes (the production wrapper's)."""
    module = read_torchscript_module(path)
    raw = zip_member(path, "/extra/" + META_FILE)
    metadata = meta_mod.from_json(raw) if raw else {}
    for name, value in (knobs or {}).items():
        if not hasattr(module, name):
            raise ConversionError(f"{path}: this TorchScript module has no knob {name!r} (a MattingBase, or not a "
                                  "production wrapper); convert it with the knob instead.")
        setattr(module, name, meta_mod.parse_knob(name, value))
    precision = check_precision(path, precision) if precision else precision_of(module.state_dict())
    return torch_runner(module, "torchscript", path, metadata, precision, device)


# -- torch.export (.pt2) --------------------------------------------------------------------------
def export_program(spec: ModelSpec, precision: str = "fp32", sampling_variant: str = "static", topk_limit=None,
                   channel_multiple: int = 0):
    """`torch.export` of the model with dynamic batch, height and width (see `exportable`)."""
    import torch
    from .exportable import TENSORRT_TOPK_LIMIT, Exportable, dynamic_shapes, example_inputs
    model = torch_model(spec, precision=precision)
    wrapper = Exportable(model, sampling_variant, topk_limit=topk_limit or TENSORRT_TOPK_LIMIT,
                         channel_multiple=channel_multiple).eval()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    # Size-oblivious reasoning: no 0/1 specialisation of sizes, so one program serves every size.
    with torch.fx.experimental._config.patch(backed_size_oblivious=True), quiet():
        return torch.export.export(wrapper, example_inputs(dtype=dtype), dynamic_shapes=dynamic_shapes())


@contextlib.contextmanager
def quiet():
    """Keep the exporters' progress prints, warnings and log lines off the console."""
    import logging
    import warnings
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def drop_metadata_asserts(program) -> None:
    """Remove `aten._assert_tensor_metadata` nodes (export's checks after `.to(dtype)`): they pin the
    device the program was traced on (cpu) and would fail on CUDA; they compute nothing."""
    import torch
    graph = program.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten._assert_tensor_metadata.default \
                and not node.users:
            graph.erase_node(node)
    graph.lint()
    program.graph_module.recompile()


def write_pt2(spec: ModelSpec, path: str, metadata: Dict[str, str], precision: str) -> None:
    import torch
    program = export_program(spec, precision)
    drop_metadata_asserts(program)
    torch.export.save(program, path, extra_files={META_FILE: meta_mod.to_json(metadata)})


def pt2_module_class():
    """An nn.Module running a loaded `.pt2` program whose `.to(device)` really moves it.

    torch.export records the device of the tensors a program creates (arange, zeros: cpu where it
    was exported); `GraphModule.to('cuda')` moves the weights but not those. `.to(device)` here
    rebuilds the module with `torch.export.passes.move_to_device_pass`, which rewrites them too (the
    same call makes a raw `torch.export.load` program run on CUDA)."""
    import torch
    from torch import nn

    class Pt2Module(nn.Module):
        def __init__(self, program):
            super().__init__()
            self.program = program
            self.device = torch.device("cpu")
            self.module = program.module()

        def to(self, *args, **kwargs):
            device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
            if dtype is not None:
                raise ValueError("a .pt2 program's precision is fixed at export; convert it again with --precision")
            if device is not None and torch.device(device) != self.device:
                from torch.export.passes import move_to_device_pass
                self.module = move_to_device_pass(self.program, torch.device(device)).module()
                self.device = torch.device(device)
            return self

        def cuda(self, device=None):
            return self.to("cuda" if device is None else torch.device("cuda", device))

        def cpu(self):
            return self.to("cpu")

        def forward(self, src, bgr):
            return self.module(src, bgr)

    return Pt2Module


_PROGRAMS: Dict[tuple, tuple] = {}  # (path, mtime, size) -> (program, metadata): loading is slow


def read_pt2_program(path: str):
    import torch
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    check_pt2(path)  # before torch.export.load, which would unpickle such payloads
    try:
        extra = {META_FILE: ""}
        program = torch.export.load(path, extra_files=extra)
    except Exception as error:  # noqa: BLE001
        raise wrap_errors(path, "a torch.export archive", error) from None
    result = program, meta_mod.from_json(extra[META_FILE]) if extra[META_FILE] else {}
    _PROGRAMS.clear()
    _PROGRAMS[key] = result
    return result


def read_pt2(path: str) -> ModelSpec:
    program, metadata = read_pt2_program(path)
    try:
        state = dict(program.state_dict)
        spec = spec_from_torch_state(state, path, metadata, meta_mod.knobs_from_metadata(metadata, path))
    except Exception as error:  # noqa: BLE001
        raise wrap_errors(path, "a torch.export archive", error) from None
    spec.precision = precision_of(state)
    return spec


def load_pt2(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
             precision: Optional[str] = None) -> Runner:
    """The program's module on `device` (moved with `move_to_device_pass`, see `pt2_module_class`)."""
    program, metadata = read_pt2_program(path)
    if knobs:
        raise ConversionError(f"{path}: the knobs of a .pt2 program are fixed when it is exported "
                              f"({', '.join(knobs)} asked); convert it again with them.")
    precision = check_precision(path, precision, fixed=precision_of(program.state_dict))
    module = pt2_module_class()(program)
    return torch_runner(module, "pt2", path, metadata, precision, device, any_size=True)


# -- metadata without loading the model -----------------------------------------------------------
def info(path: str, fmt: str) -> Dict[str, str]:
    from bgmv2.pytorch_impl import file_kinds
    if fmt == "safetensors":
        try:
            return meta_mod.unprefixed(file_kinds.safetensors_metadata(path))
        except Exception as error:  # noqa: BLE001
            raise wrap_errors(path, fmt, error) from None
    member = {"pth": "/" + META_FILE, "torchscript": "/extra/" + META_FILE, "pt2": "/extra/" + META_FILE}[fmt]
    raw = zip_member(path, member)
    return meta_mod.from_json(raw) if raw else {}


def refuse_unsafe_pickle(path: str) -> None:
    """ConversionError when the `.pth` at `path` is not a plain state dict the safe loader reads."""
    from bgmv2 import pytorch_impl
    try:
        pytorch_impl.read_state_dict(path)
    except pytorch_impl.CheckpointError as error:
        raise ConversionError(str(error)) from None


def foreign_safetensors_metadata(path: str) -> Dict[str, str]:
    """The `__metadata__` of a safetensors header written by others (e.g. the shipped model's training
    export), keys that clash with `info`'s own prefixed with `header_`."""
    from bgmv2.pytorch_impl import file_kinds
    try:
        raw = file_kinds.safetensors_metadata(path)
    except Exception:  # noqa: BLE001 - an unreadable header was reported by torch_formats.info
        return {}
    return {(f"header_{k}" if k in ("file", "format", "content", "metadata") else str(k)): str(v)
            for k, v in raw.items()}
