"""Keras vs PyTorch on the same weights and realistic inputs: alpha within 1e-4, the same refined cells.

Weights: PyTorch-initialised with measured BatchNorm statistics (`realistic_weights`), loaded into the
Keras twin with `load_torch_state_dict`. Inputs: the shared probes (composites over textured
backgrounds), batch 2, at a square and a non-square size.
"""
import copy
import os

import numpy as np
import pytest
import torch
from torch.nn import functional as F

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from bgmv2 import pytorch_impl  # noqa: E402
from bgmv2 import tensorflow_impl  # noqa: E402
from conftest import realistic_weights  # noqa: E402
from probes import probe_pair  # noqa: E402
from bgmv2.tensorflow_impl.refiner import select_top_k  # noqa: E402
from bgmv2.tensorflow_impl.resize import linear_weights, linear_weights_numpy  # noqa: E402

pytestmark = pytest.mark.tf

TOLERANCE = 1e-4
SIZES = {"square": (96, 96), "wide": (64, 96)}
SAMPLE_PIXELS = 16 * 100  # 100 of the 384 or 576 cells per image: a real top-k choice
OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")


@pytest.fixture(scope="module")
def twins():
    """twins(kind, backbone, **options) -> (PyTorch model, Keras model) with the same weights (cached).

    A MattingBase gets the weights of the MattingRefine with default options (without the refiner's),
    which saves calibrating another network.
    """
    cache = {}

    def make(kind: str, backbone: str, **options):
        key = (kind, backbone, tuple(sorted(options.items())))
        if key not in cache:
            if kind == "MattingBase":
                state = make("MattingRefine", backbone, refine_sample_pixels=SAMPLE_PIXELS)[0].state_dict()
                torch_model = pytorch_impl.MattingBase(backbone).eval()
                torch_model.load_state_dict({k: v for k, v in state.items() if not k.startswith("refiner.")})
            else:
                torch_model = realistic_weights(pytorch_impl.MattingRefine(backbone, **options), seed=1)
            keras_model = getattr(tensorflow_impl, kind)(backbone, **options)
            tensorflow_impl.load_torch_state_dict(keras_model, torch_model.state_dict())
            cache[key] = torch_model, keras_model
        return cache[key]
    yield make
    cache.clear()


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def run_both(torch_model, keras_model, src, bgr, **knobs):
    """Outputs of both models (as NCHW numpy) with the refiner knobs set on both."""
    for name, value in knobs.items():
        setattr(torch_model.refiner, name, value)
        setattr(keras_model.refiner, name, value)
    with torch.no_grad():
        expected = [o.numpy() for o in torch_model(torch.from_numpy(src), torch.from_numpy(bgr))]
    got = [np.asarray(o).transpose(0, 3, 1, 2) for o in keras_model(nhwc(src), nhwc(bgr))]
    return expected, got


def assert_close(expected, got, names=OUTPUTS, noise=None):
    """Same shapes, identical ref_sm, the rest within 1e-4; where `noise` (a function giving PyTorch's own
    float32 error per output) is given, within that error too if it is larger."""
    for index, (name, x, y) in enumerate(zip(names, expected, got)):
        assert x.shape == y.shape, f"{name}: shape {y.shape}, PyTorch {x.shape}"
        if name == "ref_sm":
            assert np.array_equal(x, y), f"ref_sm: {int((x != y).sum())} cells differ from PyTorch's"
            continue
        difference = float(np.abs(x - y).max())
        bound = TOLERANCE
        if difference > bound and noise is not None:
            bound = max(bound, noise()[index])
        assert difference <= bound, f"{name}: max abs difference {difference:.2e} > {bound:.2e}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["full", "sampling", "thresholding"])
@pytest.mark.parametrize("kernel_size", [3, 1], ids=["k3", "k1"])
@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
def test_refine_matches_pytorch(twins, backbone, kernel_size, mode, size):
    torch_model, keras_model = twins("MattingRefine", backbone, refine_kernel_size=kernel_size,
                                     refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = probe_pair(2, *SIZES[size], seed=7)
    expected, got = run_both(torch_model, keras_model, src, bgr, mode=mode)
    assert_close(expected, got)
    ref = expected[5]
    if mode == "full":
        assert ref.all()
    else:  # the selection is a real choice: some cells, not all
        assert 0 < ref.sum() < ref.size
    if mode == "sampling":
        assert (ref.sum(axis=(1, 2, 3)) <= SAMPLE_PIXELS // 16).all()


def float32_noise(torch_model, src, bgr):
    """A function giving, per output, how far PyTorch's own float32 result is from the same model's in
    float64 on these inputs (a refiner runs in `full` mode, so that a different choice of cells does not count)."""
    def measure():
        single, double = copy.deepcopy(torch_model), copy.deepcopy(torch_model).double()
        for model in (single, double):
            if hasattr(model, "refiner"):
                model.refiner.mode = "full"
        with torch.no_grad():
            ones = single(torch.from_numpy(src), torch.from_numpy(bgr))
            twos = double(torch.from_numpy(src).double(), torch.from_numpy(bgr).double())
        return [float((a.double() - b).abs().max()) for a, b in zip(ones, twos)]
    return measure


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
def test_base_matches_pytorch(twins, backbone):
    """The base network at full resolution (no refiner). Its float32 rounding noise can exceed 1e-4 (PyTorch
    float32 is up to 4e-4 from float64 for mobilenetv2 here), so the bound is 1e-4 or that noise, the larger."""
    torch_model, keras_model = twins("MattingBase", backbone)
    src, bgr = probe_pair(2, 64, 96, seed=8)
    with torch.no_grad():
        expected = [o.numpy() for o in torch_model(torch.from_numpy(src), torch.from_numpy(bgr))]
    got = [np.asarray(o).transpose(0, 3, 1, 2) for o in keras_model(nhwc(src), nhwc(bgr))]
    assert_close(expected, got, names=("pha", "fgr", "err", "hid"), noise=float32_noise(torch_model, src, bgr))


@pytest.mark.parametrize("mode", ["sampling", "thresholding"])
@pytest.mark.parametrize("scale", [0.5, 0.3, 0.125])
def test_other_backbone_scales_select_the_same_cells(twins, scale, mode):
    """Other scales resize the error map to the cell grid (and 0.3 gives floor-rounded sizes).

    The refined cells must be identical; alpha within 1e-4 or PyTorch's own float32 noise (distance
    from float64), the larger: at scale 1/2 the coarse network sees 4x the pixels and its rounding
    noise reaches alpha at about 1e-4.
    """
    torch_model, keras_model = twins("MattingRefine", "mobilenetv2", refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = probe_pair(2, 100, 124, seed=3)
    try:
        torch_model.backbone_scale = keras_model.backbone_scale = scale
        expected, got = run_both(torch_model, keras_model, src, bgr, mode=mode)
        assert_close(expected, got, noise=float32_noise(torch_model, src, bgr))
    finally:
        torch_model.backbone_scale = keras_model.backbone_scale = 0.25
    assert 0 < expected[5].sum() < expected[5].size


@pytest.mark.parametrize("prevent_oversampling", [True, False])
@pytest.mark.parametrize("sample_pixels", [16 * 150, 16 * 10**6])
def test_static_shape_sampling_equals_data_dependent_sampling(twins, sample_pixels, prevent_oversampling):
    _, keras_model = twins("MattingRefine", "mobilenetv2", refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = probe_pair(2, 64, 96, seed=4)
    refiner = keras_model.refiner
    refiner.mode, refiner.sample_pixels, refiner.prevent_oversampling = "sampling", sample_pixels, prevent_oversampling
    try:
        dynamic = keras_model(nhwc(src), nhwc(bgr))
        refiner.static_shapes = True
        static = keras_model(nhwc(src), nhwc(bgr))
    finally:
        refiner.static_shapes, refiner.sample_pixels, refiner.prevent_oversampling = False, SAMPLE_PIXELS, True
    for name, x, y in zip(OUTPUTS, dynamic, static):
        assert np.array_equal(np.asarray(x), np.asarray(y)), name


def test_every_crop_and_replace_name_is_accepted_and_identical(twins):
    _, keras_model = twins("MattingRefine", "mobilenetv2", refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = probe_pair(1, 64, 96, seed=5)
    refiner = keras_model.refiner
    results = []
    for crop in tensorflow_impl.CROP_METHODS:
        for replace in tensorflow_impl.REPLACE_METHODS:
            refiner.patch_crop_method, refiner.patch_replace_method = crop, replace
            results.append([np.asarray(o) for o in keras_model(nhwc(src), nhwc(bgr))])
    refiner.patch_crop_method, refiner.patch_replace_method = "unfold", "scatter_nd"
    for other in results[1:]:
        for name, x, y in zip(OUTPUTS, results[0], other):
            assert np.array_equal(x, y), name


def test_full_equals_every_cell_refined(twins):
    _, keras_model = twins("MattingRefine", "mobilenetv2", refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = (nhwc(x) for x in probe_pair(2, 64, 96, seed=6))
    refiner = keras_model.refiner
    refiner.mode = "full"
    full = keras_model(src, bgr)
    refiner.mode, refiner.threshold = "thresholding", -1
    every_cell = keras_model(src, bgr)
    refiner.mode, refiner.threshold = "sampling", 0.1
    for name, x, y in zip(OUTPUTS, full, every_cell):
        assert np.array_equal(np.asarray(x), np.asarray(y)), name


def test_nothing_selected_gives_the_bilinear_upsampling(twins):
    torch_model, keras_model = twins("MattingRefine", "mobilenetv2", refine_sample_pixels=SAMPLE_PIXELS)
    src, bgr = probe_pair(2, 64, 96, seed=6)
    expected, got = run_both(torch_model, keras_model, src, bgr, mode="thresholding", threshold=1.0)  # err <= 1: none
    torch_model.refiner.threshold = keras_model.refiner.threshold = 0.1
    assert got[5].sum() == 0
    assert_close(expected, got)
    pha, pha_sm = got[0], got[2]
    upsampled = np.clip(np.asarray(tensorflow_impl.resize_bilinear(nhwc(pha_sm), 64, 96)), 0, 1)
    assert np.array_equal(pha, upsampled.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("shape, size", [((2, 5, 24, 24), (96, 96)), ((1, 3, 96, 96), (24, 24)),
                                         ((1, 4, 12, 16), (48, 64)), ((2, 7, 1, 1), (6, 10)),
                                         ((1, 2, 48, 40), (24, 20)), ((1, 3, 28, 36), (24, 24))])
def test_resize_bilinear_matches_interpolate(shape, size):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(x), size, mode="bilinear", align_corners=False).numpy()
    got = np.asarray(tensorflow_impl.resize_bilinear(nhwc(x), *size)).transpose(0, 3, 1, 2)
    assert np.abs(got - expected).max() <= 2.5e-7  # PyTorch's kernels differ among themselves by ~1 ulp
    ones = np.ones((1, 5, 7, 2), np.float32)
    assert np.array_equal(np.asarray(tensorflow_impl.resize_bilinear(ones, *size)), np.ones((1, *size, 2)))
    same = np.asarray(tensorflow_impl.resize_bilinear(nhwc(x), *shape[2:]))
    assert np.array_equal(same, nhwc(x))


def test_top_k_breaks_ties_by_lower_index_and_drops_zero_error():
    err = np.array([0.5, 0.9, 0.5, 0.0, 0.5, 0.5, 0.0, 0.0], np.float32).reshape(1, 2, 4, 1)

    def chosen(k, prevent):
        return np.asarray(select_top_k(err, k, prevent)).reshape(-1).tolist()
    assert chosen(3, False) == [1, 1, 1, 0, 0, 0, 0, 0]  # 0.9, then the two lowest-index 0.5s
    assert chosen(7, True) == [1, 1, 1, 0, 1, 1, 0, 0]
    assert chosen(7, False) == [1, 1, 1, 1, 1, 1, 1, 0]
    assert sum(chosen(0, False)) == 0
    assert sum(chosen(100, False)) == 8


def test_top_k_is_per_image():
    err = np.stack([np.arange(8.0), np.arange(8.0)[::-1]]).astype(np.float32).reshape(2, 2, 4, 1)
    chosen = np.asarray(select_top_k(err, 2, True)).reshape(2, -1).tolist()
    assert chosen == [[0, 0, 0, 0, 0, 0, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("k", [5, 300, 700, 2000])
def test_top_k_ties_match_pytorch_on_a_large_map(k):
    """Many exact ties (clamped errors are 0 or 1): the same cells as PyTorch's explicit tie rule."""
    rng = np.random.default_rng(k)
    err = rng.choice(np.array([0.0, 0.25, 0.5, 1.0], np.float32), size=(2, 1, 24, 32), p=[0.4, 0.2, 0.2, 0.2])
    for prevent in (True, False):
        expected = pytorch_impl.refiner.select_top_k(torch.from_numpy(err), k, prevent).numpy()
        got = np.asarray(select_top_k(nhwc(err), k, prevent)).transpose(0, 3, 1, 2)
        assert np.array_equal(got, expected)


def test_resize_weights_are_identical_for_known_and_traced_sizes():
    """Known sizes take numpy's float32 arithmetic, traced ones TensorFlow's: the same bits."""
    for in_size, out_size in [(1, 7), (24, 96), (96, 24), (28, 24), (135, 540), (270, 1080), (1080, 270), (37, 23)]:
        known = linear_weights_numpy(in_size, out_size)
        traced = linear_weights(tf.constant(in_size), tf.constant(out_size))
        for x, y in zip(known, traced):
            assert np.array_equal(x, np.asarray(y)) and x.dtype == np.asarray(y).dtype
