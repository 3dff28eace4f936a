"""The refiner's contract: selection, equivalences between modes, and identical crop/replace variants."""
import itertools

import pytest
import torch
from torch.nn import functional as F

from conftest import realistic_weights, torch_probe
from bgmv2.pytorch_impl import CROP_METHODS, REPLACE_METHODS, MattingRefine
from bgmv2.pytorch_impl.refiner import select_top_k, top_k_cells, top_k_map


@pytest.fixture(scope="module", params=[3, 1], ids=["k3", "k1"])
def model(request):
    return realistic_weights(MattingRefine("mobilenetv2", refine_kernel_size=request.param), seed=3)


@pytest.fixture(scope="module")
def inputs():
    return torch_probe(2, 96, 128, seed=5)


def run(model, src, bgr, **knobs):
    saved = {name: getattr(model.refiner, name) for name in knobs}
    for name, value in knobs.items():
        setattr(model.refiner, name, value)
    try:
        with torch.no_grad():
            return model(src, bgr)
    finally:
        for name, value in saved.items():
            setattr(model.refiner, name, value)


def assert_identical(a, b):
    for name, x, y in zip(("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"), a, b):
        assert x.shape == y.shape, name
        assert torch.equal(x, y), f"{name}: max abs difference {(x - y).abs().max().item()}"


# `full` convolves the whole image, the patch paths convolve crops (batch = cells). The numbers are the
# same exactly as long as PyTorch runs both through oneDNN. With one thread it runs 1x1 convolutions of
# batch < 16 through its native kernel instead (ConvParams::use_mkldnn), which rounds differently
# (2.7e-7 seen for refine_kernel_size=1). So the exact checks run with two threads, and one thread is
# checked to rounding.
def assert_equal_to_rounding(a, b, atol=1e-6):
    for name, x, y in zip(("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"), a, b):
        assert x.shape == y.shape, name
        if name in ("pha", "fgr"):
            torch.testing.assert_close(x, y, rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")
        else:
            assert torch.equal(x, y), f"{name}: max abs difference {(x - y).abs().max().item()}"


@pytest.mark.parametrize("mode", ["full", "sampling", "thresholding"])
def test_every_mode_gives_valid_outputs(model, inputs, mode):
    src, bgr = inputs
    pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = run(model, src, bgr, mode=mode, sample_pixels=16 * 150)
    assert pha.shape == (2, 1, 96, 128) and fgr.shape == (2, 3, 96, 128)
    assert pha_sm.shape == (2, 1, 24, 32) and fgr_sm.shape == (2, 3, 24, 32) and err_sm.shape == (2, 1, 24, 32)
    assert ref_sm.shape == (2, 1, 24, 32)
    for x in (pha, fgr, pha_sm, fgr_sm, err_sm):
        assert x.min() >= 0 and x.max() <= 1 and torch.isfinite(x).all()
    assert set(ref_sm.unique().tolist()) <= {0.0, 1.0}
    if mode == "full":
        assert ref_sm.all()
    elif mode == "sampling":
        assert (ref_sm.sum(dim=(1, 2, 3)) <= 150).all()
        assert ref_sm.sum() > 0


@pytest.mark.parametrize("threads", [2, 1])
def test_full_equals_thresholding_minus_one_and_sampling_everything(model, inputs, threads):
    torch.set_num_threads(threads)  # the autouse fixture restores the count
    src, bgr = inputs
    full = run(model, src, bgr, mode="full")
    every_cell = run(model, src, bgr, mode="thresholding", threshold=-1)
    all_sampled = run(model, src, bgr, mode="sampling", sample_pixels=16 * 24 * 32, prevent_oversampling=False)
    assert every_cell[5].all() and all_sampled[5].all()
    check = assert_identical if threads > 1 else assert_equal_to_rounding  # max abs difference 0 with oneDNN
    check(full, every_cell)
    check(full, all_sampled)


def test_refined_cells_differ_from_coarse_and_others_do_not(model, inputs):
    src, bgr = inputs
    pha, _, pha_sm, _, err_sm, ref_sm = run(model, src, bgr, mode="thresholding", threshold=0.5)
    assert 0 < ref_sm.sum() < ref_sm.numel()
    coarse = F.interpolate(pha_sm, size=pha.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
    changed = (pha != coarse).float()
    changed_cells = F.max_pool2d(changed, 4)
    assert torch.equal(changed_cells * (1 - ref_sm), torch.zeros_like(ref_sm))  # only refined cells change
    assert changed_cells.sum() > 0.5 * ref_sm.sum()


def test_thresholding_selects_cells_above_threshold(model, inputs):
    src, bgr = inputs
    *_, err_sm, ref_sm = run(model, src, bgr, mode="thresholding", threshold=0.3)
    err_q = F.interpolate(err_sm, size=ref_sm.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.equal(ref_sm, (err_q > 0.3).float())


def test_nothing_selected_gives_the_bilinear_upsampling(model, inputs):
    src, bgr = inputs
    pha, fgr, pha_sm, fgr_sm, _, ref_sm = run(model, src, bgr, mode="thresholding", threshold=1.0)  # err <= 1: none
    assert ref_sm.sum() == 0
    expected = F.interpolate(pha_sm, size=pha.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
    assert torch.equal(pha, expected)


@pytest.mark.parametrize("mode", ["sampling", "thresholding"])
def test_all_crop_and_replace_methods_are_identical(model, inputs, mode):
    src, bgr = inputs
    results = [run(model, src, bgr, mode=mode, sample_pixels=16 * 200, threshold=0.2,
                   patch_crop_method=crop, patch_replace_method=replace)
               for crop, replace in itertools.product(CROP_METHODS, REPLACE_METHODS)]
    assert results[0][5].sum() > 0
    for other in results[1:]:
        assert_identical(results[0], other)


def test_sampling_on_images_smaller_than_the_sample_count(model):
    src, bgr = torch_probe(1, 16, 20, seed=1)  # 4 x 5 = 20 cells, far fewer than 80_000 // 16
    pha, *_, ref_sm = run(model, src, bgr, mode="sampling", sample_pixels=80_000, prevent_oversampling=False)
    assert ref_sm.all() and pha.shape == (1, 1, 16, 20)


def test_top_k_breaks_ties_by_lower_index_and_drops_zero_error():
    err = torch.tensor([[0.5, 0.9, 0.5, 0.0, 0.5, 0.5, 0.0, 0.0]]).view(1, 1, 2, 4)
    chosen = select_top_k(err, 3, prevent_oversampling=False).view(-1).tolist()
    assert chosen == [1, 1, 1, 0, 0, 0, 0, 0]  # 0.9, then the two lowest-index 0.5s
    assert select_top_k(err, 7, prevent_oversampling=True).view(-1).tolist() == [1, 1, 1, 0, 1, 1, 0, 0]
    assert select_top_k(err, 7, prevent_oversampling=False).view(-1).tolist() == [1, 1, 1, 1, 1, 1, 1, 0]
    assert select_top_k(err, 0, prevent_oversampling=False).sum() == 0
    assert select_top_k(err, 100, prevent_oversampling=False).sum() == 8


def reference_top_k(err, k):
    """The rule spelled out: per image, sort cells by (error descending, index ascending), take k."""
    b, _, h, w = err.shape
    chosen = torch.zeros(b, h * w)
    for image, row in enumerate(err.reshape(b, -1).tolist()):
        for cell in sorted(range(h * w), key=lambda i: (-row[i], i))[:k]:
            chosen[image, cell] = 1
    return chosen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_tie_break_matches_the_rule_on_many_tied_maps(dtype):
    generator = torch.Generator().manual_seed(7)
    for _ in range(150):
        b, h, w = (int(torch.randint(1, n, (1,), generator=generator)) for n in (4, 9, 9))
        err = (torch.randint(0, 4, (b, 1, h, w), generator=generator).float() / 4).to(dtype)  # many ties
        k = int(torch.randint(1, h * w + 1, (1,), generator=generator))
        expected = reference_top_k(err.float(), k)
        assert torch.equal(top_k_map(err, k, False).float().reshape(b, -1), expected)
        assert torch.equal(top_k_map(err, k, True).float().reshape(b, -1), expected * (err.reshape(b, -1) > 0))
        cells, keep = top_k_cells(err, k, True)
        assert (cells.diff(dim=1) > 0).all()  # increasing row-major order
        assert torch.equal(torch.zeros(b, h * w).scatter(1, cells, 1.0), expected)
        assert torch.equal(keep, err.reshape(b, -1).gather(1, cells) > 0)


def test_tie_break_uses_no_float64_and_no_cumsum():
    err = torch.rand(2, 1, 6, 8)
    seen = []

    class Spy(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            seen.append((str(func), getattr(out, "dtype", None)))
            return out

    with Spy():
        top_k_map(err, 10, True)
        top_k_cells(err, 10, True)
    assert not [f for f, dtype in seen if dtype == torch.float64 or "cumsum" in f], seen


def test_tie_break_compiles_with_inductor_at_batch_2():
    """torch 2.11 + CUDA failed to compile the earlier int64 cumsum at batch > 1 (SplitScan codegen)."""
    err = torch.randint(0, 3, (2, 1, 12, 16)).float() / 2
    compiled = torch.compile(lambda e: (top_k_map(e, 40, True), top_k_cells(e, 40, True)[0]), fullgraph=True)
    chosen, cells = compiled(err)
    assert torch.equal(chosen.reshape(2, -1), reference_top_k(err, 40) * (err.reshape(2, -1) > 0))
    assert torch.equal(cells, top_k_cells(err, 40, True)[0])


def test_top_k_is_per_image():
    err = torch.stack([torch.arange(8.0), torch.arange(8.0).flip(0)]).view(2, 1, 2, 4)
    chosen = select_top_k(err, 2, prevent_oversampling=True).view(2, -1).tolist()
    assert chosen == [[0, 0, 0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0]]


def test_knobs_are_checked_when_set():
    refine = MattingRefine("mobilenetv2")
    with pytest.raises(ValueError, match="refine_mode='fast' is not supported; choose one of 'full'"):
        refine.refiner.mode = "fast"
    with pytest.raises(ValueError, match="refine_patch_crop_method='crop'"):
        MattingRefine("mobilenetv2", refine_patch_crop_method="crop")
    with pytest.raises(ValueError, match="refine_kernel_size=5"):
        MattingRefine("mobilenetv2", refine_kernel_size=5)
    refine.refiner.threshold = -1
    assert isinstance(refine.refiner.threshold, float)


@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_resnet_modes_agree(backbone):
    model = realistic_weights(MattingRefine(backbone), seed=4)
    src, bgr = torch_probe(1, 64, 96, seed=2)
    torch.set_num_threads(2)
    full = run(model, src, bgr, mode="full")
    assert_identical(full, run(model, src, bgr, mode="thresholding", threshold=-1))


@pytest.mark.parametrize("prevent_oversampling", [True, False])
@pytest.mark.parametrize("sample_pixels", [16 * 150, 16 * 10**6])
def test_static_shape_sampling_equals_data_dependent_sampling(model, inputs, prevent_oversampling, sample_pixels):
    src, bgr = inputs
    knobs = dict(mode="sampling", sample_pixels=sample_pixels, prevent_oversampling=prevent_oversampling)
    dynamic = run(model, src, bgr, static_shapes=False, **knobs)
    static = run(model, src, bgr, static_shapes=True, **knobs)
    assert_identical(dynamic, static)


def test_static_sampling_drops_zero_error_cells_like_upstream():
    model = realistic_weights(MattingRefine("resnet50", refine_sample_pixels=16 * 10**6), seed=1)
    src, bgr = torch_probe(1, 64, 96, seed=2)
    *_, err_sm, ref_sm = run(model, src, bgr, static_shapes=True)
    err_q = F.interpolate(err_sm, size=ref_sm.shape[-2:], mode="bilinear", align_corners=False)
    assert 0 < ref_sm.sum() < ref_sm.numel()  # some cells have zero error and are not refined
    assert torch.equal(ref_sm, (err_q > 0).float())
