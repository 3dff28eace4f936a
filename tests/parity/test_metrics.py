"""The parity metrics on hand-made outputs: differences, 8-bit shares, and which refined-cell flips
are legitimate (at the selection boundary) and which are not."""
import numpy as np

from bgmv2.converters.agreement import DiffStats, ParityMetrics, classify_cells, eight_bit
from bgmv2.converters.acceptance import fixed_limits


def test_diff_stats_and_8bit_share():
    a = np.zeros((1, 1, 4, 4))
    b = a.copy()
    b[0, 0, 0, 0] = 0.5 / 255 + 1e-6  # rounds to 1/255: one 8-bit level
    b[0, 0, 1, 1] = 1e-4  # does not change the 8-bit value
    stats = DiffStats()
    stats.add(a, b)
    assert stats.pixels_8bit == 1 and stats.share_8bit == 1 / 16
    assert np.isclose(stats.max_abs, 0.5 / 255 + 1e-6)
    assert np.isclose(stats.sad, (0.5 / 255 + 1e-6 + 1e-4) / 1000)
    assert eight_bit(np.array([1.2, -0.1])).tolist() == [255.0, 0.0]


def test_nan_counts_as_a_violation():
    reference = {"pha": np.zeros((1, 1, 8, 8), np.float32)}
    candidate = {"pha": np.full((1, 1, 8, 8), np.nan, np.float32)}
    metrics = ParityMetrics()
    metrics.add(reference, candidate, {}, 0.0)
    assert any("NaN" in v for v in fixed_limits("fp32").violations(metrics))


def test_flips_at_the_top_k_boundary_are_explained_and_others_are_not():
    err = np.array([[[0.9, 0.5, 0.30001], [0.3, 0.1, 0.0]]])  # (1, 2, 3) cells
    knobs = {"refine_mode": "sampling", "refine_sample_pixels": 3 * 16}  # k = 3: 0.9, 0.5, 0.30001
    reference = (err >= 0.30001)[:, None].astype(np.float32)
    near = reference.copy()
    near[0, 0, 0, 2], near[0, 0, 1, 0] = 0, 1  # 0.30001 <-> 0.3: rounding at the k-th value
    classes = classify_cells(reference, near, err, knobs, band=1e-4)
    assert classes["flipped"].sum() == 2 and classes["edge"].sum() == 2 and classes["unexplained"].sum() == 0
    far = reference.copy()
    far[0, 0, 0, 0] = 0  # the largest error dropped: no rounding explains it
    classes = classify_cells(reference, far, err, knobs, band=1e-4)
    assert classes["unexplained"].sum() == 1


def test_threshold_flips():
    err = np.array([[[0.1, 0.10005, 0.3, 0.05]]])
    knobs = {"refine_mode": "thresholding", "refine_threshold": 0.1}
    reference = (err > 0.1)[:, None].astype(np.float32)
    candidate = reference.copy()
    candidate[0, 0, 0, 1] = 0  # 0.10005 is within the band of the threshold
    assert classify_cells(reference, candidate, err, knobs, band=2e-4)["edge"].sum() == 1
    wrong = (err > 0.04)[:, None].astype(np.float32)  # a threshold of 0.04 instead of 0.1
    assert classify_cells(reference, wrong, err, knobs, band=2e-4)["unexplained"].sum() == 1
