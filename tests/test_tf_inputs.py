"""Bad inputs fail with PyTorch's messages (adapted to NHWC); `matte` takes any size, layout and uint8;
constructor arguments, defaults and knobs mirror PyTorch's."""
import inspect
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from bgmv2 import pytorch_impl  # noqa: E402
from bgmv2 import tensorflow_impl  # noqa: E402
from probes import probe_pair  # noqa: E402

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def model():
    return tensorflow_impl.MattingRefine("mobilenetv2", refine_sample_pixels=16 * 40)


@pytest.fixture(scope="module")
def pair():
    return tuple(x.transpose(0, 2, 3, 1).copy() for x in probe_pair(1, 64, 96, seed=0))


def test_constructor_arguments_and_defaults_mirror_pytorch():
    for name in ("MattingBase", "MattingRefine"):
        ours = inspect.signature(getattr(tensorflow_impl, name)).parameters
        theirs = inspect.signature(getattr(pytorch_impl, name)).parameters
        shared = [p for p in ours if p not in ("dtype", "kwargs")]
        assert shared == list(theirs)
        assert all(ours[p].default == theirs[p].default for p in shared)
    assert inspect.signature(tensorflow_impl.MattingRefine).parameters["refine_threshold"].default == 0.1


@pytest.mark.parametrize("shape, message", [
    ((64, 96, 3), r"src must be a 4-D tensor \(batch, height, width, 3\); got 3-D with shape \(64, 96, 3\)\. "
                  r"For a single image add the batch dimension: src\[None\]"),
    ((1, 3, 64, 96), r"src must have 3 channels \(RGB\) in the last dimension \(NHWC\); got shape \(1, 3, 64, 96\)\. "
                     r"For channels-first \(NCHW\) data use tf.transpose\(src, \(0, 2, 3, 1\)\)"),
    ((1, 64, 96, 4), r"for RGBA drop alpha with src\[..., :3\]"),
])
def test_bad_shapes_say_what_to_do(model, pair, shape, message):
    with pytest.raises(ValueError, match=message):
        model(np.zeros(shape, np.float32), np.zeros(shape, np.float32))


def test_mismatched_pair(model, pair):
    src, bgr = pair
    with pytest.raises(ValueError, match=r"src and bgr must have the same shape; got src \(1, 64, 96, 3\) and "
                                         r"bgr \(1, 64, 92, 3\)\. Resize the background shot"):
        model(src, bgr[:, :, :92])
    with pytest.raises(TypeError, match="src is float32 but bgr is float16; give both the same dtype"):
        model(src, bgr.astype(np.float16))


def test_integer_images_are_refused(model, pair):
    src, bgr = pair
    with pytest.raises(TypeError, match=r"src has dtype uint8; the model takes floating-point RGB in \[0, 1\]. "
                                        r"Convert 8-bit images with tf.cast\(src, tf.float32\) / 255"):
        model((src * 255).astype(np.uint8), (bgr * 255).astype(np.uint8))
    with pytest.raises(TypeError, match="bgr has dtype int32"):
        model(tf.constant(src), tf.zeros([1, 64, 96, 3], tf.int32))


def test_sizes_and_scales(model, pair):
    with pytest.raises(ValueError, match="height and width must be divisible by 4; got 66x96. Pad the images, "
                                         r"or call tensorflow_impl.matte\(model, src, bgr\)"):
        model(np.zeros((1, 66, 96, 3), np.float32), np.zeros((1, 66, 96, 3), np.float32))
    with pytest.raises(ValueError, match=r"backbone_scale must be in \(0, 1/2\]; got 0.6"):
        tensorflow_impl.MattingRefine("mobilenetv2", backbone_scale=0.6)
    with pytest.raises(ValueError, match=r"backbone_scale must be in \(0, 1/2\]; got 0.0"):
        model.backbone_scale = 0
    assert model.backbone_scale == 0.25
    small = np.zeros((1, 4, 8, 3), np.float32)
    with pytest.raises(ValueError, match="a 4x8 image at backbone_scale 0.125 gives the backbone a 0x1 input"):
        model.backbone_scale = 0.125
        try:
            model(small, small)
        finally:
            model.backbone_scale = 0.25


def test_knobs_are_checked_and_coerced_when_set(model):
    refiner = model.refiner
    with pytest.raises(ValueError, match="refine_mode='fast' is not supported; choose one of 'full'"):
        refiner.mode = "fast"
    with pytest.raises(ValueError, match="refine_patch_crop_method='crop'"):
        tensorflow_impl.MattingRefine("mobilenetv2", refine_patch_crop_method="crop")
    with pytest.raises(ValueError, match="refine_patch_replace_method='swap'"):
        refiner.patch_replace_method = "swap"
    with pytest.raises(ValueError, match="refine_kernel_size=5"):
        tensorflow_impl.MattingRefine("mobilenetv2", refine_kernel_size=5)
    with pytest.raises(ValueError, match="backbone='vgg' is not supported; choose one of mobilenetv2, resnet50, "):
        tensorflow_impl.MattingBase("vgg")
    with pytest.raises(ValueError, match="refine_mode='fast'"):
        tensorflow_impl.MattingRefine("mobilenetv2", refine_mode="fast")
    assert (refiner.mode, refiner.patch_replace_method) == ("sampling", "scatter_nd")
    refiner.threshold, refiner.sample_pixels = -1, 1600.0
    assert isinstance(refiner.threshold, float) and isinstance(refiner.sample_pixels, int)
    refiner.threshold, refiner.sample_pixels = 0.1, 16 * 40


def test_float64_inputs_are_cast_like_any_keras_layer(model, pair):
    src, bgr = pair
    a = model(src, bgr)
    b = model(src.astype(np.float64), bgr.astype(np.float64))
    for x, y in zip(a, b):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_matte_takes_any_size_single_images_and_uint8(model):
    src, bgr = (x[0].transpose(1, 2, 0) for x in probe_pair(1, 61, 93, seed=2))  # (H, W, 3), not multiples of 4
    pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = tensorflow_impl.matte(model, src, bgr)
    assert pha.shape == (1, 61, 93, 1) and fgr.shape == (1, 61, 93, 3)
    assert pha_sm.shape == (1, 16, 24, 1) and ref_sm.shape == (1, 16, 24, 1)  # coarse: of the padded 64x96 frame
    padded = [np.pad(x[None], ((0, 0), (0, 3), (0, 3), (0, 0)), mode="edge") for x in (src, bgr)]
    expected = model(*padded)
    assert np.array_equal(np.asarray(pha), np.asarray(expected[0])[:, :61, :93])
    assert np.array_equal(np.asarray(err_sm), np.asarray(expected[4]))
    as_uint8 = [np.round(x * 255).astype(np.uint8) for x in (src, bgr)]
    pha8 = tensorflow_impl.matte(model, *as_uint8)[0]
    direct = tensorflow_impl.matte(model, *(x.astype(np.float32) / 255 for x in as_uint8))[0]
    assert np.array_equal(np.asarray(pha8), np.asarray(direct))
    base = tensorflow_impl.MattingBase("mobilenetv2")
    outputs = tensorflow_impl.matte(base, src, bgr)
    assert [tuple(o.shape) for o in outputs] == [(1, 61, 93, 1), (1, 61, 93, 3), (1, 61, 93, 1), (1, 61, 93, 32)]
    with pytest.raises(ValueError, match="src and bgr must have the same shape"):
        tensorflow_impl.matte(model, src, bgr[:60])


@pytest.mark.parametrize("make, says", [
    (lambda x: x * 255, r"src has values from .* to 2\d\d\.\d+; the model takes RGB in \[0, 1\]\. For 0-255 values "
                        r"divide by 255: src / 255\."),
    (lambda x: np.where(np.arange(x.shape[2])[None, None, :, None] == 5, np.nan, x).astype(np.float32),
     r"src contains NaN \(not-a-number\) values; the model takes RGB in \[0, 1\]"),
    (lambda x: ((x - 0.485) / 0.229).astype(np.float32), "Not mean/std-normalised values"),
], ids=["0-255-floats", "nan", "normalised"])
def test_nan_and_out_of_range_values_are_refused_like_pytorch(model, pair, make, says):
    src, bgr = pair
    with pytest.raises(ValueError, match=says):
        model(make(src), bgr)
    with pytest.raises(ValueError, match=says):
        model(tf.constant(make(src)), bgr)


def test_bad_knobs_are_refused_with_pytorchs_messages(model):
    for knobs, says in [({"refine_sample_pixels": -5}, "refine_sample_pixels must be a whole number of at least 16"),
                        ({"refine_threshold": 5}, r"refine_threshold must be in \[0, 1\] or -1; got 5\.0")]:
        with pytest.raises(ValueError, match=says):
            tensorflow_impl.MattingRefine("mobilenetv2", **knobs)
        with pytest.raises(ValueError, match=says):
            pytorch_impl.MattingRefine("mobilenetv2", **knobs)
    with pytest.raises(ValueError, match=r"refine_threshold must be in \[0, 1\] or -1; got 5\.0"):
        model.refiner.threshold = 5
    assert model.refiner.threshold == 0.1


def test_load_model_refuses_pickles_and_nan_weights_without_torchs_advice(tmp_path):
    import pickle
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pth"
    torch.save({"weight": Payload()}, evil)
    with pytest.raises(tensorflow_impl.CheckpointError) as caught:
        tensorflow_impl.load_model(evil)
    text = str(caught.value)
    assert "is a pickle that holds a Python object (posix.system), not only tensors, so it was refused" in text
    assert "weights_only" not in text and not (tmp_path / "pwned").exists()
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"weight": Payload()}, protocol=2))
    with pytest.raises(tensorflow_impl.CheckpointError, match="so it was refused"):
        tensorflow_impl.load_model(legacy)
    state = {k: v.clone() for k, v in pytorch_impl.MattingRefine("mobilenetv2").state_dict().items()}
    state["decoder.conv4.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(tensorflow_impl.CheckpointError,
                       match=r"has NaN or infinite values in 1 tensor\(s\): decoder.conv4.weight"):
        tensorflow_impl.load_model(state)
