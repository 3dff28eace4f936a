"""The converters API (`converters.convert`, `load`, `read`, `info`): read, load, describe and convert model files; every conversion is validated before it is kept.

`convert(source, dest)` reads the source (any format, detected from its content) into the official
PyTorch layout, writes the destination under a temporary name in the destination's folder, runs the
source and the destination on the probes of `bgmv2 parity` (`converters.probes`) against the weights in
PyTorch eager, and keeps the destination (rename) only when both pass the one acceptance rule
(`converters.acceptance`, the rule `bgmv2 parity` applies). On any failure everything written is
removed; the source is only read.
"""
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

from . import formats
from . import meta as meta_mod
from .acceptance import Verdict
from .detection import content_kind, detect
from .errors import ConversionError, OptionError, first_line
from .formats import PRECISIONS, guess_format
from .limits import check_frame
from .meta import ModelSpec
from .runner import Runner

SAMPLING_VARIANTS = ("static", "nonzero", "tensorrt")


def __getattr__(name):
    # Derived from the format table (converters.formats) for callers that knew the old constants.
    if name == "KNOBS_AT_LOAD":
        return tuple(n for n, m in formats.registry().items() if m.KNOBS_AT_LOAD)
    if name == "FP16_FORMATS":
        return tuple(n for n, m in formats.registry().items() if "fp16" in m.PRECISIONS)
    raise AttributeError(f"module 'bgmv2.converters.api' has no attribute {name!r}")


# -- one entry point per operation ------------------------------------------------------------------
def read(path, fmt: Optional[str] = None) -> ModelSpec:
    """The weights (official PyTorch layout), kind, backbone, knobs and metadata of any model file;
    ConversionError for weights holding NaN or infinity (named), as the model loaders refuse them."""
    path = os.fspath(path)
    spec = formats.get(fmt or detect(path)).read(path)
    meta_mod.check_finite(spec, path)
    return spec


def load(path, fmt: Optional[str] = None, knobs: Optional[Dict[str, object]] = None, *, device: Optional[str] = "cpu",
         runtime: Optional[str] = None, precision: Optional[str] = None, **options) -> Runner:
    """The runner of any model file (`converters.runner.Runner`): `runner(src, bgr)` -> the named outputs.

    `device`: cpu (default), cuda, cuda:N or auto (a CUDA GPU where the runtime can use one).
    `runtime`: how to run it: the format's own (`formats.get(fmt).RUNTIMES`, the first by default:
    torch, onnxruntime, tensorflow, litert, openvino) or one that runs other formats' files
    (`formats.runtimes()`: openvino runs ONNX and SavedModels, fast runs any weights).
    `precision`: None for the file's own; fp16 / bf16 where the runtime computes in it.
    `knobs` (backbone_scale, refine_mode, ...) apply where the format allows it after writing
    (state dicts, TorchScript, Keras weights); `options` go to the format (ONNX: threads, optimization;
    OpenVINO: threads; Keras: eager).
    """
    from . import devices
    if isinstance(path, bytes):
        raise ConversionError(f"{path!r} is bytes; give the path as a str (os.fsdecode(path)).")
    path = os.fspath(path)
    fmt = fmt or detect(path)
    module = formats.get(fmt)
    knobs = dict(knobs or {})
    check_kernel_size(path, fmt, knobs.pop("refine_kernel_size", None))
    knobs = check_knobs(knobs)
    name = runtime or module.RUNTIMES[0]
    kind = options.pop("kind", None) if name != "fast" else options.get("kind")
    if kind is not None:
        runner = load_kind(path, fmt, kind, knobs, device, runtime, precision)
        if runner is not None:
            return runner
    if name in module.RUNTIMES:
        return module.load(path, knobs, device=devices.choose(device, name), runtime=name, precision=precision,
                           **options)
    if name not in formats.runtime_names():
        raise OptionError("runtime", name, f"is not a runtime here; choose one of {', '.join(formats.runtime_names())}")
    if name not in formats.runtimes() or not formats.runs(name, fmt):
        runs = [n for n, m in formats.registry().items()
                if name in m.RUNTIMES or (name in formats.runtimes() and formats.runs(name, n))]
        raise OptionError("runtime", name, f"runs {', '.join(runs)} files; leave {{option}} out, or convert the file "
                                           "(`bgmv2 convert`)", before=f"{path} is a {fmt} file, but ")
    other = formats.runtime_modules()[name]
    missing = other.available() if hasattr(other, "available") else None
    if missing:
        raise ConversionError(missing.rstrip(".") + ".")  # one line: what is missing, what to install
    # a runtime with devices of its own (the browser: wasm, webgpu) reads the name itself
    where = device if hasattr(other, "DEVICES") else devices.choose(device, name)
    return other.load_other(path, fmt, knobs, device=where, precision=precision, **options)


def check_kernel_size(path: str, fmt: str, kernel) -> None:
    """A refiner kernel size given at load time is a check: the weights fix it (ConversionError if they
    hold another; nothing to check where the weights cannot be read)."""
    if kernel is None:
        return
    from bgmv2.knobs import check_knob
    try:
        kernel = check_knob("refine_kernel_size", kernel)
    except ValueError as error:
        raise ConversionError(str(error)) from None
    try:
        found = read(path, fmt).refine_kernel_size
    except ConversionError:
        return
    if found is not None and found != kernel:
        raise ConversionError(f"{path} has a refiner of kernel size {found}, not {kernel}; leave "
                              "refine_kernel_size out (the weights fix it)")


def load_kind(path: str, fmt: str, kind: str, knobs, device, runtime, precision) -> Optional[Runner]:
    """`kind="base"`: the base network alone, from the weights of any file that holds MattingRefine's,
    in PyTorch eager; None when the file is already that kind (load it as usual)."""
    from . import devices
    if kind not in ("base", "refine"):
        raise ConversionError(f"kind {kind!r}; choose base or refine")
    spec = read(path, fmt)
    if spec.kind == kind:
        return None
    if kind == "refine":
        raise ConversionError(f"{path} holds a MattingBase (no refiner); leave the model type out, or give a "
                              "MattingRefine file")
    if runtime not in (None, "torch"):
        raise ConversionError(f"the base network alone runs in PyTorch (runtime torch or fast), not {runtime}")
    from .torch_formats import spec_runner
    return spec_runner(spec, fmt, path, None, devices.choose(device, "torch"), precision, kind="base")


def info(path) -> Dict[str, str]:
    """What a file is (format, content) and the metadata it carries, without running it. A pickle
    (`.pth`) is read through the safe loader first, so one holding anything but tensors is refused
    (ConversionError), never described as a model without metadata."""
    path = os.fspath(path)
    fmt = detect(path)
    result = {"file": path, "format": fmt, "content": content_kind(path)}
    found = formats.get(fmt).info(path)
    if not found:
        result["metadata"] = "none (not written by bgmv2-zoo, e.g. an official file)"
    result.update({k: v for k, v in found.items() if k not in ("format",)})
    if "format" in found and found["format"] != fmt:
        result["written_as"] = found["format"]
    return result



def check_knobs(knobs: Dict[str, object]) -> Dict[str, object]:
    """The knobs a file may carry (`meta.KNOBS`), checked and converted by the model's own rule
    (`bgmv2.knobs`), so convert, load and the apps answer a value as the model does."""
    from bgmv2.knobs import check_knob
    out = {}
    for name, value in knobs.items():
        if value is None:
            continue
        if name not in meta_mod.KNOBS:
            raise ConversionError(f"unknown knob {name!r}; the knobs are {', '.join(meta_mod.KNOBS)}")
        try:
            out[name] = check_knob(name, value)
        except ValueError as error:
            raise ConversionError(str(error)) from None
    return out


# -- conversion -------------------------------------------------------------------------------------
@dataclass
class ConversionResult:
    source: str
    source_format: str
    dest: str
    format: str
    precision: str
    metadata: Dict[str, str]
    comparisons: List["Check"] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def temporary_name(dest: str) -> str:
    from bgmv2 import atomic
    return str(atomic.temporary_name(dest))


def remove(path: str, fmt: Optional[str] = None) -> None:
    """Remove a file or folder, and with `fmt` the companion files of that format (an IR's .bin)."""
    from bgmv2 import atomic
    for extra in formats.companions(formats.get(fmt), path) if fmt else ():
        remove(extra)
    atomic.remove(path)


def commit(temporary: str, dest: str, fmt: str) -> None:
    """Rename a finished file to its destination name, its companions first (the main file last, so
    a destination that exists is complete)."""
    module = formats.get(fmt)
    for part, final in zip(formats.companions(module, temporary), formats.companions(module, dest)):
        os.replace(part, final)
    os.replace(temporary, dest)


def frame_size(size) -> Optional[Tuple[int, int]]:
    """(height, width) from None, a (height, width) pair, or a 'WIDTHxHEIGHT' string (the order of
    every bgmv2 command: '1280x720' is landscape HD); ConversionError naming the rule otherwise."""
    if size is None:
        return None
    try:
        if isinstance(size, str):
            width, height = (int(v) for v in size.strip().lower().split("x"))
        else:
            height, width = (int(v) for v in size)
        if height < 1 or width < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConversionError(f"size {size!r}: give a (height, width) pair or a 'WIDTHxHEIGHT' string of positive "
                              "whole numbers, e.g. (720, 1280) or '1280x720'.") from None
    return height, width


@dataclass
class Job:
    """One conversion, as the destination's format module sees it (`prepare` and `write`)."""
    source: str
    source_format: str
    source_spec: ModelSpec  # as read from the source
    spec: ModelSpec  # what is written: the source's weights with the chosen knobs
    format: str
    precision: str = "fp32"
    onnx_variant: Optional[str] = None  # None: the format's default
    simplify: bool = False
    topk_limit: Optional[int] = None
    onnx_from: Optional[str] = None
    options: Dict[str, object] = field(default_factory=dict)  # anything else a format module takes
    size: Optional[Tuple[int, int]] = None  # (height, width): one fixed frame size (formats.size_formats())


def write(spec: ModelSpec, path: str, fmt: str, metadata: Dict[str, str], precision: str,
          onnx_variant: Optional[str] = None, simplify: bool = False, topk_limit: Optional[int] = None,
          size=None) -> None:
    """Write `spec` to `path` in `fmt` (no validation: `convert` is the checked way)."""
    job = Job("", "", spec, spec, fmt, precision, onnx_variant, simplify, topk_limit, "pytorch", size=frame_size(size))
    formats.get(fmt).write(spec, path, metadata, job)


# A destination named like another format is refused, except where the other name is a convention:
# upstream's TorchScript files end in .pth.
NAME_CONVENTIONS = {("pth", "torchscript")}


def check_name_and_format(dest: str, fmt: str) -> None:
    """`--to` and the suffix of the destination's name agree (`x.tflite --to onnx` would write ONNX named
    .tflite); a name without a format's suffix takes any --to."""
    name = os.path.basename(os.path.normpath(dest)).lower()
    named = next((fmt_ for suffix, fmt_ in formats.SUFFIXES if name.endswith(suffix)), None)
    if named is not None and named != fmt and (named, fmt) not in NAME_CONVENTIONS:
        suffixes = formats.get(fmt).SUFFIXES
        fix = f"name it with {suffixes[0]}" if suffixes else "name it without a format suffix (a folder)"
        raise ConversionError(f"{dest} is named as a {named} file, but {fmt} was asked (--to {fmt}): {fix}, or leave "
                              f"--to out to write {named}.")


def check_exporter_options(module, onnx_variant, simplify, onnx_from, topk_limit) -> None:
    """The ONNX exporter's options are refused for targets it does not make (`EXPORTER_OPTIONS` of a
    format module), which would ignore them."""
    given = [flag for flag, value in (("--onnx-variant", onnx_variant), ("--simplify", simplify),
                                      ("--onnx-from", onnx_from), ("topk_limit", topk_limit)) if value]
    if given and not getattr(module, "EXPORTER_OPTIONS", False):
        makers = [m for m in formats.registry().values() if getattr(m, "EXPORTER_OPTIONS", False)]
        names = " or ".join(f"{m.NAME} ({m.SUFFIXES[0]})" if m.SUFFIXES else m.NAME for m in makers)
        raise ConversionError(f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of the "
                              f"exporter that writes {names} files; a {module.NAME} file is not made by it (nothing to "
                              f"simplify or choose): leave {'it' if len(given) == 1 else 'them'} out, or write "
                              f"{names}.")


def refuse_overlap(source: str, dest: str) -> None:
    """ConversionError when writing `dest` could touch `source`: the same path, a folder holding the
    source, or a path inside a source folder (a SavedModel)."""
    src, out = os.path.realpath(source), os.path.realpath(dest)
    if src == out:
        raise ConversionError(f"{dest} is the source itself; choose another destination (sources are never changed).")
    if os.path.commonpath([src, out]) == out:
        raise ConversionError(f"{dest} holds the source {source}; choose another destination (sources are never changed).")
    if os.path.commonpath([src, out]) == src and os.path.isdir(src):
        raise ConversionError(f"{dest} lies inside the source folder {source}; write it elsewhere (sources are never changed).")


def convert(source, dest, to: Optional[str] = None, *, backbone: Optional[str] = None, precision: str = "fp32",
            knobs: Optional[Dict[str, object]] = None, onnx_variant: Optional[str] = None, simplify: bool = False,
            topk_limit: Optional[int] = None, onnx_from: Optional[str] = None, overwrite: bool = False, size=None,
            probe_size: Optional[Tuple[int, int]] = None, probe_batch: int = 1,
            log: Optional[Callable[[str], None]] = print, validate_with: Optional[Callable] = None,
            options: Optional[Dict[str, object]] = None) -> ConversionResult:
    """Convert `source` (any format) to `dest` in format `to` (default: from `dest`'s name).

    `knobs`: MattingRefine knobs to set (the rest keep the source's values, or the defaults when the
    source does not record them). `precision`: fp32 or fp16 (where the format's PRECISIONS has it).
    `onnx_variant`: static / nonzero / tensorrt (sampling mode only; default: `onnx_format.DEFAULT_VARIANT`).
    `onnx_from`: "pytorch" (torch.onnx exporter, NCHW) or "tensorflow" (tf2onnx on a SavedModel, NHWC);
    default: tensorflow when the source is a SavedModel, else pytorch. `options`: further options for
    the destination's format module (`Job.options`).
    `size`: one fixed frame size for formats that take it (`formats.size_formats()`: TFLite), as a
    (height, width) pair or a 'WIDTHxHEIGHT' string ('1280x720'); default: any size. The probe then
    has that size. Other formats refuse it. `probe_size` (height, width) and `probe_batch`: one probe
    of that size instead of parity's default probes.
    `validate_with`: test hook, a function (runner) -> runner applied to the destination's runner.
    """
    source, dest = os.fspath(source), os.fspath(dest)
    say = log or (lambda text: None)
    fmt = to or guess_format(dest)
    if fmt is None:
        raise ConversionError(f"cannot tell the format from the name {dest!r}; pass --to with one of "
                              f"{', '.join(formats.registry())}")
    module = formats.get(fmt)
    check_name_and_format(dest, fmt)
    check_exporter_options(module, onnx_variant, simplify, onnx_from, topk_limit)
    if precision not in PRECISIONS:
        raise ConversionError(f"precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision not in module.PRECISIONS:
        able = [n for n, m in formats.registry().items() if precision in m.PRECISIONS]
        raise ConversionError(f"{fmt} files are written in {', '.join(module.PRECISIONS)} only ({precision}: "
                              f"{', '.join(able)}); for TensorFlow use a mixed_float16 policy when you load the weights.")
    if onnx_variant is not None and onnx_variant not in SAMPLING_VARIANTS:
        raise ConversionError(f"onnx variant {onnx_variant!r}; choose one of {', '.join(SAMPLING_VARIANTS)}")
    size = frame_size(size)
    if size is not None:
        if not getattr(module, "TAKES_SIZE", False):
            raise ConversionError(f"a fixed size (--size) is for {', '.join(formats.size_formats())} files; {fmt} "
                                  "files take any size. Leave it out.")
        check_frame(size, f"--size {size[1]}x{size[0]}", probe_batch)
        probe_size = size
    if not isinstance(probe_batch, int) or isinstance(probe_batch, bool) or probe_batch < 1:
        raise ConversionError(f"probe_batch={probe_batch!r}: give a whole number of 1 or more")
    if probe_size is not None:  # None: parity's default probes
        probe_size = check_frame(probe_size, f"probe_size={probe_size!r}", probe_batch)
    if not os.path.exists(source):
        raise ConversionError(f"{source}: no such file or folder")
    refuse_overlap(source, dest)
    taken = [p for p in formats.companions(module, dest) if os.path.exists(p)]
    if taken and not overwrite:
        raise ConversionError(f"{taken[0]} exists (it is written with {dest}); remove it or pass --overwrite.")
    if os.path.exists(dest):
        if not overwrite:
            raise ConversionError(f"{dest} exists; remove it or pass --overwrite.")
        if os.path.isdir(dest) and not os.path.isfile(os.path.join(dest, "saved_model.pb")):
            raise ConversionError(f"{dest} is a folder but not a SavedModel; --overwrite replaces files and SavedModel "
                                  "folders only. Choose another destination.")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        above = folder
        while not os.path.exists(above) and os.path.dirname(above) != above:
            above = os.path.dirname(above)
        if os.path.exists(above) and not os.path.isdir(above):
            raise ConversionError(f"{dest}: {above} is a file, not a folder; write the destination into a folder.")
        raise ConversionError(f"{folder}: no such folder for the destination; create it first.")

    source_format = detect(source)
    say(f"source:  {source} ({source_format})")
    spec = formats.get(source_format).read(source)
    if backbone is not None and backbone != spec.backbone:
        raise ConversionError(f"{source} holds {spec.backbone} weights, but --backbone {backbone} was given: pass the "
                              f"{backbone} file, or leave --backbone out (it is read from the weights).")
    knobs = check_knobs(knobs or {})
    if knobs and spec.kind != "refine":
        raise ConversionError(f"{source} is a MattingBase (no refiner): knobs ({', '.join(knobs)}) do not apply.")
    target = replace(spec, knobs={**spec.knob_values(), **knobs}, notes=list(spec.notes))
    job = Job(source, source_format, spec, target, fmt, precision, onnx_variant, simplify, topk_limit, onnx_from,
              dict(options or {}), size)
    extra = dict(module.prepare(job))
    layout = str(extra.pop("layout", module.LAYOUT))
    for note in spec.notes:
        say(f"note:    {note}")
    metadata = meta_mod.describe(target, fmt, precision, layout, source, source_format, **extra)
    temporary = temporary_name(dest)
    remove(temporary, fmt)
    variant = extra.get("onnx_variant")
    say(f"writing: {dest} ({fmt}, {precision}, {layout} input" + (f", onnx variant {variant}" if variant else "") + ")")
    try:
        module.write(target, temporary, metadata, job)
        comparisons = validate(source, source_format, spec, temporary, fmt, target, precision, probe_size,
                               probe_batch, validate_with)
        for comparison in comparisons:
            say(f"check:   {comparison.text()}")
        failed = [c for c in comparisons if not c.ok]
        if failed:
            raise ConversionError(f"{dest} was not written: the converted model does not compute the same alpha as "
                                  f"{source} on the probes (`bgmv2 parity`'s rule). " + " | ".join(c.text() for c in failed))
        if overwrite:
            remove(dest, fmt)
        commit(temporary, dest, fmt)
    except ConversionError:
        remove(temporary, fmt)
        raise
    except BaseException as error:
        remove(temporary, fmt)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        raise ConversionError(f"converting {source} to {fmt} failed ({first_line(error)}); nothing was written.") from None
    say(f"done:    {dest}")
    return ConversionResult(source, source_format, dest, fmt, precision, metadata, comparisons, list(spec.notes))


@dataclass
class Check:
    """One judgement of `convert`'s validation: a label and the acceptance rule's verdict."""
    label: str
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def text(self) -> str:
        return f"{self.label}: {self.verdict.text()} -> {'ok' if self.ok else 'FAIL'}"


def validate(source: str, source_format: str, spec: ModelSpec, written: str, fmt: str, target: ModelSpec,
             precision: str, probe_size, probe_batch, validate_with=None) -> List[Check]:
    """Judge the source and the written file by the acceptance rule against the weights in PyTorch eager
    (`converters.reference`), on the probes `bgmv2 parity` uses by default (or one of `probe_size`):
    the source at the knobs it runs with (was it read right?), the written file at the new knobs."""
    from .acceptance import judge
    from .probes import default_probes, synthetic_probe
    from .reference import Reference
    probes = default_probes() if probe_size is None else [synthetic_probe(*probe_size, probe_batch, seed=2021)]
    reference = Reference(spec, path=source)
    source_knobs, target_knobs = spec.knob_values(), target.knob_values()
    written_runner = load(written, fmt)
    if validate_with is not None:
        written_runner = validate_with(written_runner)
    if formats.get(source_format).KNOBS_AT_LOAD:
        changed = {k: v for k, v in target_knobs.items() if source_knobs.get(k) != v}
        source_runner, knobs_run = load(source, source_format, knobs=changed or None), target_knobs
    else:
        source_runner, knobs_run = load(source, source_format), source_knobs
    own = source_runner.precision  # was it read right? the weights computing as the file does
    return [Check(f"source {source_format} vs its weights in PyTorch" + (f" ({own})" if own != "fp32" else ""),
                  judge(reference, source_runner, knobs_run, probes, own, expected=own)),
            Check(f"{fmt} vs the weights in PyTorch", judge(reference, written_runner, target_knobs, probes,
                                                           written_runner.precision))]
