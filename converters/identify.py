"""Is a file the model a zoo entry names? Asked before a hash is recorded as trusted (`weights.fetch`
takes `problem` as its `identify_file`).

The official release publishes no checksums, so the first fetch of its files decides which hash is
"right" for every later fetch. A renamed JPEG, a truncated download or a mirror's HTML error page
must not become that hash: the file has to be recognised from its content as the entry's format,
hold the entry's backbone and kind, and load strictly (every key and shape, finite weights).
Upstream's ONNX graphs name no weights, so no state dict (and no backbone) can be read from them:
those are checked as ONNX models of the contract (parsed and checked, inputs src and bgr, outputs
pha and fgr first, finite initializers), and the record says so.
"""
from pathlib import Path
from typing import Optional

from bgmv2.weights.registry import ModelEntry


def problem(path: Path, entry: ModelEntry) -> Optional[str]:
    """None when `path` is `entry`'s model; else what it is instead, in a sentence."""
    import numpy as np
    import torch

    from bgmv2 import converters
    from bgmv2.converters.detection import content_kind
    from bgmv2.pytorch_impl import file_kinds
    from bgmv2.pytorch_impl.checkpoint import state_problem
    try:
        fmt = converters.detect(path)
    except converters.ConversionError:
        try:
            kind = content_kind(path)
        except converters.ConversionError as error:
            return str(error)
        return f"it is {file_kinds.with_article(kind)}"
    if fmt != entry.format:
        return f"it is a {fmt} file, not {entry.format}"
    if fmt == "onnx":
        return onnx_problem(path)
    try:
        spec = converters.read(path, fmt)
    except converters.ConversionError as error:
        return f"it does not load: {error}"
    except ImportError as error:  # e.g. onnx for an ONNX entry
        return f"it cannot be checked without {error.name or 'a missing package'} (pip install -e '.[dev]')"
    return state_problem({key: torch.from_numpy(np.array(value)) for key, value in spec.state.items()}, entry)


def onnx_problem(path: Path) -> Optional[str]:
    """None for an ONNX model of the matting contract with finite weights; else what is wrong."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return "it cannot be checked without onnx (pip install -e '.[onnx]')"
    import numpy as np
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as error:  # noqa: BLE001 - an untrusted file: only the reason leaves
        return f"it does not parse as an ONNX model ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if sorted(inputs) != ["bgr", "src"] or outputs[:2] != ["pha", "fgr"]:
        return f"it is an ONNX model with inputs {inputs} and outputs {outputs}, not src, bgr -> pha, fgr, ..."
    bad = [t.name for t in model.graph.initializer
           if t.data_type in (1, 10, 11, 16) and not np.isfinite(numpy_helper.to_array(t)).all()]
    if bad:
        return f"its weights hold NaN or infinity: {', '.join(bad[:12])}"
    return None
