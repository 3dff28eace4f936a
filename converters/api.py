"""The converters API (`converters.convert`, `load`, `read`, `info`): read, load, describe and convert model files; every conversion is validated before it is kept.

`convert(source, dest)` reads the source (any format, detected from its content) into the official
PyTorch layout, writes the destination under a temporary name in the destination's folder, runs
the source and the destination on a probe (`converters.probe`) and keeps the destination (rename)
only when alpha and the refined-cell map agree within the tolerance of the precision
(`converters.compare`). On any failure everything written is removed; the source is only read.
"""
import os
import shutil
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

from . import meta as meta_mod
from .compare import Comparison, compare, lower_precision
from .detect import content_kind, detect
from .errors import ConversionError, first_line
from .formats import FORMATS, NAMES, PRECISIONS, guess_format
from .meta import ModelSpec
from .probe import DEFAULT_SIZE, probe_pair
from .runner import Runner

SAMPLING_VARIANTS = ("static", "nonzero", "tensorrt")
# Formats whose runners take knobs at load time (the others fix them when written).
KNOBS_AT_LOAD = ("pth", "safetensors", "torchscript", "keras")
FP16_FORMATS = ("pth", "safetensors", "torchscript", "pt2", "onnx", "openvino")
# Formats in a module of their own with the face detect / read / write / load / info.
FORMAT_MODULES = {"tflite": "tflite_format", "openvino": "openvino_format"}


def format_module(fmt: str):
    import importlib
    return importlib.import_module(f".{FORMAT_MODULES[fmt]}", __package__)


def layout_for(fmt: str, via_tensorflow: bool = False) -> str:
    return "NHWC" if via_tensorflow else FORMATS[fmt][1]


# -- one entry point per operation ------------------------------------------------------------------
def read(path, fmt: Optional[str] = None) -> ModelSpec:
    """The weights (official PyTorch layout), kind, backbone, knobs and metadata of any model file."""
    path = os.fspath(path)
    fmt = fmt or detect(path)
    from . import torch_formats as tf_
    if fmt in ("pth", "safetensors"):
        return tf_.read_state_file(path, fmt)
    if fmt == "torchscript":
        return tf_.read_torchscript(path)
    if fmt == "pt2":
        return tf_.read_pt2(path)
    if fmt == "onnx":
        from . import onnx_format
        return onnx_format.read_onnx(path)
    if fmt in ("keras", "savedmodel"):
        from . import tf_formats
        return tf_formats.read(path, fmt)
    if fmt in FORMAT_MODULES:
        return format_module(fmt).read(path)
    raise ConversionError(f"unknown format {fmt!r}; choose one of {', '.join(NAMES)}")


def load(path, fmt: Optional[str] = None, knobs: Optional[Dict[str, object]] = None, **options) -> Runner:
    """A runner for any model file: `runner(src, bgr)` -> named float32 NCHW numpy outputs.

    `knobs` (backbone_scale, refine_mode, ...) apply where the format allows it after writing
    (state dicts, TorchScript, Keras weights); `options` go to the format (ONNX: threads, optimization;
    TFLite: interpreter litert / tensorflow; OpenVINO: precision fp32 / bf16 / fp16, threads).
    `runtime="openvino"` runs an ONNX file or a SavedModel with OpenVINO instead of its own runtime.
    """
    path = os.fspath(path)
    fmt = fmt or detect(path)
    knobs = check_knobs(knobs or {})
    runtime = options.pop("runtime", None)
    if runtime == "openvino":
        return format_module("openvino").load_other(path, fmt, knobs, **options)
    if runtime is not None:
        raise ConversionError(f"runtime {runtime!r}; the one runtime that runs other formats is openvino")
    if fmt in FORMAT_MODULES:
        return format_module(fmt).load(path, knobs, **options)
    from . import torch_formats as tf_
    if fmt in ("pth", "safetensors"):
        return tf_.load_state_file(path, fmt, knobs)
    if fmt == "torchscript":
        return tf_.load_torchscript(path, knobs)
    if fmt == "pt2":
        return tf_.load_pt2(path, knobs)
    if fmt == "onnx":
        from . import onnx_format
        return onnx_format.load_onnx(path, knobs, **options)
    if fmt in ("keras", "savedmodel"):
        from . import tf_formats
        return tf_formats.load(path, fmt, knobs)
    raise ConversionError(f"unknown format {fmt!r}; choose one of {', '.join(NAMES)}")


def info(path) -> Dict[str, str]:
    """What a file is (format, content) and the metadata it carries, without running it."""
    path = os.fspath(path)
    fmt = detect(path)
    result = {"file": path, "format": fmt, "content": content_kind(path)}
    if fmt in ("pth", "safetensors", "torchscript", "pt2"):
        from . import torch_formats
        found = torch_formats.info(path, fmt)
    elif fmt == "onnx":
        from . import onnx_format
        found = onnx_format.info(path)
    elif fmt in FORMAT_MODULES:
        found = format_module(fmt).info(path)
    else:
        from . import tf_formats
        found = tf_formats.info(path, fmt)
    if not found:
        result["metadata"] = "none (not written by bgmv2-zoo, e.g. an official file)"
    result.update({k: v for k, v in found.items() if k not in ("format",)})
    if "format" in found and found["format"] != fmt:
        result["written_as"] = found["format"]
    return result


def check_knobs(knobs: Dict[str, object]) -> Dict[str, object]:
    from pytorch_impl.refiner import MODES
    out = {}
    for name, value in knobs.items():
        if value is None:
            continue
        if name not in meta_mod.KNOBS:
            raise ConversionError(f"unknown knob {name!r}; the knobs are {', '.join(meta_mod.KNOBS)}")
        try:
            value = meta_mod.parse_knob(name, value)
        except (TypeError, ValueError):
            raise ConversionError(f"{name}={value!r} is not a valid {meta_mod.KNOBS[name][0].__name__}") from None
        if name == "refine_mode" and value not in MODES:
            raise ConversionError(f"refine_mode={value!r}; choose one of {', '.join(MODES)}")
        if name == "backbone_scale" and not 0 < value <= 0.5:
            raise ConversionError(f"backbone_scale={value} must be in (0, 1/2]: 0.25 for HD, 0.125 for 4K")
        if name == "refine_sample_pixels" and value < 16:
            raise ConversionError(f"refine_sample_pixels={value} must be at least 16 (one 4x4 cell)")
        out[name] = value
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


def companions(path: str, fmt: str) -> List[str]:
    """Files written beside `path` that belong to it (an OpenVINO IR's .bin)."""
    return format_module(fmt).companions(path) if fmt == "openvino" else []


def remove(path: str, fmt: Optional[str] = None) -> None:
    for extra in companions(path, fmt) if fmt else ():
        remove(extra)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def commit(temporary: str, dest: str, fmt: str) -> None:
    """Rename a finished file (and its companions, first) to its destination name."""
    for part, final in zip(companions(temporary, fmt), companions(dest, fmt)):
        os.replace(part, final)
    os.replace(temporary, dest)


def write(spec: ModelSpec, path: str, fmt: str, metadata: Dict[str, str], precision: str,
          onnx_variant: str = "static", simplify: bool = False, topk_limit: Optional[int] = None,
          size=None) -> None:
    from . import torch_formats as tf_
    if fmt in ("pth", "safetensors"):
        tf_.write_state_file(spec, path, metadata, precision, fmt)
    elif fmt == "torchscript":
        tf_.write_torchscript(spec, path, metadata, precision)
    elif fmt == "pt2":
        tf_.write_pt2(spec, path, metadata, precision)
    elif fmt == "onnx":
        from . import onnx_format
        onnx_format.write_onnx(spec, path, metadata, precision, onnx_variant, simplify, topk_limit)
    elif fmt in ("keras", "savedmodel"):
        from . import tf_formats
        tf_formats.write(spec, path, fmt, metadata)
    elif fmt in FORMAT_MODULES:
        format_module(fmt).write(spec, path, metadata, precision, size=size)
    else:
        raise ConversionError(f"unknown format {fmt!r}; choose one of {', '.join(NAMES)}")


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
            knobs: Optional[Dict[str, object]] = None, onnx_variant: str = "static", simplify: bool = False,
            topk_limit: Optional[int] = None, onnx_from: Optional[str] = None, overwrite: bool = False, size=None,
            probe_size: Tuple[int, int] = DEFAULT_SIZE, probe_batch: int = 1,
            log: Optional[Callable[[str], None]] = print, validate_with: Optional[Callable] = None) -> ConversionResult:
    """Convert `source` (any format) to `dest` in format `to` (default: from `dest`'s name).

    `knobs`: MattingRefine knobs to set (the rest keep the source's values, or the defaults when the
    source does not record them). `precision`: fp32 or fp16 (PyTorch-side formats and ONNX).
    `onnx_variant`: static / nonzero / tensorrt (sampling mode only; see `onnx_format`).
    `onnx_from`: "pytorch" (torch.onnx exporter, NCHW) or "tensorflow" (tf2onnx on a SavedModel, NHWC);
    default: tensorflow when the source is a SavedModel, else pytorch.
    `size`: (height, width) or "HxW", TFLite only: a fixed frame size (default: any size).
    `validate_with`: test hook, a function (runner) -> runner applied to the destination's runner.
    """
    source, dest = os.fspath(source), os.fspath(dest)
    say = log or (lambda text: None)
    fmt = to or guess_format(dest)
    if fmt is None:
        raise ConversionError(f"cannot tell the format from the name {dest!r}; pass --to with one of {', '.join(NAMES)}")
    if fmt not in FORMATS:
        raise ConversionError(f"unknown format {fmt!r}; choose one of {', '.join(NAMES)}")
    if precision not in PRECISIONS:
        raise ConversionError(f"precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and fmt not in FP16_FORMATS:
        raise ConversionError(f"{fmt} files are written in fp32 only (fp16: {', '.join(FP16_FORMATS)}); "
                              "for TensorFlow use a mixed_float16 policy when you load the weights.")
    if onnx_variant not in SAMPLING_VARIANTS:
        raise ConversionError(f"onnx variant {onnx_variant!r}; choose one of {', '.join(SAMPLING_VARIANTS)}")
    if size is not None:
        if fmt != "tflite":
            raise ConversionError(f"--size fixes the frame size of TFLite files; {fmt} files take any size. Leave it out.")
        probe_size = format_module("tflite").parse_size(size)
    if not os.path.exists(source):
        raise ConversionError(f"{source}: no such file or folder")
    refuse_overlap(source, dest)
    taken = [p for p in companions(dest, fmt) if os.path.exists(p)]
    if taken and not overwrite:
        raise ConversionError(f"{taken[0]} exists (written with {dest}); remove it or pass --overwrite.")
    if os.path.exists(dest):
        if not overwrite:
            raise ConversionError(f"{dest} exists; remove it or pass --overwrite.")
        if os.path.isdir(dest) and not os.path.isfile(os.path.join(dest, "saved_model.pb")):
            raise ConversionError(f"{dest} is a folder but not a SavedModel; --overwrite replaces files and SavedModel "
                                  "folders only. Choose another destination.")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise ConversionError(f"{folder}: no such folder for the destination; create it first.")

    source_format = detect(source)
    say(f"source:  {source} ({source_format})")
    spec = read(source, source_format)
    if backbone is not None and backbone != spec.backbone:
        raise ConversionError(f"{source} holds {spec.backbone} weights, but --backbone {backbone} was given: pass the "
                              f"{backbone} file, or leave --backbone out (it is read from the weights).")
    knobs = check_knobs(knobs or {})
    if onnx_from not in (None, "pytorch", "tensorflow"):
        raise ConversionError(f"onnx_from={onnx_from!r}; choose pytorch or tensorflow")
    via_tensorflow = fmt == "onnx" and (onnx_from or ("tensorflow" if source_format == "savedmodel" else "pytorch")) == "tensorflow"
    if via_tensorflow and source_format != "savedmodel":
        raise ConversionError("ONNX through tf2onnx is made from a SavedModel: convert to a SavedModel first "
                              "(`bgmv2 convert SOURCE model_savedmodel`), then the SavedModel to ONNX.")
    if via_tensorflow and precision != "fp32":
        raise ConversionError("tf2onnx converts the SavedModel's fp32 graph; for fp16 ONNX pass --onnx-from pytorch.")
    if via_tensorflow and any(spec.knob_values().get(k) != v for k, v in knobs.items()):
        raise ConversionError("a SavedModel's knobs are fixed: tf2onnx converts its graph as it is. Write a new SavedModel "
                              "with the knobs first, or pass --onnx-from pytorch.")
    if knobs and spec.kind != "refine":
        raise ConversionError(f"{source} is a MattingBase (no refiner): knobs ({', '.join(knobs)}) do not apply.")
    target = replace(spec, knobs={**spec.knob_values(), **knobs}, notes=list(spec.notes))
    for note in spec.notes:
        say(f"note:    {note}")
    variant = onnx_variant if fmt == "onnx" else None
    if via_tensorflow:
        variant = "tf2onnx"
    elif fmt == "onnx" and target.knob_values().get("refine_mode") != "sampling":
        variant = "nonzero" if target.knob_values().get("refine_mode") == "thresholding" else "dense"
    extra = {}
    if via_tensorflow:
        import tf2onnx
        from .tf_formats import OPSET as TF_OPSET
        extra = {"onnx_variant": variant, "exporter": f"tf2onnx {tf2onnx.__version__} (SavedModel serving_default)",
                 "opset": TF_OPSET, "simplified": "yes" if simplify else "no"}
    elif fmt == "onnx":
        from .onnx_format import EXPORTER, OPSET
        extra = {"onnx_variant": variant, "exporter": EXPORTER, "opset": OPSET, "simplified": "yes" if simplify else "no"}
        if variant == "tensorrt":
            from .exportable import TENSORRT_TOPK_LIMIT
            extra["topk_limit"] = topk_limit or TENSORRT_TOPK_LIMIT
    if fmt in ("keras", "savedmodel"):
        from . import tf_formats
        extra.update(tf_formats.versions())
    metadata = meta_mod.describe(target, fmt, precision, layout_for(fmt, via_tensorflow), source, source_format, **extra)
    temporary = temporary_name(dest)
    remove(temporary, fmt)
    say(f"writing: {dest} ({fmt}, {precision}, {layout_for(fmt, via_tensorflow)} input"
        + (f", onnx variant {variant}" if variant else "") + ")")
    try:
        if via_tensorflow:
            from .tf_formats import write_onnx_from_savedmodel
            write_onnx_from_savedmodel(source, temporary, metadata, simplify)
        else:
            write(target, temporary, fmt, metadata, precision, onnx_variant if fmt == "onnx" else "static", simplify,
                  topk_limit, size)
        comparisons = validate(source, source_format, spec, temporary, fmt, target, precision, probe_size,
                               probe_batch, validate_with)
        for comparison in comparisons:
            say(f"check:   {comparison.text()}")
        failed = [c for c in comparisons if not c.ok]
        if failed:
            raise ConversionError(f"{dest} was not written: the converted model does not compute the same alpha as "
                                  f"{source} on the probe. " + " | ".join(c.text() for c in failed))
        if os.path.exists(dest) and overwrite:
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
    if source_knobs == target_knobs or source_format in KNOBS_AT_LOAD:
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
