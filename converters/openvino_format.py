"""OpenVINO: IR files (`NAME.xml` + `NAME.bin`), and the runner that also runs ONNX and SavedModels with OpenVINO.

Written from the ONNX export (`onnx_format.write_onnx`, `static` sampling variant: the same graph
ONNX Runtime runs), converted with `openvino.convert_model` and saved with fp32 weights
(`compress_to_fp16=False`; `precision="fp16"` stores fp16 weights, as `ovc`'s default would
silently). Around the converted graph this module adds:
- inputs `src`, `bgr` (float32 NCHW RGB in [0, 1], in that order; any batch, height and width):
  edge-padded to a multiple of 4 (`Pad`, mode `edge`) and the full-resolution outputs sliced back,
  so every frame size gives the alpha `bgmv2.pytorch_impl.matte` gives;
- outputs `pha`, `fgr`, `pha_sm`, `fgr_sm`, `err_sm`, `ref_sm` (MattingBase: `pha`, `fgr`, `err`,
  `hid`) by those names and in that order;
- the bgmv2 metadata in the IR's `rt_info` under `bgmv2` (knobs, layout, contract, source, hash).

Precision is pinned when a model is compiled: OpenVINO's CPU plugin runs bf16 by default on CPUs
with AVX-512 BF16 or AMX, which changed alpha by up to 0.30 on this model. The runner sets
`INFERENCE_PRECISION_HINT` to f32 unless bf16 (or f16) is asked for, refuses a precision the CPU
lacks, and reports the precision the compiled model says it uses. `precision="default"` compiles
without the hint, as a plain `core.compile_model(path, "CPU")` does (what `bgmv2 parity` reports
beside the pinned run); no setting saved in the IR pins it (see docs/deployment.md).

The weights are folded by the ONNX exporter and OpenVINO (BatchNorm into convolutions), so a state
dict is not read back from an IR: read the file it was converted from.
"""
import os
from typing import Dict, List, Optional

import numpy as np

from .errors import ConversionError, first_line
from .formats import INPUTS, OUTPUTS_BASE, OUTPUTS_REFINE
from .meta import ModelSpec
from .openvino_core import convert_model, core, openvino
from .runner import Runner

NAME = "openvino"
DESCRIPTION = "OpenVINO IR (NAME.xml + NAME.bin), metadata in rt_info"
LAYOUT = "NCHW"
SIDE = "openvino"
SUFFIXES = (".xml",)
PRECISIONS = ("fp32", "fp16")  # of the stored weights; bf16 / fp16 inference is a load option
RUNTIMES = ("openvino",)
KNOBS_AT_LOAD = False

RT_INFO = "bgmv2"
# Other formats OpenVINO converts in memory and runs (`load_other`, `converters.load(path, runtime="openvino")`).
RUNS_OTHER = ("onnx", "savedmodel")
# Runner precisions and OpenVINO's inference precision hints (and the CPU capability each needs).
HINTS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}


def require():
    try:
        return openvino()
    except ImportError:
        raise ConversionError("OpenVINO is not installed: pip install 'bgmv2-zoo[openvino]'.") from None


def bin_path(path) -> str:
    """The weights file of an IR: `NAME.bin` beside `NAME.xml`."""
    return os.path.splitext(os.fspath(path))[0] + ".bin"


def companions(path) -> List[str]:
    """Files that belong to `path` and move with it (the `.bin` of an IR)."""
    return [bin_path(path)]


# -- detection and metadata ------------------------------------------------------------------------
def detect(path, kind=None) -> bool:
    """An OpenVINO IR: an XML file whose root element is `<net ...>` (`file_kinds` does not know it,
    so the content is read here whatever `kind` says)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<?xml"):
        text = text[text.find(b"?>") + 2:].lstrip()
    return text.startswith(b"<net ") or text.startswith(b"<net>")


def check_ir(path: str) -> None:
    if not os.path.isfile(bin_path(path)):
        raise ConversionError(f"{path} is an OpenVINO IR, but its weights {os.path.basename(bin_path(path))} are "
                              "missing beside it: copy the .xml and the .bin together.")


def read_ir(path: str):
    ov = require()
    check_ir(path)
    try:
        return core().read_model(path)
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path} is an OpenVINO IR that OpenVINO cannot read ({first_line(error)}); the .xml "
                              "or .bin is probably truncated: copy both again.") from None


def metadata_of_model(model) -> Dict[str, str]:
    """The bgmv2 entries of a model's rt_info ({} when there are none)."""
    if not model.has_rt_info([RT_INFO]):
        return {}
    try:
        return {str(k): v.astype(str) for k, v in model.get_rt_info([RT_INFO]).astype(dict).items()}
    except Exception:  # noqa: BLE001 - rt_info of an unexpected shape: no metadata of ours
        return {}


def info(path) -> Dict[str, str]:
    return metadata_of_model(read_ir(os.fspath(path)))


def read(path) -> ModelSpec:
    raise ConversionError(f"{os.fspath(path)} is an OpenVINO IR: its weights are folded into the graph (BatchNorm into "
                          "the convolutions), so no state dict is read back from it. Convert from the file it was "
                          "made from (`bgmv2 convert --info` shows its name and sha256).")


# -- writing -----------------------------------------------------------------------------------------
def constant(values, dtype=np.int64):
    from openvino import opset13 as op
    return op.constant(np.asarray(values, dtype=dtype))


def any_frame_size(model, outputs):
    """`model` (inputs multiples of 4) wrapped to take any height and width: inputs edge-padded to a
    multiple of 4, outputs at the padded size sliced back; outputs named `outputs`, in that order."""
    import openvino as ov
    from openvino import opset13 as op
    old = list(model.get_parameters())
    names = [p.output(0).get_any_name() for p in old]
    if names != list(INPUTS):
        raise ConversionError(f"the converted graph has inputs {names}; expected {list(INPUTS)}.")
    new = []
    for name in names:
        parameter = op.parameter(ov.PartialShape([-1, 3, -1, -1]), ov.Type.f32, name=name)
        parameter.output(0).set_names({name})
        new.append(parameter)
    axes = constant([2, 3])
    size = op.gather(op.shape_of(new[0], "i64"), axes, constant(0))
    pad = op.mod(op.subtract(constant([4, 4]), op.mod(size, constant([4, 4]))), constant([4, 4]))
    padded_size = op.add(size, pad)
    for before, after in zip(old, new):
        padded = op.pad(after, constant([0, 0, 0, 0]), op.concat([constant([0, 0]), pad], 0), "edge")
        before.output(0).replace(padded.output(0))
    by_name = {r.input_value(0).get_any_name(): r.input_value(0) for r in model.get_results()}
    if sorted(by_name) != sorted(outputs):
        raise ConversionError(f"the converted graph has outputs {sorted(by_name)}; expected {list(outputs)}.")
    results = []
    for name in outputs:
        value = by_name[name]
        value.set_names(set())
        shape = op.gather(op.shape_of(value, "i64"), axes, constant(0))
        stop = op.select(op.equal(shape, padded_size), size, shape)  # full resolution: crop; coarse: whole
        cropped = op.slice(value, constant([0, 0]), stop, constant([1, 1]), axes)
        cropped.output(0).set_names({name})
        results.append(op.result(cropped))
    return ov.Model(results, new, "bgmv2")


def prepare(job) -> Dict[str, str]:
    """Nothing to choose beyond the precision of the weights (checked against PRECISIONS by `convert`)."""
    require()
    return {}


def write(spec: ModelSpec, path, metadata: Optional[Dict[str, str]] = None, job=None) -> None:
    """Write `spec` as `path` (.xml) and its `.bin`: fp32 weights, or fp16 weights with `job.precision`."""
    precision = getattr(job, "precision", "fp32")
    if precision not in ("fp32", "fp16"):
        raise ConversionError(f"OpenVINO IR weights are fp32 or fp16 ({precision} asked); bf16 is an inference "
                              "precision: load with precision='bf16' instead.")
    ov = require()
    from .onnx_format import write_onnx
    path = os.fspath(path)
    if not path.endswith(".xml"):
        raise ConversionError(f"{path}: an OpenVINO IR is NAME.xml (with NAME.bin beside it); give a name ending .xml.")
    folder, name = os.path.split(os.path.abspath(path))
    onnx_path = os.path.join(folder, f".partial-{os.getpid()}-{name}.onnx")
    outputs = OUTPUTS_REFINE if spec.kind == "refine" else OUTPUTS_BASE
    try:
        write_onnx(spec, onnx_path, {}, "fp32", "static")
        model = any_frame_size(convert_model(onnx_path), outputs)
    finally:
        if os.path.exists(onnx_path):
            os.remove(onnx_path)
    record = {**(metadata or {}), "inputs": ", ".join(INPUTS), "outputs": ", ".join(outputs), "frame_size": "any",
              "openvino_version": ov.__version__.split("-")[0], "weights": precision,
              "layout": "NCHW", "converted_from": "onnx (static sampling variant)"}
    for key, value in record.items():
        model.set_rt_info(str(value), [RT_INFO, key])
    try:
        ov.save_model(model, path, compress_to_fp16=precision == "fp16")
    except BaseException:
        for leftover in (path, bin_path(path)):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise


# -- running -----------------------------------------------------------------------------------------
DEFAULT = "default"  # the plugin's own choice, as a plain `core.compile_model(path, "CPU")` makes it
FIX = 'core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})'  # the one line that pins f32


def check_precision(precision: Optional[str]) -> str:
    """The runner precision asked for (fp32 when none; `default`: the plugin's own), refused when unknown
    or when the CPU lacks it."""
    require()
    precision = precision or "fp32"
    if precision == DEFAULT:
        return precision
    if precision not in HINTS:
        raise ConversionError(f"OpenVINO precision {precision!r}; choose one of {', '.join(HINTS)}, or {DEFAULT} "
                              "(the plugin's own choice).")
    if precision != "fp32":
        capability = HINTS[precision][1]
        capabilities = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if capability not in capabilities:
            raise ConversionError(f"this CPU has no {capability} support in OpenVINO (it offers "
                                  f"{', '.join(capabilities)}); run with precision fp32.")
    return precision


def used_precision(compiled) -> str:
    """fp32, bf16 or fp16: the inference precision a compiled model reports (fp32 for 'dynamic': the
    model's own, f32 here)."""
    used = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    for words, name in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "fp16"), ("f16", "fp16")):
        if words in used:
            return name
    return "fp32"


def compile_pinned(model, precision: Optional[str], threads: Optional[int], label: str):
    """Compile for the CPU with the inference precision pinned (f32 unless asked; `default`: not pinned,
    as a plain `core.compile_model` does); (compiled, the precision it runs in)."""
    precision = check_precision(precision)
    config = {} if precision == DEFAULT else {"INFERENCE_PRECISION_HINT": HINTS[precision][0]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        compiled = core().compile_model(model, "CPU", config)
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{label}: OpenVINO cannot compile it for the CPU ({first_line(error)}).") from None
    used = used_precision(compiled)
    if precision != DEFAULT and used != precision:
        raise ConversionError(f"{label}: OpenVINO compiled it with inference precision {used}, not {precision} as "
                              "asked.")
    return compiled, used if precision == DEFAULT else precision


def port_names(ports) -> List[str]:
    names = []
    for port in ports:
        found = port.get_names()
        plain = sorted(n.split(":")[0] for n in found)
        names.append(next((n for n in plain if n in (*INPUTS, *OUTPUTS_REFINE, *OUTPUTS_BASE)),
                          port.get_any_name()))
    return names


def openvino_runner(model, fmt: str, path: str, layout: str, metadata: Dict[str, str], precision: Optional[str],
                    threads: Optional[int], any_size: bool) -> Runner:
    compiled, used = compile_pinned(model, precision, threads, path)
    inputs = port_names(compiled.inputs)
    if sorted(inputs) != sorted(INPUTS):
        raise ConversionError(f"{path}: inputs {inputs}; expected {list(INPUTS)}.")
    outputs = port_names(compiled.outputs)
    order = OUTPUTS_REFINE if all(n in outputs for n in OUTPUTS_REFINE) else OUTPUTS_BASE
    if not all(n in outputs for n in order):
        raise ConversionError(f"{path}: outputs {outputs}; expected {', '.join(OUTPUTS_REFINE)}.")
    positions = [outputs.index(n) for n in order]
    request = compiled.create_infer_request()

    def run(src, bgr):
        if layout == "NHWC":
            src, bgr = src.transpose(0, 2, 3, 1).copy(), bgr.transpose(0, 2, 3, 1).copy()
        feed = {inputs.index("src"): src, inputs.index("bgr"): bgr}
        result = request.infer(feed)
        return [np.array(result[compiled.outputs[i]]) for i in positions]

    how = "plugin default, " if precision == DEFAULT else ""
    return Runner(run, fmt, path, order, layout, metadata, used, compiled, any_size=any_size, runtime="openvino",
                  engine=f"OpenVINO {require().__version__.split('-')[0]} CPU, {how}inference precision {used}")


def refuse_knobs(path: str, what: str, knobs: Optional[Dict[str, object]]) -> None:
    """Knobs cannot be changed in a converted graph: say so, and how to get them."""
    if knobs:
        raise ConversionError(f"{path}: the knobs of {what} are fixed when it is written ({', '.join(knobs)} "
                              "asked); convert it again with them.")


def load(path, knobs: Optional[Dict[str, object]] = None, device: str = "cpu", runtime: Optional[str] = None,
         precision: Optional[str] = None, threads: Optional[int] = None, **_) -> Runner:
    """A runner for an IR: inference precision pinned to fp32 unless `precision` (bf16, fp16) is asked."""
    path = os.fspath(path)
    refuse_knobs(path, "an OpenVINO IR", knobs)
    check_precision(precision)
    model = read_ir(path)
    metadata = metadata_of_model(model)
    return openvino_runner(model, "openvino", path, "NCHW", metadata, precision, threads,
                           metadata.get("frame_size") == "any")


def load_other(path, fmt: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
               precision: Optional[str] = None, threads: Optional[int] = None, **_) -> Runner:
    """Run an ONNX file or a SavedModel with OpenVINO (converted in memory), precision pinned as `load`."""
    ov = require()
    path = os.fspath(path)
    refuse_knobs(path, f"a {fmt} file", knobs)
    check_precision(precision)
    from . import formats
    if fmt == NAME:
        return load(path, knobs, device, NAME, precision, threads)
    if fmt not in RUNS_OTHER:
        raise ConversionError(f"OpenVINO runs OpenVINO IR, {' and '.join(RUNS_OTHER)} files, not {fmt}; convert it "
                              "first (`bgmv2 convert FILE model.xml`).")
    module = formats.get(fmt)
    metadata = module.info(path)
    layout = metadata.get("layout", module.LAYOUT)  # ONNX made from a SavedModel says NHWC
    try:
        model = convert_model(path)
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: OpenVINO cannot convert this {fmt} file ({first_line(error)}).") from None
    runner = openvino_runner(model, fmt, path, layout, metadata, precision, threads,
                             metadata.get("frame_size") == "any")
    return runner
