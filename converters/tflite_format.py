"""TFLite: the Keras model as one TFLite flatbuffer of builtin ops (no Flex), run with LiteRT or tf.lite.

Written from the `tensorflow_impl` model (the data-independent `sampling` path, the same numbers as
PyTorch), traced in a `tf.function` with its variables frozen into constants, converted with
`tf.lite.TFLiteConverter` restricted to `TFLITE_BUILTINS`; then the flatbuffer is finished here:
- inputs `src`, `bgr` (float32 NHWC RGB in [0, 1], in that order), outputs `pha`, `fgr`, `pha_sm`,
  `fgr_sm`, `err_sm`, `ref_sm` (NHWC; MattingBase: `pha`, `fgr`, `err`, `hid`) in that order, the
  tensors named so, and a signature `serving_default` listing them in the same order (the converter
  leaves `Identity_N` names and no signature);
- any batch, height and width (padded to a multiple of 4 and cropped back inside the graph,
  `bgmv2.tensorflow_impl.matte`), or one fixed frame size chosen at conversion (`convert(..., size=(height,
  width))` or `size="WIDTHxHEIGHT"`, `bgmv2 convert --size WIDTHxHEIGHT`), recorded in the metadata as
  `frame_size` = `WIDTHxHEIGHT` (the project's one size order) or `any`;
- the bgmv2 metadata (knobs, layout, contract, source and hash) as JSON in the flatbuffer's own
  `metadata` table under the name `bgmv2` (one file, no sidecar).
fp32 only. The weights are folded into the graph (BatchNorm into the convolutions), so a state dict
is not read back from a TFLite file: read the file it was converted from.
"""
import os
import re
import warnings
from typing import Dict, Optional, Tuple

from . import meta as meta_mod
from .errors import ConversionError, first_line
from .formats import INPUTS
from .meta import ModelSpec
from .runner import Runner

NAME = "tflite"
DESCRIPTION = "TFLite flatbuffer, builtin ops only (LiteRT / tf.lite), metadata in the flatbuffer"
LAYOUT = "NHWC"
SIDE = "tflite"
SUFFIXES = (".tflite",)
PRECISIONS = ("fp32",)  # LiteRT's CPU kernels compute in fp32 anyway
RUNTIMES = ("litert", "tensorflow")  # LiteRT (default where installed), tf.lite
KNOBS_AT_LOAD = False
TAKES_SIZE = True  # one fixed frame size may be chosen at conversion (Job.size)

FILE_IDENTIFIER = b"TFL3"
METADATA_NAME = "bgmv2"
SIGNATURE = "serving_default"
INTERPRETERS = RUNTIMES


# -- detection and metadata (no TensorFlow needed) ------------------------------------------------
def detect(path, kind=None) -> bool:
    """A TFLite flatbuffer: its file identifier `TFL3` at bytes 4-8 (`file_kinds.TFLITE`)."""
    from bgmv2.pytorch_impl import file_kinds
    if kind is not None:
        return kind == file_kinds.TFLITE
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == FILE_IDENTIFIER


def schema():
    """The TFLite flatbuffer schema module (LiteRT's or TensorFlow's copy)."""
    try:
        from ai_edge_litert import schema_py_generated
        return schema_py_generated
    except ImportError:
        pass
    try:
        from tensorflow.lite.python import schema_py_generated
        return schema_py_generated
    except ImportError:
        raise ConversionError("reading TFLite files needs LiteRT or TensorFlow: pip install 'bgmv2-zoo[tflite]'.") from None


def metadata_of(path: str) -> Dict[str, str]:
    """The bgmv2 metadata entry of a TFLite file ({} when there is none)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        model = schema().Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() and entry.Name().decode("utf-8", "replace") == METADATA_NAME:
                buffer = model.Buffers(entry.Buffer())
                raw = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else \
                    data[buffer.Offset():buffer.Offset() + buffer.Size()]
                return meta_mod.from_json(raw.decode("utf-8", "replace"))
    except ConversionError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged flatbuffer
        raise ConversionError(f"{path} starts like a TFLite file but cannot be parsed ({first_line(error)}); it is "
                              "probably truncated: copy it again.") from None
    return {}


def info(path) -> Dict[str, str]:
    return metadata_of(os.fspath(path))


def read(path) -> ModelSpec:
    raise ConversionError(f"{os.fspath(path)} is a TFLite file: its weights are folded into the graph (BatchNorm into "
                          "the convolutions), so no state dict is read back from it. Convert from the file it was "
                          "made from (`bgmv2 convert --info` shows its name and sha256).")


# -- writing -----------------------------------------------------------------------------------------
def size_text(size: Tuple[int, int]) -> str:
    """(height, width) -> 'WIDTHxHEIGHT', the project's one size order, for metadata and messages."""
    return f"{size[1]}x{size[0]}"


def check_size(size, spec: Optional[ModelSpec] = None) -> Optional[Tuple[int, int]]:
    """The (height, width) a file is written for (None: any size); ConversionError naming the fix when
    it is not multiples of 4 or too small for the backbone scale."""
    if size is None:
        return None
    height, width = size
    if height % 4 or width % 4:
        raise ConversionError(f"size {size_text(size)} (WIDTHxHEIGHT): width and height must be multiples of 4, e.g. "
                              "1280x720 (the conversion checks the file at that size against the source, which "
                              "needs multiples of 4); without a size the TFLite file takes any frame size, odd "
                              "ones included.")
    if spec is not None and spec.kind == "refine":
        from bgmv2.tensorflow_impl.inputs import check_scaled_size
        try:
            check_scaled_size(height, width, spec.knob_values()["backbone_scale"])
        except ValueError as error:
            raise ConversionError(f"size {size_text(size)}: {error}") from None
    return height, width


def parse_recorded_size(text: str) -> Optional[Tuple[int, int]]:
    """(height, width) from the metadata's `frame_size` ('WIDTHxHEIGHT'); None for 'any' or junk."""
    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        return None
    return height, width


def frozen_function(spec: ModelSpec, size: Optional[Tuple[int, int]]):
    """The model (padding and cropping included) as a concrete function with its weights as constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from .tf_formats import keras_model, require_tf
    impl = require_tf()
    model = keras_model(spec, static_shapes=True)
    height, width = size or (None, None)
    image = [tf.TensorSpec([None, height, width, 3], tf.float32, name=name) for name in INPUTS]

    @tf.function(input_signature=image)
    def matte(src, bgr):
        return tuple(impl.matte(model, src, bgr))

    return convert_variables_to_constants_v2(matte.get_concrete_function())


def convert_builtins(function) -> bytes:
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter's own error types vary by version
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op", str(error))))
        if ops:
            raise ConversionError(f"TFLite builtin ops cannot express {', '.join(ops)} in this model; Flex ops are not "
                                  "written (LiteRT cannot run them). Use refine_mode sampling (the default) or full, "
                                  "which convert.") from None
        raise ConversionError(f"the TFLite converter failed ({first_line(error)}).") from None


def finish(blob: bytes, outputs, metadata: Dict[str, str]) -> bytes:
    """Name the input and output tensors, add the `serving_default` signature (contract order) and
    the bgmv2 metadata entry."""
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils
    fb = schema()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    if len(model.subgraphs) != 1:
        raise ConversionError(f"the TFLite converter made {len(model.subgraphs)} subgraphs; expected one.")
    graph = model.subgraphs[0]
    inputs, results = list(graph.inputs), list(graph.outputs)
    found = [graph.tensors[i].name.decode() for i in inputs]
    if found != list(INPUTS) or len(results) != len(outputs):
        raise ConversionError(f"the TFLite converter gave inputs {found} and {len(results)} outputs; expected "
                              f"{list(INPUTS)} and {len(outputs)}.")
    for index, name in zip(results, outputs):
        graph.tensors[index].name = name.encode()
    signature = fb.SignatureDefT()
    signature.signatureKey = SIGNATURE
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(fb, name, i) for name, i in zip(INPUTS, inputs)]
    signature.outputs = [tensor_map(fb, name, i) for name, i in zip(outputs, results)]
    model.signatureDefs = [signature]
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(meta_mod.to_json(metadata).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tensor_map(fb, name: str, index: int):
    entry = fb.TensorMapT()
    entry.name = name
    entry.tensorIndex = index
    return entry


def prepare(job) -> Dict[str, str]:
    """Check the frame size (`job.size`, (height, width)) before anything is written."""
    check_size(job.size, job.spec)
    return {}


def write(spec: ModelSpec, path, metadata: Optional[Dict[str, str]] = None, job=None) -> None:
    """Write `spec` as a TFLite file at `path`: any frame size, or the fixed `job.size` (height, width)."""
    precision = getattr(job, "precision", "fp32")
    if precision != "fp32":
        raise ConversionError(f"TFLite files are written in fp32 only ({precision} asked): LiteRT's CPU kernels "
                              "compute in fp32 anyway. Convert with --precision fp32.")
    size = check_size(getattr(job, "size", None), spec)
    from .tf_formats import contract, outputs_of, versions
    outputs = outputs_of(spec.kind)
    function = frozen_function(spec, size)
    blob = convert_builtins(function)
    record = {**(metadata or {}), **versions(), **contract(spec.kind),
              "frame_size": size_text(size) if size else "any", "ops": "TFLITE_BUILTINS"}
    with open(os.fspath(path), "wb") as f:
        f.write(finish(blob, outputs, record))


# -- running -----------------------------------------------------------------------------------------
def interpreter_class(name: Optional[str]):
    """LiteRT's interpreter (default where installed), or TensorFlow's `tf.lite.Interpreter`."""
    if name not in (None, *INTERPRETERS):
        raise ConversionError(f"interpreter {name!r}; choose one of {', '.join(INTERPRETERS)}")
    if name in (None, "litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter
            return "litert", Interpreter
        except ImportError:
            if name == "litert":
                raise ConversionError("LiteRT is not installed: pip install 'bgmv2-zoo[tflite]' (ai-edge-litert), "
                                      "or run with interpreter='tensorflow'.") from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ConversionError("running TFLite files needs LiteRT or TensorFlow: pip install 'bgmv2-zoo[tflite]'.") from None
    return "tensorflow", tf.lite.Interpreter


def fixed_size(metadata: Dict[str, str]) -> Optional[Tuple[int, int]]:
    """(height, width) of a file written for one frame size; None for any size."""
    size = metadata.get("frame_size", "any")
    return None if size == "any" else parse_recorded_size(size)


def load(path, knobs: Optional[Dict[str, object]] = None, device: str = "cpu", runtime: Optional[str] = None,
         precision: Optional[str] = None, threads: Optional[int] = None, interpreter: Optional[str] = None,
         **_) -> Runner:
    """A runner for a TFLite file; `runtime` litert (default where installed) or tensorflow (tf.lite);
    `interpreter` is the older name of the same choice."""
    path = os.fspath(path)
    interpreter = runtime or interpreter
    if precision not in (None, "fp32"):
        raise ConversionError(f"{path}: a TFLite file computes in the precision it was written in (fp32); "
                              f"{precision} is not available for it")
    if knobs:
        raise ConversionError(f"{path}: the knobs of a TFLite file are fixed when it is written ({', '.join(knobs)} "
                              "asked); convert it again with them.")
    metadata = metadata_of(path)
    which, cls = interpreter_class(interpreter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            engine = cls(model_path=path, num_threads=threads)
        runner = engine.get_signature_runner(SIGNATURE)
        names = list(engine.get_signature_list()[SIGNATURE]["outputs"])
    except ValueError as error:
        raise ConversionError(f"{path} has no `{SIGNATURE}` signature or cannot be read ({first_line(error)}); it was "
                              "not written by bgmv2-zoo: convert the source again.") from None
    expected = [n.strip() for n in metadata.get("outputs", "").split(",") if n.strip()]
    if expected and sorted(expected) == sorted(names):
        names = expected  # contract order (signature lists may come back sorted by name)
    size = fixed_size(metadata)

    def run(src, bgr):
        if size is not None and tuple(src.shape[2:]) != size:
            raise ConversionError(f"{path} was converted for {size_text(size)} frames (--size, WIDTHxHEIGHT); got "
                                  f"{src.shape[3]}x{src.shape[2]}. Resize the frames, or convert again with "
                                  "--size for this size or without --size (any size).")
        out = runner(src=src.transpose(0, 2, 3, 1).copy(), bgr=bgr.transpose(0, 2, 3, 1).copy())
        return [out[name] for name in names]

    return Runner(run, "tflite", path, names, "NHWC", metadata, "fp32", engine, any_size=True, device=device,
                  runtime="litert" if which == "litert" else "tensorflow",
                  engine=f"{'LiteRT' if which == 'litert' else 'tf.lite'} Interpreter")
