"""TensorFlow-side formats: Keras 3 weights (`.weights.h5`), SavedModel, and ONNX made from a SavedModel.

All take NHWC input, as TensorFlow users expect (the runners transpose NCHW probes for them).

- Keras weights: `tensorflow_impl` model's `save_weights`; metadata (JSON) in the HDF5 root
  attribute `bgmv2_metadata`. Knobs can be set when loading (`tensorflow_impl.MattingRefine(...)`).
- SavedModel: a `tf.Module` running the Keras model (its data-independent `sampling` path,
  `refine_static_shapes=True`: the same numbers, and no NonZero in ONNX made from it), with the serving signature
  `serving_default(src, bgr)` -> `{pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm}` (float32 NHWC, any
  batch, height and width: padded to a multiple of 4 and cropped back in the graph; no float64
  tensor), the positional `matte(src, bgr)` returning the same outputs as a tuple in that order
  (signatures list their entries alphabetically: bind by name), the weights once, as the list
  `state_variables` in state-dict order (so they can be read back without Keras), and
  `assets/bgmv2.json` (metadata: knobs, layout NHWC, `inputs` and `outputs` in contract order,
  the state-dict keys). Knobs are fixed when it is written.
- ONNX from a SavedModel: tf2onnx (`tf_loader.from_saved_model` + the converter the tf2onnx CLI
  uses), opset 18 (or the one asked for: tf2onnx writes 14-18 itself), NHWC, the same input and output names. Its weights are renamed and folded by
  tf2onnx, so a state dict is read from the SavedModel, not from this ONNX file.
"""
import json
import os
from typing import Dict, Optional

import numpy as np

from . import meta as meta_mod
from .errors import ConversionError, first_line
from .formats import OUTPUTS_BASE, OUTPUTS_REFINE
from .meta import ModelSpec
from .runner import Runner

META_ATTRIBUTE = "bgmv2_metadata"
META_FILE = "bgmv2.json"
OPSET = 18


def require_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf  # noqa: F401
        import keras  # noqa: F401
        from bgmv2 import tensorflow_impl
    except ImportError as error:
        raise ConversionError(f"the TensorFlow formats need TensorFlow and Keras 3 ({first_line(error)}): "
                              "pip install 'bgmv2-zoo[tf-cpu]' (or [tf]).") from None
    return tensorflow_impl


def versions() -> Dict[str, str]:
    import keras
    import tensorflow as tf
    require_tf()
    return {"tensorflow_version": tf.__version__, "keras_version": keras.__version__}


def keras_model(spec: ModelSpec, knobs: Optional[Dict[str, object]] = None, static_shapes: bool = False,
                dtype: Optional[str] = None):
    """The `tensorflow_impl` model of `spec` with its weights and knobs (`static_shapes`: the
    data-independent `sampling` path, same numbers, no NonZero in graphs made from it; `dtype`: a
    Keras dtype policy such as mixed_float16)."""
    impl = require_tf()
    if spec.kind == "refine":
        options = dict(spec.knob_values() if knobs is None else knobs)
        if static_shapes:
            options["refine_static_shapes"] = True
        model = impl.MattingRefine(spec.backbone, refine_kernel_size=spec.refine_kernel_size, dtype=dtype, **options)
    else:
        model = impl.MattingBase(spec.backbone, dtype=dtype)
    try:
        impl.load_torch_state_dict(model, spec.state)
    except impl.StateDictError as error:
        raise ConversionError(f"the weights do not fit the Keras model: {error}") from None
    return model


def outputs_of(spec_kind: str):
    return OUTPUTS_REFINE if spec_kind == "refine" else OUTPUTS_BASE


# -- Keras weights ----------------------------------------------------------------------------------
def write_keras(spec: ModelSpec, path: str, metadata: Dict[str, str]) -> None:
    import h5py
    model = keras_model(spec)
    target = path if path.endswith(".weights.h5") else path + ".weights.h5"  # Keras insists on the suffix
    try:
        model.save_weights(target)
        if target != path:
            os.replace(target, path)
    except BaseException:
        if target != path and os.path.exists(target):
            os.remove(target)  # the caller removes `path`; this name is ours
        raise
    with h5py.File(path, "a") as f:
        f.attrs[META_ATTRIBUTE] = meta_mod.to_json(metadata)


def keras_metadata(path: str) -> Dict[str, str]:
    try:
        import h5py
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(META_ATTRIBUTE)
    except ImportError:
        raise ConversionError("reading Keras weights needs h5py (installed with keras).") from None
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path} looks like HDF5 but cannot be read ({first_line(error)}); it is probably "
                              "truncated or corrupt.") from None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return meta_mod.from_json(raw) if raw else {}


def spec_skeleton(metadata: Dict[str, str], path: str) -> ModelSpec:
    """Kind, backbone and kernel size from the metadata (the weights come later)."""
    from bgmv2.pytorch_impl import BACKBONES
    kind = "base" if metadata.get("model") == "MattingBase" else "refine"
    backbone = metadata.get("backbone")
    if backbone not in BACKBONES:
        raise ConversionError(f"{path} has no bgmv2 metadata naming its backbone (not written by bgmv2-zoo), so the "
                              "model it belongs to is unknown; pass it through `bgmv2 convert` from its source.")
    try:
        kernel = int(metadata.get("refine_kernel_size", 3)) if kind == "refine" else None
    except ValueError:
        kernel = 3
    return ModelSpec({}, kind, backbone, kernel, meta_mod.knobs_from_metadata(metadata), "fp32", dict(metadata))


def read_keras(path: str) -> ModelSpec:
    impl = require_tf()
    metadata = keras_metadata(path)
    spec = spec_skeleton(metadata, path)
    if spec.kind == "refine":
        model = impl.MattingRefine(spec.backbone, refine_kernel_size=spec.refine_kernel_size)
    else:
        model = impl.MattingBase(spec.backbone)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: the weights do not load into {type(model).__name__}({spec.backbone!r}) "
                              f"({first_line(error)}).") from None
    spec.state = impl.torch_state_dict(model)
    return spec


def tf_device(device: str) -> str:
    """TensorFlow's name of a device: cpu -> /CPU:0, cuda:N -> /GPU:N."""
    return "/CPU:0" if device == "cpu" else "/GPU:" + device.split(":")[1]


def engine(what: str) -> str:
    import tensorflow as tf
    return f"TensorFlow {tf.__version__} {what}"


def load_keras(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
               precision: Optional[str] = None, eager: bool = False, **_) -> Runner:
    """Keras weights in the `tensorflow_impl` model under `tf.function` (`eager=True`: eager calls);
    precision fp16 runs under a mixed_float16 policy."""
    import tensorflow as tf
    if precision not in (None, "fp32", "fp16"):
        raise ConversionError(f"precision {precision!r}; Keras weights run in fp32, or fp16 (mixed_float16)")
    spec = read_keras(path)
    chosen = {**spec.knob_values(), **(knobs or {})} if spec.kind == "refine" else None
    policy = "mixed_float16" if precision == "fp16" else None
    with tf.device(tf_device(device)):
        model = keras_model(spec, chosen, dtype=policy)
    call = model if eager else tf.function(lambda src, bgr: model(src, bgr), input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None, None, 3], tf.float32)])

    def run(src, bgr):
        with tf.device(tf_device(device)):
            outputs = call(tf.constant(src.transpose(0, 2, 3, 1)), tf.constant(bgr.transpose(0, 2, 3, 1)))
        return [np.asarray(o.numpy(), dtype=np.float32) for o in outputs]

    what = ("eager" if eager else "tf.function") + (" mixed_float16" if policy else "") + " (Keras)"
    return Runner(run, "keras", path, outputs_of(spec.kind), "NHWC", spec.metadata, precision or "fp32", model,
                  device=device, runtime="tensorflow", engine=engine(what))


# -- SavedModel -------------------------------------------------------------------------------------
def contract(kind: str) -> Dict[str, str]:
    """Metadata keys that state the I/O contract of a graph file (TensorFlow orders signature
    entries by name, so the order is written down here and in the positional `matte` function)."""
    return {"inputs": "src, bgr", "outputs": ", ".join(outputs_of(kind)), "frame_size": "any"}


def write_savedmodel(spec: ModelSpec, path: str, metadata: Dict[str, str]) -> None:
    """The SavedModel: `serving_default(src, bgr)` -> named outputs and `matte(src, bgr)` -> the same
    tuple in contract order, both padding any frame size to a multiple of 4 and cropping back inside
    the graph; the weights are stored once (only `state_variables` holds them: tracking the Keras
    model as well stored every weight twice)."""
    import tensorflow as tf
    impl = require_tf()
    from bgmv2.tensorflow_impl.weights import state_entries
    model = keras_model(spec, static_shapes=True)
    names = outputs_of(spec.kind)
    image = [tf.TensorSpec([None, None, None, 3], tf.float32, name="src"),
             tf.TensorSpec([None, None, None, 3], tf.float32, name="bgr")]

    @tf.function(input_signature=image)
    def matte(src, bgr):
        return tuple(impl.matte(model, src, bgr))

    @tf.function(input_signature=image)
    def serve(src, bgr):
        return dict(zip(names, matte(src, bgr)))

    entries = state_entries(model)
    module = tf.Module()
    module.state_variables = [entry.variable.value for entry in entries]
    module.matte = matte
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    assets = os.path.join(path, "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, META_FILE), "w") as f:
        f.write(meta_mod.to_json({**metadata, **contract(spec.kind), "state_keys": json.dumps([e.key for e in entries])}))


def savedmodel_metadata(path: str) -> Dict[str, str]:
    try:
        with open(os.path.join(path, "assets", META_FILE)) as f:
            return meta_mod.from_json(f.read())
    except OSError:
        return {}


def load_savedmodel_object(path: str):
    import tensorflow as tf
    require_tf()
    try:
        return tf.saved_model.load(path)
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path} is a SavedModel folder that TensorFlow cannot load ({first_line(error)}); "
                              "it is probably incomplete: copy it again.") from None


def read_savedmodel(path: str) -> ModelSpec:
    metadata = savedmodel_metadata(path)
    spec = spec_skeleton(metadata, path)
    loaded = load_savedmodel_object(path)
    try:
        keys = json.loads(metadata.get("state_keys", "[]"))
        variables = list(loaded.state_variables)
    except (AttributeError, ValueError, TypeError):
        raise ConversionError(f"{path} has no state_variables (not written by bgmv2-zoo), so its weights cannot be "
                              "mapped back to a state dict.") from None
    impl = require_tf()
    from bgmv2.tensorflow_impl.weights import state_entries
    model = (impl.MattingRefine(spec.backbone, refine_kernel_size=spec.refine_kernel_size) if spec.kind == "refine"
             else impl.MattingBase(spec.backbone))
    entries = state_entries(model)
    if keys != [e.key for e in entries] or len(variables) != len(entries):
        raise ConversionError(f"{path}: its {len(variables)} weights do not match {type(model).__name__}"
                              f"({spec.backbone!r}); the SavedModel was written by another version or edited.")
    spec.state = {e.key: np.array(e.to_torch(np.asarray(v.numpy())), order="C") for e, v in zip(entries, variables)}
    spec.metadata = {k: v for k, v in metadata.items() if k != "state_keys"}
    return spec


def load_savedmodel(path: str, knobs: Optional[Dict[str, object]] = None, device: str = "cpu",
                    precision: Optional[str] = None, **_) -> Runner:
    import tensorflow as tf
    if precision not in (None, "fp32"):
        raise ConversionError(f"{path}: a SavedModel computes in the precision it was written in (fp32); "
                              f"{precision} is not available for it")
    if knobs:
        raise ConversionError(f"{path}: the knobs of a SavedModel are fixed when it is written ({', '.join(knobs)} "
                              "asked); convert it again with them.")
    metadata = {k: v for k, v in savedmodel_metadata(path).items() if k != "state_keys"}
    loaded = load_savedmodel_object(path)
    try:
        serve = loaded.signatures["serving_default"]
    except (KeyError, AttributeError):
        raise ConversionError(f"{path} has no serving_default signature; it is not a bgmv2 SavedModel.") from None
    names = [n for n in OUTPUTS_REFINE if n in serve.structured_outputs] or \
        [n for n in OUTPUTS_BASE if n in serve.structured_outputs]

    def run(src, bgr):
        with tf.device(tf_device(device)):
            out = serve(src=tf.constant(src.transpose(0, 2, 3, 1)), bgr=tf.constant(bgr.transpose(0, 2, 3, 1)))
        return [out[n].numpy() for n in names]

    return Runner(run, "savedmodel", path, names, "NHWC", metadata, "fp32", loaded,
                  any_size=metadata.get("frame_size") == "any", device=device, runtime="tensorflow",
                  engine=engine("SavedModel serving_default"))


def write_onnx_from_savedmodel(source: str, path: str, metadata: Dict[str, str], simplify: bool = False,
                               opset: int = OPSET) -> None:
    """tf2onnx on the SavedModel's serving signature: NHWC ONNX with the same input and output names."""
    import tensorflow as tf
    require_tf()
    try:
        from tf2onnx import convert as tf2onnx_convert
        from tf2onnx import tf_loader
    except ImportError:
        raise ConversionError("ONNX from a SavedModel needs tf2onnx: pip install 'bgmv2-zoo[onnx]'.") from None
    from .onnx_format import canonical_order, document, require, save_deterministic, set_metadata, strip_debug_info
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        source, None, None, "serve", ["serving_default"], return_initialized_tables=True,
        return_tensors_to_rename=True)
    with tf.device("/cpu:0"):
        model, _ = tf2onnx_convert._convert_common(  # what `python -m tf2onnx.convert --saved-model` runs
            graph_def, name=source, opset=opset, input_names=inputs, output_names=outputs,
            tensors_to_rename=renames, initialized_tables=tables)
    if simplify:
        onnxsim = require("onnxsim")
        model, ok = onnxsim.simplify(model)
        if not ok:
            raise ConversionError("onnxsim could not verify the simplified model; convert without --simplify.")
    canonical_order(model)
    from .onnx_dims import name_dims
    kind = "refine" if metadata.get("model") == "MattingRefine" else "base"
    name_dims(model, kind, float(metadata.get("backbone_scale", 0.25)), "NHWC")
    strip_debug_info(model)
    set_metadata(model, metadata)
    document(model, "refine" if metadata.get("model") == "MattingRefine" else "base", metadata)
    save_deterministic(model, path)
