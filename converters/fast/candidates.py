"""The ways the fast path can run a PyTorch model, each built on demand for one input shape.

A `Candidate` has a name, the precision it computes in, and `build()`, which returns
`run(src, bgr) -> the model's output tuple` for float32 NCHW inputs on the model's device. Building may
take long (Inductor compiles on the first call, ONNX is exported once per model) and may fail; the
selector (`fast.runner`) then drops the candidate and says why.

- `eager`: the model as the apps run it (channels-last, float32): the reference and the fallback.
- `compile-bf16` / `compile-fp32` (CPU): `torch.compile` (Inductor, weights frozen: BatchNorm folded,
  oneDNN weights prepacked) of a copy with the static-shape refiner (no `nonzero`, one graph),
  channels-last; bf16 under `torch.autocast` (only on CPUs with native bf16: AVX512-BF16 / AMX).
- `lean-openvino-bf16|fp32` and `lean-bf16|fp32` (CPU): `lean.LeanMatting`, the refiner computing only
  the windows its patches need (same selection and layers, eager numbers within 1e-5), with the base
  network run by OpenVINO (`openvino_network`, bf16 or f32 inference precision) or by PyTorch (bf16 under
  `torch.autocast`, or fp32); in bf16 the backbone's stem stays float32. Data-dependent shapes, so thresholding runs fast too.
- `onnxruntime` (CPU): the model exported to ONNX (`static` variant) once per model and cached beside
  the choices, run by ONNX Runtime with graph optimisation `all`.
- `cuda-graph-fp16|bf16` and `compile-cuda-graph-fp16|bf16` (CUDA): a half-precision copy with the
  static-shape refiner, channels-last, the whole frame captured as one CUDA graph per input shape
  (`graphs.GraphedCall`); the second compiles with Inductor first (fused kernels), then captures.
"""
import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

Run = Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Candidate:
    name: str
    precision: str
    build: Callable[[], Run]


def static_copy(model: torch.nn.Module, dtype: Optional[torch.dtype] = None) -> torch.nn.Module:
    """A copy with the data-independent sampling path (same numbers), channels-last, in `dtype`."""
    clone = copy.deepcopy(model)
    if hasattr(clone, "refiner"):
        clone.refiner.static_shapes = True
    clone = clone.to(memory_format=torch.channels_last)
    return (clone.to(dtype) if dtype is not None else clone).eval()


def eager(model: torch.nn.Module) -> Candidate:
    return Candidate("eager", "fp32", lambda: model)


def cpu_bf16_unsupported() -> Optional[str]:
    """Why this CPU cannot run bf16 natively (None where it can: oneDNN reports AVX512-BF16 or AMX)."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (mkldnn)"
    try:
        supported = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        supported = False
    if not supported:
        return f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16 (AVX512-BF16 or AMX)"
    return None


def allow_recompiles(limit: int = 32) -> None:
    """Every input shape compiles anew (dynamic=False); Dynamo's default limit (8) would silently run
    eager from the ninth shape on (a folder of pictures of many sizes)."""
    import torch._dynamo.config as dynamo
    if getattr(dynamo, "recompile_limit", limit) < limit:
        dynamo.recompile_limit = limit


def cpu_compiled(model: torch.nn.Module, precision: str) -> Candidate:
    def build() -> Run:
        allow_recompiles()
        compiled = torch.compile(static_copy(model), dynamic=False, options={"freezing": True})
        if precision == "fp32":
            return compiled

        def run(src, bgr):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return compiled(src, bgr)
        return run
    return Candidate(f"compile-{precision}", precision, build)


def openvino_bf16_unsupported() -> Optional[str]:
    """Why OpenVINO's CPU plugin cannot compute in bf16 here (None where it can): the OpenVINO format's
    own check."""
    from bgmv2.converters.openvino_format import check_precision
    try:
        check_precision("bf16")
    except Exception as error:  # noqa: BLE001 - no bf16, or a plugin that cannot start: no bf16 candidate
        return str(error)
    return None


def lean(model: torch.nn.Module, precision: str, engine: str,
         converted: Optional[Callable[[], object]] = None) -> Candidate:
    """LeanMatting with the base network run by `engine` ("openvino" or "torch") in `precision`;
    `converted()` gives the OpenVINO model when candidates share one conversion."""
    def build() -> Run:
        from .lean import LeanMatting
        if engine == "openvino":
            from .openvino_network import OpenVinoNetwork
            network = OpenVinoNetwork(model, precision, torch.get_num_threads(), converted() if converted else None)
        elif precision == "bf16":
            def network(x):  # the stem in float32, as in openvino_network
                x1 = model.backbone.stem(x)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model.run_after_stem(x, x1)
        else:
            network = model.run_network
        return LeanMatting(model, network).eval()
    return Candidate(f"lean-{engine + '-' if engine != 'torch' else ''}{precision}", precision, build)


def shared_conversion(model: torch.nn.Module, model_id: Optional[str] = None) -> Callable[[], object]:
    """`openvino_network.convert(model)` done on the first call only, kept on disk per model
    (`$BGMV2_HOME/fast/openvino/<model id>.xml`, read back in well under a second where converting takes
    seconds; an unreadable cached file is converted again); a conversion that failed fails again at
    once for the next candidate."""
    done: list = []

    def converted():
        if not done:
            from .openvino_network import cached_conversion
            try:
                done.append(cached_conversion(model, openvino_path(model_id) if model_id else None))
            except Exception as error:  # noqa: BLE001 - the candidate that asked is dropped with it
                done.append(error)
        if isinstance(done[0], Exception):
            raise done[0]
        return done[0]
    return converted


def openvino_path(model_id: str) -> Path:
    from .cache import home
    return home() / "openvino" / f"{model_id}.xml"


def onnx_path(model_id: str) -> Path:
    from .cache import home
    return home() / "onnx" / f"{model_id}.onnx"


def onnx_runtime(source: str, knobs: Dict[str, object], model_id: str) -> Candidate:
    """ONNX Runtime on the model exported from `source` (the weights file) with `knobs`."""
    def build() -> Run:
        import numpy as np
        from bgmv2 import converters
        path = onnx_path(model_id)
        runner = None
        if path.exists():
            try:
                runner = converters.load(str(path), "onnx", threads=torch.get_num_threads())
            except converters.ConversionError:  # a cached export that no longer loads is made again
                path.unlink()
        if runner is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.stem}-{os.getpid()}.onnx")
            try:
                converters.convert(source, temporary, to="onnx", knobs=knobs, log=None)
                os.replace(temporary, path)
            finally:
                if temporary.exists():
                    temporary.unlink()
            runner = converters.load(str(path), "onnx", threads=torch.get_num_threads())
        names = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")

        def run(src, bgr):
            out = runner(np.ascontiguousarray(src.numpy()), np.ascontiguousarray(bgr.numpy()))
            return tuple(torch.from_numpy(np.asarray(out[name])) for name in names)
        return run
    return Candidate("onnxruntime", "fp32", build)


def cuda_graphed(model: torch.nn.Module, precision: str, compiled: bool, backend=None) -> Candidate:
    """The whole frame as a CUDA graph (optionally of Inductor's kernels), inputs cast inside the graph."""
    from .graphs import CudaGraphs, GraphedCall
    dtype = DTYPES[precision]

    def build() -> Run:
        half = static_copy(model, dtype)
        if compiled:
            allow_recompiles()
        net = torch.compile(half, dynamic=False) if compiled else half

        def frame(src, bgr):
            with torch.inference_mode():
                return net(src.to(dtype), bgr.to(dtype))
        device = next(model.parameters()).device
        return GraphedCall(frame, backend or CudaGraphs(device))
    return Candidate(("compile-" if compiled else "") + f"cuda-graph-{precision}", precision, build)


EXPENSIVE_FRAMES = 200  # jobs shorter than this do not repay an Inductor compile or an ONNX export (20-60 s)


def for_device(model: torch.nn.Module, device: torch.device, precision: Optional[str], source: str,
               knobs: Dict[str, object], model_id: str, frames: Optional[float] = None) -> Sequence[Candidate]:
    """The candidates worth trying here, best guess first (eager is added by the selector).

    On a CPU the default (`precision` None) is float32 only: the lean refiner selects the same cells
    as eager from the same float32 error map, so its matte is eager's on every frame by construction;
    bf16 (faster where the CPU has it, and checked, but its cell selection can differ from eager's on
    frames the checks do not see) runs only when asked. Candidates that take long to build (Inductor,
    the ONNX export) are tried only for jobs of at least `EXPENSIVE_FRAMES` frames.
    Compiled, captured and exported models need shapes fixed ahead of time (`sampling` refines k
    cells, `full` every cell); `thresholding` refines a data-dependent number of cells, which only the
    lean candidates (CPU) take."""
    refiner = getattr(model, "refiner", None)
    static = refiner is None or refiner.mode != "thresholding"
    if device.type == "cuda":
        precision = precision or "fp16"
        return [cuda_graphed(model, precision, True), cuda_graphed(model, precision, False)] if static else []
    bf16 = precision == "bf16" and cpu_bf16_unsupported() is None
    fp32 = precision in (None, "fp32")
    long_job = frames is not None and frames >= EXPENSIVE_FRAMES
    found = []
    try:
        from bgmv2.converters.openvino_core import openvino
        openvino()  # ImportError without it (imported without telemetry)
        converted = shared_conversion(model, model_id)
        if precision == "bf16" and openvino_bf16_unsupported() is None:
            found.append(lean(model, "bf16", "openvino", converted))
        if fp32:
            found.append(lean(model, "fp32", "openvino", converted))
    except ImportError:
        pass
    found += [lean(model, name, "torch") for name, wanted in (("bf16", bf16), ("fp32", fp32)) if wanted]
    if static and bf16 and long_job:
        found.append(cpu_compiled(model, "bf16"))
    elif static and fp32 and long_job:
        found.append(cpu_compiled(model, "fp32"))
    if static and fp32 and refiner is not None and long_job:  # the ONNX export is of MattingRefine
        try:
            import onnxruntime  # noqa: F401
            found.append(onnx_runtime(source, knobs, model_id))
        except ImportError:
            pass
    return found
