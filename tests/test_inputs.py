"""Bad inputs fail with messages that name the problem and the fix, eager and scripted alike."""
import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.pytorch_impl import MattingBase, MattingRefine, matte, script_model


@pytest.fixture(scope="module")
def models():
    refine = realistic_weights(MattingRefine("mobilenetv2"), seed=2)
    return {"eager": refine, "scripted": script_model(refine), "base": realistic_weights(MattingBase("mobilenetv2"))}


def good():
    return torch.rand(1, 3, 64, 96)


BAD_INPUTS = {
    "rank": ((torch.rand(3, 64, 96), torch.rand(3, 64, 96)), ValueError,
             r"src must be a 4-D tensor \(batch, 3, height, width\); got 3-D with shape \(3, 64, 96\).*unsqueeze\(0\)"),
    "channels": ((torch.rand(1, 4, 64, 96), torch.rand(1, 4, 64, 96)), ValueError,
                 r"src must have 3 channels \(RGB\).*got shape \(1, 4, 64, 96\).*permute\(0, 3, 1, 2\)"),
    "channels-last-layout": ((torch.rand(1, 64, 96, 3), torch.rand(1, 64, 96, 3)), ValueError,
                             r"src must have 3 channels.*NHWC"),
    "shape-mismatch": ((good(), torch.rand(1, 3, 64, 100)), ValueError,
                       r"src and bgr must have the same shape; got src \(1, 3, 64, 96\) and bgr \(1, 3, 64, 100\)"),
    "integer": (((good() * 255).byte(), (good() * 255).byte()), TypeError,
                r"src has dtype torch.uint8; .*floating-point RGB in \[0, 1\].*src.float\(\) / 255"),
    "mixed-dtypes": ((good(), good().double()), TypeError, r"src is torch.float32 but bgr is torch.float64"),
    "not-divisible-by-4": ((torch.rand(1, 3, 62, 96), torch.rand(1, 3, 62, 96)), ValueError,
                           r"height and width must be divisible by 4; got 62x96.*pytorch_impl.matte"),
    "too-small-for-scale": ((torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)), ValueError,
                            r"a 4x4 image at backbone_scale 0.125 gives the backbone a 0x0 input"),
}


@pytest.mark.parametrize("which", ["eager", "scripted"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_message(models, which, case):
    (src, bgr), error, pattern = BAD_INPUTS[case]
    model = models[which]
    if case == "too-small-for-scale":
        model.backbone_scale = 0.125
    try:
        with pytest.raises(Exception, match=pattern) as raised:
            with torch.no_grad():
                model(src, bgr)
        if which == "eager":  # scripted models raise torch.jit.Error carrying the same text
            assert raised.type is error
    finally:
        model.backbone_scale = 0.25


def test_weights_and_inputs_of_different_dtypes(models):
    with pytest.raises(TypeError, match="inputs are torch.float16 but the model's weights are torch.float32.*autocast"):
        models["eager"](good().half(), good().half())


def test_base_model_checks_inputs_too(models):
    with pytest.raises(ValueError, match="src and bgr must have the same shape"):
        models["base"](good(), torch.rand(1, 3, 32, 32))


def test_backbone_scale_above_one_half():
    with pytest.raises(ValueError, match=r"backbone_scale must be in \(0, 1/2\]; got 0.75.*0.25 for HD, 0.125 for 4K"):
        MattingRefine("mobilenetv2", backbone_scale=0.75)
    model = MattingRefine("mobilenetv2")
    with pytest.raises(ValueError, match="backbone_scale must be in"):
        model.backbone_scale = 0.6


def test_backbone_scale_set_on_a_scripted_production_model(models):
    scripted = models["scripted"]
    scripted.backbone_scale = 0.75
    try:
        with pytest.raises(Exception, match="backbone_scale must be in"):
            scripted(good(), good())
    finally:
        scripted.backbone_scale = 0.25


def test_bad_mode_set_on_a_scripted_production_model(models):
    scripted = models["scripted"]
    scripted.refine_mode = "fast"
    try:
        with pytest.raises(Exception, match="refine_mode='fast' is not supported"):
            scripted(good(), good())
    finally:
        scripted.refine_mode = "sampling"


@pytest.mark.parametrize("size", [(61, 93), (64, 96), (50, 77)])
def test_matte_accepts_any_size(models, size):
    src, bgr = torch_probe(1, *size)
    pha, fgr, pha_sm, *_ = matte(models["eager"], src, bgr)
    assert pha.shape == (1, 1, *size) and fgr.shape == (1, 3, *size)
    padded_h, padded_w = -(-size[0] // 4) * 4, -(-size[1] // 4) * 4
    assert pha_sm.shape[-2:] == (padded_h // 4, padded_w // 4)


def test_matte_on_a_multiple_of_4_equals_the_model(models):
    src, bgr = torch_probe(2, 64, 96)
    with torch.no_grad():
        expected = models["eager"](src, bgr)
    for x, y in zip(matte(models["eager"], src, bgr), expected):
        assert torch.equal(x, y)


def test_matte_takes_single_uint8_images(models):
    src, bgr = torch_probe(1, 61, 93)
    pha, *_ = matte(models["scripted"], (src[0] * 255).byte(), (bgr[0] * 255).byte())
    assert pha.shape == (1, 1, 61, 93)
    with pytest.raises(ValueError, match="src and bgr must have the same shape"):
        matte(models["eager"], src, bgr[..., :90])
    with pytest.raises(TypeError, match="must be a torch.Tensor.*torch.from_numpy"):
        matte(models["eager"], src.numpy(), bgr)


def test_base_model_through_matte(models):
    src, bgr = torch_probe(1, 50, 70)
    outputs = matte(models["base"], src, bgr)
    assert [o.shape[1] for o in outputs] == [1, 3, 1, 32]
    assert all(o.shape[-2:] == (50, 70) for o in outputs)


def with_nan(x):
    x = x.clone()
    x[0, 1, 5, 7] = float("nan")
    return x


VALUE_PROBLEMS = {
    "0-255-floats": (lambda: good() * 255, r"src has values from .* to 2\d\d\.\d*; the model takes RGB in \[0, 1\]\. "
                                           r"For 0-255 values divide by 255: src / 255\."),
    "normalised": (lambda: (good() - 0.485) / 0.229, r"src has values from -2\.\d+ to .*Not mean/std-normalised"),
    "nan": (lambda: with_nan(good()), r"src contains NaN \(not-a-number\) values; .*torch.nan_to_num\(src\)"),
    "inf": (lambda: good().fill_(float("inf")), r"src contains infinite values; .*src.clamp\(0, 1\)"),
}


@pytest.mark.parametrize("case", list(VALUE_PROBLEMS))
@pytest.mark.parametrize("kind", ["eager", "scripted"])
def test_nan_and_out_of_range_values_are_refused(models, kind, case):
    make, says = VALUE_PROBLEMS[case]
    with pytest.raises(Exception, match=says) as caught:
        models[kind](make(), good())
    assert "ValueError" in type(caught.value).__name__ + str(caught.value)


def test_matte_refuses_0_255_floats_and_names_bgr(models):
    with pytest.raises(ValueError, match="For 0-255 values divide by 255: src / 255"):
        matte(models["eager"], good()[0] * 255, good()[0])
    with pytest.raises(ValueError, match="bgr contains NaN"):
        matte(models["eager"], good(), with_nan(good()))
    slightly_over = good() * 1.2 - 0.1  # resampling overshoot stays within the 0.25 slack
    pha, *_ = matte(models["eager"], slightly_over, good())
    assert pha.shape == (1, 1, 64, 96)
