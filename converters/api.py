"""The converters API (`converters.convert`, `load`, `read`, `info`): read, load, describe and convert model files; every conversion is validated before it is kept.

`convert(source, dest)` reads the source (any format, detected from its content) into the official
PyTorch layout, writes the destination under a temporary name in the destination's folder, runs
the source and the destination on a probe (`bgmv2.converters.probe`) and keeps the destination (rename)
only when alpha and the refined-cell map agree within the tolerance of the precision
(`bgmv2.converters.compare`). On any failure everything written is removed; the source is only read.
"""
import os
import shutil
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

from . import formats
from . import meta as meta_mod
from .compare import Comparison, compare, lower_precision
from .detection import content_kind, detect
from .errors import ConversionError, first_line
from .formats import PRECISIONS, guess_format
from .limits import check_frame
from .meta import ModelSpec
from .probe import DEFAULT_SIZE, probe_pair
from .runner import Runner

SAMPLING_VARIANTS = ("static", "nonzero", "tensorrt")


def __getattr__(name):
    # Derived from the format table (converters.formats) for callers that knew the old constants.
    if name == "KNOBS_AT_LOAD":
        return tuple(n for n, m in formats.registry().items() if m.KNOBS_AT_LOAD)
    if name == "FP16_FORMATS":
        return tuple(n for n, m in formats.registry().items() if "fp16" in m.PRECISIONS)
    raise AttributeError(f"module 'bgmv2.converters.api' has no attribute {name!r}")


def layout_for(fmt: str, via_tensorflow: bool = False) -> str:
    return "NHWC" if via_tensorflow else formats.get(fmt).LAYOUT


# -- one entry point per operation ------------------------------------------------------------------
def read(path, fmt: Optional[str] = None) -> ModelSpec:
    """The weights (official PyTorch layout), kind, backbone, knobs and metadata of any model file;
    ConversionError for weights holding NaN or infinity (named), as the model loaders refuse them."""
    path = os.fspath(path)
    spec = formats.get(fmt or detect(path)).read(path)
    meta_mod.check_finite(spec, path)
    return spec


def load(path, fmt: Optional[str] = None, knobs: Optional[Dict[str, object]] = None, **options) -> Runner:
    """A runner for any model file: `runner(src, bgr)` -> named float32 NCHW numpy outputs.

    `knobs` (backbone_scale, refine_mode, ...) apply where the format allows it after writing
    (state dicts, TorchScript, Keras weights); `options` go to the format (ONNX: threads, optimization;
    TFLite: interpreter litert / tensorflow; OpenVINO: precision fp32 / bf16 / fp16, threads).
    `runtime=NAME` runs the file with another format's runtime, where that format module offers
    `load_other` (`formats.runtimes()`: OpenVINO runs ONNX files and SavedModels).
    """
    path = os.fspath(path)
    fmt = fmt or detect(path)
    knobs = check_knobs(knobs or {})
    runtime = options.pop("runtime", None)
    if runtime is not None:
        if runtime not in formats.runtimes():
            raise ConversionError(f"runtime {runtime!r}; the runtimes that run other formats' files are "
                                  f"{', '.join(formats.runtimes()) or 'none installed'}")
        return formats.get(runtime).load_other(path, fmt, knobs, **options)
    return formats.get(fmt).load(path, knobs, **options)


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
    comparisons: List[Comparison] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def temporary_name(dest: str) -> str:
    folder, name = os.path.split(os.path.abspath(dest))
    return os.path.join(folder, f".partial-{os.getpid()}-{name}")


def remove(path: str, fmt: Optional[str] = None) -> None:
    """Remove a file or folder, and with `fmt` the companion files of that format (an IR's .bin)."""
    for extra in formats.companions(formats.get(fmt), path) if fmt else ():
        remove(extra)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


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
            probe_size: Tuple[int, int] = DEFAULT_SIZE, probe_batch: int = 1,
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
    has that size. Other formats refuse it.
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
                                  f"{source} on the probe. " + " | ".join(c.text() for c in failed))
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


def validate(source: str, source_format: str, spec: ModelSpec, written: str, fmt: str, target: ModelSpec,
             precision: str, probe_size, probe_batch, validate_with=None) -> List[Comparison]:
    """Run the source and the written file on the probe; compare alpha and the refined-cell map.

    With the same knobs on both sides the two files are compared directly. When the conversion
    changed knobs and the source cannot take them at load time (.pt2, ONNX, SavedModel), each side is
    compared with the PyTorch model built from the weights at its own knobs.
    """
    src, bgr = probe_pair(probe_batch, *probe_size)
    tolerance = lower_precision(spec.precision, precision)
    source_knobs, target_knobs = spec.knob_values(), target.knob_values()
    written_runner = load(written, fmt)
    if validate_with is not None:
        written_runner = validate_with(written_runner)
    if source_knobs == target_knobs or formats.get(source_format).KNOBS_AT_LOAD:
        changed = {k: v for k, v in target_knobs.items() if source_knobs.get(k) != v}
        source_runner = load(source, source_format, knobs=changed or None)
        return [compare(source_runner(src, bgr), written_runner(src, bgr), tolerance,
                        f"{fmt} vs source {source_format}")]
    from .torch_formats import eager_runner, torch_model
    before = eager_runner(torch_model(spec, source_knobs), "pth", "(weights)", {}, "fp32")
    after = eager_runner(torch_model(spec, target_knobs), "pth", "(weights)", {}, "fp32")
    source_runner = load(source, source_format)
    return [compare(before(src, bgr), source_runner(src, bgr), lower_precision(spec.precision),
                    f"source {source_format} vs its weights in PyTorch"),
            compare(after(src, bgr), written_runner(src, bgr), tolerance, f"{fmt} vs the weights in PyTorch, new knobs")]
