"""The fast backend's lean refiner and OpenVINO base network give eager's numbers.

`LeanMatting` must equal the eager model (same refined cells, alpha and foreground within float
rounding) for every knob combination the apps accept: modes, k above and below the cell count,
prevent_oversampling, kernel sizes, backbone scales (the per-window 2x path and the general one),
batches, frame sizes, cells at every border, nothing selected.
"""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.nn import functional as F

from bgmv2.pytorch_impl import MattingBase, MattingRefine
from bgmv2.converters.fast.lean import LeanMatting, doubled_windows, windows, zero_outside


@pytest.fixture(scope="module")
def weights():
    from conftest import realistic_weights
    return realistic_weights(MattingRefine("mobilenetv2")).state_dict()


def model_with(weights, **knobs) -> MattingRefine:
    model = MattingRefine("mobilenetv2", **knobs).eval()
    model.load_state_dict(weights)
    return model


def inputs(batch, height, width, seed=0):
    """A bright blob over a noisy background and the background: the error map has soft structure."""
    generator = torch.Generator().manual_seed(seed)
    bgr = torch.rand(batch, 3, height, width, generator=generator) * 0.6 + 0.2
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    alpha = (1 - (x ** 2 + y ** 2).sqrt() * 1.6).clamp(0, 1)
    src = alpha * torch.tensor([0.9, 0.3, 0.2]).view(1, 3, 1, 1) + (1 - alpha) * bgr
    return src, bgr


def assert_same(model, src, bgr, atol=1e-5):
    with torch.inference_mode():
        want = model(src, bgr)
        got = LeanMatting(model)(src, bgr)
    assert len(got) == len(want)
    if len(want) == 6:
        assert torch.equal(got[5], want[5]), "refined cells differ"
    for name, a, b in zip(("pha", "fgr", "pha_sm", "fgr_sm", "err_sm"), got, want):
        assert a.shape == b.shape, name
        assert (a - b).abs().max() <= atol, f"{name}: max |d| {(a - b).abs().max():.2e}"
    return want


@settings(max_examples=12, deadline=None)
@given(height=st.integers(6, 24).map(lambda n: 4 * n), width=st.integers(6, 24).map(lambda n: 4 * n),
       batch=st.integers(1, 2), sample_pixels=st.sampled_from([16, 800, 4_000, 10 ** 6]),
       prevent=st.booleans(), seed=st.integers(0, 3))
def test_sampling_matches_eager(weights, height, width, batch, sample_pixels, prevent, seed):
    model = model_with(weights, refine_sample_pixels=sample_pixels, refine_prevent_oversampling=prevent)
    assert_same(model, *inputs(batch, height, width, seed))


@pytest.mark.parametrize("knobs", [
    dict(refine_mode="thresholding", refine_threshold=0.05),
    dict(refine_mode="thresholding", refine_threshold=1.0),  # nothing selected: the upsampled coarse matte
    dict(refine_mode="full"),
    dict(backbone_scale=1 / 8),  # coarse at 1/8: the general (whole-map resize) path
    dict(backbone_scale=1 / 2, refine_kernel_size=1),
    dict(refine_kernel_size=1),  # 2x path with the other window phase
    dict(refine_sample_pixels=10 ** 7, refine_prevent_oversampling=False),  # every cell, borders included
])
def test_other_modes_and_knobs_match_eager(weights, knobs):
    if "refine_kernel_size" in knobs:  # other refiner weight shapes
        from conftest import realistic_weights
        model = realistic_weights(MattingRefine("mobilenetv2", **knobs)).eval()
    else:
        model = model_with(weights, **knobs)
    want = assert_same(model, *inputs(2, 96, 136, seed=1))
    if knobs.get("refine_sample_pixels") == 10 ** 7:
        assert bool(want[5].all())


def test_expanded_background_and_channels_last_inputs(weights):
    """As the fast runner calls it: channels-last frames, one background expanded over the batch."""
    model = model_with(weights, refine_sample_pixels=2_000)
    src, bgr = inputs(3, 36, 44, seed=2)  # a multiple of 4, not of 8
    src = src.contiguous(memory_format=torch.channels_last)
    assert_same(model, src, bgr[:1].contiguous(memory_format=torch.channels_last).expand(3, -1, -1, -1))


def test_base_model_matches_eager():
    from conftest import realistic_weights
    model = realistic_weights(MattingBase("mobilenetv2")).eval()
    assert_same(model, *inputs(1, 48, 64))


def test_window_helpers_equal_crops_of_the_whole_resized_map():
    torch.manual_seed(0)
    coarse = torch.rand(2, 5, 7, 9)
    full = F.interpolate(coarse, (14, 18), mode="bilinear", align_corners=False)
    padded = F.pad(full, (8, 8, 8, 8)).permute(0, 2, 3, 1)
    b = torch.tensor([0, 1, 1, 0, 1])
    for window, phase in ((8, 1), (2, 0)):
        top = torch.tensor([-3, 1, 11, 5, 7]) + (phase - 1)  # one parity, windows over every border (14 x 18)
        left = torch.tensor([15, -3, 3, 7, 13]) + (phase - 1)
        want = torch.stack([padded[i, t + 8:t + 8 + window, s + 8:s + 8 + window] for i, t, s in zip(b, top, left)])
        got = zero_outside(doubled_windows(coarse.permute(0, 2, 3, 1), b, top, left, window).contiguous(),
                           top, left, 14, 18)
        assert torch.allclose(got, want, atol=1e-6)
        plain = zero_outside(windows(full.permute(0, 2, 3, 1), b, top, left, window), top, left, 14, 18)
        assert torch.equal(plain, want)


def test_openvino_base_network_matches_pytorch():
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install '.[openvino]')")
    from conftest import realistic_weights
    from bgmv2.converters.fast.openvino_network import OpenVinoNetwork
    model = realistic_weights(MattingRefine("mobilenetv2")).eval()
    network = OpenVinoNetwork(model, "fp32", threads=1)
    with torch.inference_mode():
        for shape in [(1, 6, 45, 80), (2, 6, 24, 36), (1, 6, 45, 80)]:
            x = torch.rand(shape)
            torch.testing.assert_close(network(x), model.run_network(x), rtol=1e-3, atol=1e-3)
    assert len(network.requests) == 2  # compiled once per shape
    with pytest.raises(ValueError, match="fp32 or bf16"):
        OpenVinoNetwork(model, "fp16")


def test_lean_candidate_through_the_fast_runner(tmp_path):
    """Chosen or not, it is built, checked against eager and timed; the runner's outputs stay eager's."""
    from conftest import realistic_weights
    from bgmv2.converters.fast import fast_runner
    from bgmv2.converters.fast.cache import ChoiceCache
    from bgmv2.converters.fast.candidates import lean
    model = realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=4_000)).eval()
    logs = []
    runner = fast_runner(model, "cpu", candidates=[lean(model, "fp32", "torch")],
                         cache=ChoiceCache(tmp_path / "c.json"), log=logs.append, timed_calls=1)
    src, bgr = inputs(1, 70, 98)  # padded to 72x100 inside, cropped back
    out = runner.run(src, bgr, to="torch")
    assert "lean-fp32" in logs[0] and "differs" not in logs[0] and "failed" not in logs[0], logs
    assert out["pha"].shape == (1, 1, 70, 98)


def test_cpu_candidates_offer_the_lean_ones(monkeypatch):
    """OpenVINO's candidates where it is installed, PyTorch's always; thresholding gets only lean ones."""
    import sys
    from bgmv2.converters.fast.candidates import cpu_bf16_unsupported, for_device
    cpu = torch.device("cpu")
    names = lambda model, precision=None, frames=10_000: [  # noqa: E731 - a long job: every candidate
        c.name for c in for_device(model, cpu, precision, None, {}, "id", frames)]
    sampling, thresholding = MattingRefine("mobilenetv2"), MattingRefine("mobilenetv2", refine_mode="thresholding")
    assert {"lean-fp32", "compile-fp32"} <= set(names(sampling))  # float32 unless bf16 is asked
    assert {"lean-fp32", "compile-fp32"} <= set(names(MattingRefine("mobilenetv2", refine_mode="full")))  # fixed shapes
    if cpu_bf16_unsupported() is None:
        assert {"lean-bf16", "compile-bf16"} <= set(names(sampling, "bf16"))
    assert all(name.startswith("lean-") for name in names(thresholding))
    cuda_names = [c.name for c in for_device(MattingRefine("mobilenetv2", refine_mode="full"), torch.device("cuda"),
                                             None, None, {}, "id")]  # built lazily: listing needs no GPU
    assert cuda_names and all("cuda-graph" in name for name in cuda_names)
    assert names(sampling, "fp32")[:2] == (["lean-openvino-fp32", "lean-fp32"] if _has_openvino() else
                                           ["lean-fp32", "compile-fp32"])
    assert not [n for n in names(sampling, None, None) if n.startswith(("compile", "onnx"))]  # a job of unknown length
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed: import fails
    assert "lean-openvino-fp32" not in names(sampling) and "lean-fp32" in names(sampling)


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
        return True
    except ImportError:
        return False
