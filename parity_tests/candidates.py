"""The reference and the candidates of a parity check: how each model file is run, where, with which knobs.

Reference: the weights of `--reference` (any format `converters.read` reads: state dicts, TorchScript,
`.pt2`, ONNX from PyTorch, Keras weights, SavedModel) in PyTorch eager, fp32, on the CPU: one truth
for every candidate, every precision and every device.

Candidates run through `converters.load(path, device=, runtime=, precision=)`, the same runners the
apps, every conversion and the fast runtime use. `run_as` says how: `file` (the format's own runtime),
any runtime of the registry (`openvino`, `fast`, `browser`, `onnxruntime`, ...), optionally with a
precision (`openvino-bf16`, `torch-fp16`), and the older names `keras-eager`, `keras-mixed_float16`
and `eager-fp16`.

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

from bgmv2.converters.reference import Reference as ConvertersReference
from bgmv2.knobs import FILE_KNOBS


def detect_format(path: str) -> str:
    from bgmv2.converters.detection import detect
    return detect(path)


KNOB_ORDER = FILE_KNOBS  # the knobs a file records, compared here
PRECISIONS = ("fp32", "fp16", "bf16")
# The older run_as names -> (runtime, precision, load options).
NAMED_RUN_AS = {"file": (None, None, {}), "keras-eager": (None, None, {"eager": True}),
                "keras-mixed_float16": (None, "fp16", {}), "eager-fp16": (None, "fp16", {}),
                "browser-webgpu": ("browser", None, {"device": "webgpu"})}


class ParityError(ValueError):
    """A check that cannot be run as asked; the message says why and what to do."""


def how_to_run(run_as: str) -> Tuple[Optional[str], Optional[str], Dict[str, object]]:
    """(runtime, precision, load options) of a run_as: 'file', a runtime name, RUNTIME-PRECISION, or an older name."""
    from bgmv2.converters import formats
    if run_as in NAMED_RUN_AS:
        return NAMED_RUN_AS[run_as]
    names = formats.runtime_names()
    if run_as in names:
        return run_as, None, {}
    runtime, _, precision = run_as.rpartition("-")
    if runtime in names and precision in PRECISIONS:
        return runtime, precision, {}
    raise ParityError(f"run_as={run_as!r}; choose file, a runtime ({', '.join(names)}) or RUNTIME-PRECISION "
                      f"(e.g. openvino-bf16), or one of {', '.join(n for n in NAMED_RUN_AS if n != 'file')}")


def runtime_of(fmt: str, run_as: str = "file") -> str:
    """The registry name of the runtime that runs a `fmt` file as `run_as` asks."""
    from bgmv2.converters import formats
    return how_to_run(run_as)[0] or formats.get(fmt).RUNTIMES[0]


# -- knobs ------------------------------------------------------------------------------------------
def defaults() -> Dict[str, object]:
    from bgmv2.knobs import defaults as official
    return official()


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
class Reference(ConvertersReference):
    """The weights of `--reference` (any format `converters.read` reads) in PyTorch eager on the CPU, with
    the knobs the file records."""

    def __init__(self, path: str, spec=None):
        from bgmv2 import converters
        given = spec is not None
        try:
            spec = spec if given else converters.read(path)
        except converters.ConversionError as error:
            raise ParityError(f"reference: {error}") from None
        super().__init__(spec, path=path)
        self.format = None if given else detect_format(path)
        self.recorded = {k: v for k, v in self.spec.knobs.items() if k in KNOB_ORDER}
        if not self.recorded and self.format not in (None, "onnx", "savedmodel"):
            self.recorded = zoo_preset_knobs(path)

    @property
    def backbone(self) -> str:
        return self.spec.backbone



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


def load_candidate(path: str, reference: Reference, flags: Optional[Dict[str, object]] = None, device: str = "cpu",
                   run_as: str = "file", label: Optional[str] = None, threads: Optional[int] = None) -> Tuple[Candidate, Dict[str, object], Dict[str, str]]:
    """Load `path` to run on `device` as `run_as` asks; returns it with the resolved knobs and their sources."""
    from bgmv2 import converters
    from bgmv2.converters import formats
    runtime, precision, options = how_to_run(run_as)
    flags = clean_knobs(flags)
    started = time.perf_counter()
    try:
        fmt = detect_format(path)
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
        module = formats.get(fmt)
        at_load = (module.KNOBS_AT_LOAD and runtime in (None, *module.RUNTIMES)) or runtime == "fast"
        options = dict(options)
        if threads:
            options["threads"] = threads
        where = options.pop("device", device)  # a runtime's own device (browser-webgpu)
        runner = converters.load(path, fmt, knobs=knobs if at_load and reference.spec.kind == "refine" else None,
                                 device=where, runtime=runtime, precision=precision, **options)
    except converters.ConversionError as error:
        raise ParityError(str(error)) from None
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
    candidate = Candidate(label or default_label(path, fmt, run_as, runner.precision), path, fmt, run_as,
                          getattr(runner, "device", None) or device,  # where it ran (the browser: wasm, webgpu)
                          runner.engine, runner.precision, runner, recorded, recorded_from, at_load, metadata, notes,
                          time.perf_counter() - started, inferred.min_cells if inferred is not None else 0)
    return candidate, knobs, sources


def default_label(path: str, fmt: str, run_as: str, precision: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    extra = "" if run_as == "file" else f" [{run_as}]"
    return f"{name}{extra}"
