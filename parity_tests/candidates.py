"""The reference and the candidates of a parity check: how each model file is run, where, with which knobs.

Reference: the weights of `--reference` (any format `converters.read` reads: state dicts, TorchScript,
`.pt2`, ONNX from PyTorch, Keras weights, SavedModel) in PyTorch eager, fp32, on the CPU: one truth
for every candidate, every precision and every device.

Candidates run through the converters' adapters (`converters.load`), the same code the apps and
every conversion use, on the chosen device. A few `run_as` modes run a file another way: Keras weights
eagerly (`keras-eager`) or under a `mixed_float16` policy (`keras-mixed_float16`), and a state dict in
PyTorch eager fp16 (`eager-fp16`).

Knobs (backbone_scale, refine_mode, refine_sample_pixels, refine_threshold, refine_prevent_oversampling),
lowest priority first: the model's defaults; what the reference file records; what the candidate
records (bgmv2 metadata, the attributes of a production TorchScript file, or the zoo preset of a
file the zoo knows by name); the user's flags. The reference runs with the result. Candidates whose
knobs are set at load time (state dicts, TorchScript, Keras weights) run with it too; the others
(ONNX, SavedModel, .pt2) compute with what is fixed in the file, so a flag that contradicts the file
makes the check fail, which is how a file exported with other knobs than claimed is caught.
"""
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np


def detect_format(path: str) -> str:
    from bgmv2.converters.detection import detect
    return detect(path)

KNOB_ORDER = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold",
              "refine_prevent_oversampling")
KNOBS_AT_LOAD = ("pth", "safetensors", "torchscript", "keras")
RUN_AS = ("file", "keras-eager", "keras-mixed_float16", "eager-fp16", "openvino", "openvino-bf16")


class ParityError(ValueError):
    """A check that cannot be run as asked; the message says why and what to do."""


# -- devices ----------------------------------------------------------------------------------------
def runtime_of(fmt: str, run_as: str = "file") -> str:
    """The runtime family that runs a format: torch, onnxruntime, tensorflow, tflite or openvino."""
    if run_as.startswith("openvino") or fmt in ("openvino", "tflite"):
        return "openvino" if fmt != "tflite" else "tflite"
    if run_as.startswith("keras") or fmt in ("keras", "savedmodel"):
        return "tensorflow"
    if fmt == "onnx":
        return "onnxruntime"
    return "torch"


def cuda_unavailable(runtime: str) -> Optional[str]:
    """None when `runtime` can run on a CUDA GPU here, else the reason it cannot."""
    try:
        if runtime == "torch":
            import torch
            if not torch.cuda.is_available():
                build = "a CPU-only build" if torch.version.cuda is None else "built for CUDA but sees no GPU"
                return f"no CUDA GPU for PyTorch (torch {torch.__version__} is {build})"
            return None
        if runtime == "onnxruntime":
            import onnxruntime
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return (f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
                        "(install onnxruntime-gpu on a machine with a GPU)")
            import torch
            if not torch.cuda.is_available():
                return "no CUDA GPU visible (onnxruntime-gpu is installed, but PyTorch sees no GPU)"
            return None
        if runtime == "tensorflow":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow as tf
            if not tf.config.list_physical_devices("GPU"):
                return f"TensorFlow {tf.__version__} sees no GPU (tensorflow-cpu, or no CUDA GPU)"
            return None
        if runtime in ("tflite", "openvino"):
            return f"{runtime} runs on the CPU here (no GPU runner in bgmv2)"
    except ImportError as error:
        return f"{runtime} is not installed ({error})"
    return f"unknown runtime {runtime!r}"


def exact_fp32_on_gpus() -> None:
    """fp32 means fp32 on GPUs too: no TF32 in PyTorch's and TensorFlow's matmuls and convolutions."""
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    except ImportError:
        pass
    try:
        import sys
        if "tensorflow" in sys.modules:
            sys.modules["tensorflow"].config.experimental.enable_tensor_float_32_execution(False)
    except Exception:  # noqa: BLE001 - only a setting
        pass


def tf32_setting(device: str) -> str:
    """The TF32 state the candidates ran with, in words (reports state it)."""
    if not device.startswith("cuda"):
        return "not used (CPU)"
    try:
        import torch
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    except ImportError:
        return "unknown (no PyTorch)"
    state = "off" if not (matmul or cudnn) else "ON"
    return (f"{state} (PyTorch matmul allow_tf32={matmul}, cuDNN allow_tf32={cudnn}; ONNX Runtime CUDA use_tf32=0; "
            "TensorFlow TF32 execution disabled)")


# -- knobs ------------------------------------------------------------------------------------------
def defaults() -> Dict[str, object]:
    from bgmv2.converters.meta import KNOBS
    return {name: default for name, (_, default) in KNOBS.items()}


def clean_knobs(knobs: Optional[Dict[str, object]]) -> Dict[str, object]:
    from bgmv2.converters.api import check_knobs
    from bgmv2.converters import ConversionError
    try:
        return check_knobs(dict(knobs or {}))
    except ConversionError as error:
        raise ParityError(str(error)) from None


def resolve_knobs(reference: Dict[str, object], candidate: Dict[str, object], flags: Dict[str, object],
                  candidate_source: str = "candidate") -> Tuple[Dict[str, object], Dict[str, str]]:
    """(knobs, where each came from): defaults < reference file < candidate file < flags."""
    knobs, sources = defaults(), {name: "default" for name in KNOB_ORDER}
    for values, source in ((reference, "reference"), (candidate, candidate_source), (flags, "flag")):
        for name, value in (values or {}).items():
            if name in knobs and value is not None:
                knobs[name], sources[name] = value, source
    return knobs, sources


def zoo_preset_knobs(path: str) -> Dict[str, object]:
    """The zoo preset (hd / 4k knobs) of a file the zoo knows by its file name, else {}."""
    try:
        from bgmv2 import weights
        registry = weights.load_registry()
    except Exception:  # noqa: BLE001 - no zoo, no preset
        return {}
    for entry in registry.by_file(os.path.basename(os.path.normpath(path))):
        preset = registry.presets.get(entry.preset or "", {})
        return {k: v for k, v in preset.items() if k in KNOB_ORDER}
    return {}


def resolve_path(name: str) -> str:
    """A path, or a zoo name resolved to its local file (`converters.resolve_model`)."""
    from bgmv2.converters import ConversionError
    from bgmv2.converters.resolve import resolve_model
    try:
        return resolve_model(name)
    except ConversionError as error:
        raise ParityError(str(error)) from None


# -- the reference ----------------------------------------------------------------------------------
class Reference:
    """The reference model: the weights of a file in PyTorch eager fp32 on the CPU, per knob set."""

    def __init__(self, path: str, spec=None):
        from bgmv2 import converters
        self.path = path
        try:
            self.spec = spec if spec is not None else converters.read(path)
        except converters.ConversionError as error:
            raise ParityError(f"reference: {error}") from None
        self.format = None if spec is not None else detect_format(path)
        self.recorded = {k: v for k, v in self.spec.knobs.items() if k in KNOB_ORDER}
        if not self.recorded and self.format not in (None, "onnx", "savedmodel"):
            self.recorded = zoo_preset_knobs(path)
        self.models: Dict[tuple, object] = {}
        self.outputs: Dict[tuple, tuple] = {}  # (knobs, probe id, precision, weights) -> (probe, outputs)
        self.noises: Dict[tuple, tuple] = {}  # (knobs, probe ids, precision) -> (probes, ParityMetrics)
        torch_dtypes()

    @property
    def backbone(self) -> str:
        return self.spec.backbone

    def runner(self, knobs: Dict[str, object]):
        from bgmv2.converters.torch_formats import eager_runner, torch_model
        key = tuple(sorted(knobs.items()))
        if key not in self.models:
            model = torch_model(self.spec, knobs if self.spec.kind == "refine" else None)
            self.models[key] = eager_runner(model.eval(), "pth", self.path, {}, "fp32")
        return self.models[key]

    def run(self, knobs: Dict[str, object], probe) -> Dict[str, np.ndarray]:
        """Reference outputs for a probe (cached: every candidate with these knobs is compared to them)."""
        return self.run_as(knobs, probe, "fp32")

    def run_as(self, knobs: Dict[str, object], probe, precision: str = "fp32",
               weights: Optional[str] = None) -> Dict[str, np.ndarray]:
        """The reference model computing in `precision` (fp64, fp32, fp16, bf16; outputs as float32 or
        float64), optionally with its weights rounded to `weights` (fp16 / bf16) first; cached per probe."""
        key = (tuple(sorted(knobs.items())), id(probe), precision, weights)
        if key not in self.outputs:  # the probe is kept with its outputs, so its id is not reused meanwhile
            from .reference_cache import cached_run  # and kept on disk across runs
            self.outputs[key] = (probe, cached_run(self.spec, knobs, probe, precision, weights,
                                                   lambda: self.model_as(knobs, precision, weights)(probe.src, probe.bgr)))
        return self.outputs[key][1]

    def model_as(self, knobs: Dict[str, object], precision: str, weights: Optional[str] = None):
        if precision == "fp32" and weights is None:
            return self.runner(knobs)
        import torch
        from bgmv2.converters.torch_formats import torch_model
        key = (tuple(sorted(knobs.items())), precision, weights)
        if key not in self.models:
            model = torch_model(self.spec, knobs if self.spec.kind == "refine" else None).eval()
            if weights:
                with torch.no_grad():
                    for tensor in list(model.parameters()) + list(model.buffers()):
                        if tensor.is_floating_point():
                            tensor.copy_(tensor.to(TORCH_DTYPES[weights]).to(tensor.dtype))
            dtype = TORCH_DTYPES[precision]
            model = model.to(dtype)
            names = self.runner(knobs).outputs

            def run(src, bgr):
                with torch.inference_mode():
                    out = model(torch.from_numpy(src).to(dtype), torch.from_numpy(bgr).to(dtype))
                keep = torch.float64 if dtype == torch.float64 else torch.float32
                return {name: o.to(keep).numpy() for name, o in zip(names, out)}
            self.models[key] = run
        return self.models[key]

    def noise(self, knobs: Dict[str, object], probes, precision: str = "fp32"):
        """How far the reference computing in `precision` lies from its own float64 result (`ParityMetrics`,
        alpha and foreground outside the cells whose selection flips): the scale tolerances follow."""
        from .metrics import ParityMetrics
        key = (tuple(sorted(knobs.items())), tuple(id(p) for p in probes), precision)
        if key not in self.noises:
            found = ParityMetrics()
            for probe in probes:
                found.add(self.run_as(knobs, probe, "fp64"), self.run_as(knobs, probe, precision), knobs, 0.0)
            self.noises[key] = (list(probes), found)
        return self.noises[key][1]


TORCH_DTYPES = {}


def torch_dtypes():
    import torch
    TORCH_DTYPES.update(fp64=torch.float64, fp32=torch.float32, fp16=torch.float16, bf16=torch.bfloat16)


# -- candidates -------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """A model file loaded to run on a device, with the knobs it records."""
    label: str
    path: str
    format: str
    run_as: str
    device: str
    runtime: str
    precision: str
    runner: Callable
    recorded: Dict[str, object]
    recorded_from: str
    knobs_at_load: bool
    metadata: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    load_seconds: float = 0.0
    min_cells: int = 0  # 4x4 cells every picture needs (a TopK k fixed in the file)


def recorded_knobs(path: str, fmt: str, metadata: Dict[str, str]) -> Tuple[Dict[str, object], str]:
    """The knobs a file records, and where they were found (without running it)."""
    from bgmv2.converters.meta import knobs_from_metadata
    found = {k: v for k, v in knobs_from_metadata(metadata).items() if k in KNOB_ORDER}
    if found:
        return found, "bgmv2 metadata"
    if fmt == "torchscript":
        from bgmv2 import converters
        from bgmv2.converters.torch_formats import torchscript_knobs
        found = {k: v for k, v in torchscript_knobs(converters.load(path, fmt).model).items() if k in KNOB_ORDER}
        if found:
            return found, "TorchScript attributes"
    found = zoo_preset_knobs(path)
    if found:
        return found, "zoo preset"
    return {}, "none"


def runtime_name(fmt: str, run_as: str, device: str, runner=None) -> str:
    if getattr(runner, "runtime", None):  # runners that say what runs them (TFLite, OpenVINO)
        return runner.runtime
    if run_as == "keras-eager":
        return "TensorFlow eager (Keras)"
    if run_as == "keras-mixed_float16":
        return "TensorFlow tf.function (Keras, mixed_float16)"
    if fmt == "keras":
        return "TensorFlow tf.function (Keras)"
    if fmt == "savedmodel":
        return "TensorFlow SavedModel"
    if fmt == "onnx":
        providers = runner.model.get_providers() if runner is not None and hasattr(runner.model, "get_providers") else []
        return f"ONNX Runtime ({providers[0] if providers else 'CPUExecutionProvider'})"
    if fmt == "torchscript":
        return "TorchScript"
    if fmt == "pt2":
        return "torch.export program"
    return "PyTorch eager" + (" fp16" if run_as == "eager-fp16" else "")


def onnx_providers(device: str):
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def torch_on_device(runner, device: str):
    """A converters Runner of a PyTorch-side format, moved to `device`."""
    if device == "cpu":
        return runner
    return module_on_device(runner, runner.model.to(device), device)


def module_on_device(runner, model, device: str):
    """`runner` with its PyTorch `model` (already on `device`) called on inputs moved there."""
    import torch
    from bgmv2.converters.runner import Runner
    dtype = torch.float16 if runner.precision == "fp16" else torch.float32

    def run(src, bgr):
        with torch.inference_mode():
            out = model(torch.from_numpy(src).to(device, dtype), torch.from_numpy(bgr).to(device, dtype))
        torch.cuda.synchronize(device)
        return out

    return Runner(run, runner.format, runner.path, runner.outputs, runner.layout, runner.metadata,
                  runner.precision, model)


def pt2_module(path: str, device: str):
    """The module of a `.pt2` program with its graph and weights on `device` (see `pt2_on_device`)."""
    import torch
    program = torch.export.load(path)
    try:
        from torch.export.passes import move_to_device_pass
        program = move_to_device_pass(program, device)
    except ImportError:  # older PyTorch: parameters and buffers only
        pass
    return program.module().to(device)


def pt2_on_device(runner, device: str):
    """A `.pt2` program saved on the CPU, moved to `device`: `module().to()` moves parameters and buffers
    but not the devices written into the graph (constants, `arange(device=...)`), so the program itself
    is moved with `torch.export.passes.move_to_device_pass` first. `converters.load` has already
    checked the archive (no pickled payloads) before this second `torch.export.load`."""
    if device == "cpu":
        return runner
    return module_on_device(runner, pt2_module(runner.path, device), device)


def tf_on_device(runner, device: str):
    from bgmv2.converters.runner import Runner
    if device == "cpu":
        return runner
    import tensorflow as tf
    name = "/GPU:" + (device.split(":")[1] if ":" in device else "0")
    original = runner.fn

    def run(src, bgr):
        with tf.device(name):
            return original(src, bgr)

    return Runner(run, runner.format, runner.path, runner.outputs, runner.layout, runner.metadata,
                  runner.precision, runner.model)


def keras_runner(path: str, knobs: Dict[str, object], how: str):
    """Keras weights run eagerly (`keras-eager`) or under tf.function with a mixed_float16 policy."""
    from bgmv2 import converters
    from bgmv2.converters.runner import Runner
    from bgmv2.converters.tf_formats import outputs_of, require_tf
    impl = require_tf()
    import tensorflow as tf
    spec = converters.read(path, "keras")
    options = dict(knobs) if spec.kind == "refine" else {}
    if spec.kind == "refine":
        options["refine_kernel_size"] = spec.refine_kernel_size
        cls = impl.MattingRefine
    else:
        cls = impl.MattingBase
    policy = "mixed_float16" if how == "keras-mixed_float16" else None
    model = cls(spec.backbone, dtype=policy, **options)
    impl.load_torch_state_dict(model, spec.state)
    if how == "keras-eager":
        def run(src, bgr):
            return [o.numpy() for o in model(tf.constant(src.transpose(0, 2, 3, 1)), tf.constant(bgr.transpose(0, 2, 3, 1)))]
        precision = "fp32"
    else:
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        graph = tf.function(lambda s, b: model(s, b), input_signature=[image, image])

        def run(src, bgr):
            return [o.numpy() for o in graph(tf.constant(src.transpose(0, 2, 3, 1)), tf.constant(bgr.transpose(0, 2, 3, 1)))]
        precision = "fp16"
    return Runner(run, "keras", path, outputs_of(spec.kind), "NHWC", spec.metadata, precision, model)


def eager_fp16_runner(path: str, knobs: Dict[str, object], device: str):
    from bgmv2 import converters
    from bgmv2.converters.torch_formats import eager_runner, torch_model
    spec = converters.read(path)
    model = torch_model(spec, knobs if spec.kind == "refine" else None, precision="fp16").eval()
    return torch_on_device(eager_runner(model, "pth", path, spec.metadata, "fp16"), device)


def load_candidate(path: str, reference: Reference, flags: Optional[Dict[str, object]] = None, device: str = "cpu",
                   run_as: str = "file", label: Optional[str] = None, threads: Optional[int] = None) -> Tuple[Candidate, Dict[str, object], Dict[str, str]]:
    """Load `path` to run on `device`; returns it with the resolved knobs and their sources."""
    from bgmv2 import converters
    if run_as not in RUN_AS:
        raise ParityError(f"run_as={run_as!r}; choose one of {', '.join(RUN_AS)}")
    flags = clean_knobs(flags)
    started = time.perf_counter()
    try:
        fmt = detect_format(path)
        runtime = runtime_of(fmt, run_as)
        if device != "cpu":
            reason = cuda_unavailable(runtime)
            if reason:
                raise ParityError(f"{path}: cannot run on {device}: {reason}")
            exact_fp32_on_gpus()
        metadata = {k: v for k, v in converters.info(path).items() if k not in ("file", "format", "content")}
        recorded, recorded_from = recorded_knobs(path, fmt, metadata)
        inferred = None
        if fmt == "onnx" and recorded_from == "none" and reference.spec.kind == "refine":
            from .inferred import onnx_knobs
            try:
                inferred = onnx_knobs(path)
            except Exception:  # noqa: BLE001 - nothing recognisable: the defaults and flags apply
                inferred = None
            if inferred is not None and inferred.knobs:
                recorded, recorded_from = dict(inferred.knobs), "ONNX graph (inferred)"
        knobs, sources = resolve_knobs(reference.recorded, recorded, flags,
                                       "candidate " + recorded_from if recorded_from != "none" else "candidate")
        refine = reference.spec.kind == "refine"
        at_load = fmt in KNOBS_AT_LOAD or run_as != "file"
        options = {"providers": onnx_providers(device), "threads": threads} if fmt == "onnx" else \
            {"threads": threads} if fmt in ("openvino", "tflite") else {}
        if run_as == "file":
            runner = converters.load(path, fmt, knobs=knobs if at_load and refine else None, **options)
        elif run_as.startswith("openvino"):
            runner = converters.load(path, fmt, runtime="openvino", precision="bf16" if run_as.endswith("bf16") else None,
                                     threads=threads)
        elif run_as.startswith("keras"):
            runner = keras_runner(path, knobs if refine else {}, run_as)
        else:
            runner = eager_fp16_runner(path, knobs, device)
    except converters.ConversionError as error:
        raise ParityError(str(error)) from None
    if fmt == "onnx" and device != "cpu" and runner.model.get_providers()[0] != "CUDAExecutionProvider":
        raise ParityError(f"{path}: ONNX Runtime did not start its CUDA provider (providers: "
                          f"{', '.join(runner.model.get_providers())}); check the CUDA and cuDNN libraries it needs.")
    if fmt == "pt2" and run_as == "file":
        runner = pt2_on_device(runner, device)
    elif runtime == "torch" and run_as == "file":
        runner = torch_on_device(runner, device)
    elif runtime == "tensorflow":
        runner = tf_on_device(runner, device)
    notes = []
    if inferred is not None and inferred.found:
        notes.append("the file records no knobs; read from its graph: " + "; ".join(inferred.found))
    if not at_load:
        differing = [k for k, v in flags.items() if k in recorded and recorded[k] != v]
        if differing:
            notes.append(f"flags {', '.join(differing)} differ from what the file records; its knobs are fixed, "
                         "so the flags apply to the reference only")
        elif not recorded and inferred is None:
            notes.append("the file records no knobs (not written by bgmv2-zoo): the reference uses "
                         + ("the flags and " if flags else "") + "the defaults; pass --refine-* flags if it was "
                         "exported with others")
    candidate = Candidate(label or default_label(path, fmt, run_as, runner.precision), path, fmt, run_as, device,
                          runtime_name(fmt, run_as, device, runner), runner.precision, runner, recorded,
                          recorded_from, at_load, metadata, notes, time.perf_counter() - started,
                          inferred.min_cells if inferred is not None else 0)
    return candidate, knobs, sources


def default_label(path: str, fmt: str, run_as: str, precision: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    extra = "" if run_as == "file" else f" [{run_as}]"
    return f"{name}{extra}"
