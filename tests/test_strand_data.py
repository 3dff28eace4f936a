"""Strand data: exact coverage drawing, the strand-rich set, the synthetic set's strands marked without
changing one of its numbers, crops around detail, the training mix, and the thin-structure loss weights."""
import math

import numpy as np
import pytest
import torch

from bgmv2.data.crops import detail_crop
from bgmv2.data.mix import MattingMix, parse_mix
from bgmv2.data.strand_drawing import Strand, composite_strands, coverage
from bgmv2.data.strands import StrandMattingSet
from bgmv2.data.synthetic import SyntheticMattingSet
from bgmv2.data.synthetic_strands import SyntheticWithStrands
from bgmv2.scripts.training.evaluation import strand_metrics
from bgmv2.scripts.training.losses import detail_weights, thin_structures


def horizontal(y: float, width: float, opacity: float = 1.0, aliased: bool = False, colour=(1.0, 0.0, 0.0)):
    xs = torch.arange(2, 30, 0.25)
    points = torch.stack([torch.full_like(xs, y), xs], dim=1)
    n = len(points)
    return Strand(points, torch.full((n,), width), torch.full((n,), opacity), torch.tensor(colour), aliased)


def canvas(strands, h=16, w=32):
    alpha, colour = composite_strands(strands, torch.zeros(1, h, w), torch.zeros(3, h, w))
    return alpha[0], colour


def test_coverage_is_the_share_of_each_pixel_a_strand_covers():
    alpha, colour = canvas([horizontal(8.5, 1.0)])  # centred on row 8: covers it exactly
    assert torch.allclose(alpha[8, 4:28], torch.ones(24)) and alpha[[7, 9], 4:28].abs().max() < 1e-6
    assert torch.allclose(colour[:, 8, 10], torch.tensor([1.0, 0.0, 0.0]))
    alpha, _ = canvas([horizontal(8.0, 1.0)])  # on the line between rows 7 and 8: half of each
    assert torch.allclose(alpha[7:9, 10], torch.tensor([0.5, 0.5]), atol=1e-5)
    alpha, _ = canvas([horizontal(8.5, 0.5, opacity=0.6)])  # half a pixel wide, 60 % opaque
    assert math.isclose(float(alpha[8, 10]), 0.3, abs_tol=1e-5)
    alpha, _ = canvas([horizontal(8.2, 1.0, opacity=0.6, aliased=True)])  # a 1-px chain, no antialiasing
    assert torch.allclose(alpha[8, 4:28], torch.full((24,), 0.6)) and alpha[7].max() == 0 and alpha[9].max() == 0


def test_crossing_strands_composite_over_each_other():
    a = horizontal(8.5, 1.0, opacity=0.6)
    b = horizontal(8.5, 1.0, opacity=0.5, colour=(0.0, 0.0, 1.0))
    alpha, colour = canvas([a, b])
    assert math.isclose(float(alpha[8, 10]), 1 - 0.4 * 0.5, abs_tol=1e-5)
    premultiplied = 0.5 * torch.tensor([0.0, 0.0, 1.0]) + 0.5 * 0.6 * torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(colour[:, 8, 10], premultiplied / 0.8, atol=1e-5)
    index, value = coverage(a, 16, 32)
    assert len(index) == len(set(index.tolist())) and value.max() <= 0.6 + 1e-6


def test_synthetic_with_strands_is_the_synthetic_set_bit_for_bit():
    plain, marked = SyntheticMattingSet(12, 64, 96, seed=11), SyntheticWithStrands(12, 64, 96, seed=11)
    for i in range(12):
        a, b = plain[i], marked[i]
        assert all(torch.equal(a[k], b[k]) for k in a), i
        strands = b["strands"]
        assert set(strands.unique().tolist()) <= {0.0, 1.0} and strands.shape == b["pha"].shape


def test_the_bundled_sample_has_its_strands_marked():
    from bgmv2.scripts.media.sample import make_sample
    truth = SyntheticWithStrands(1, *make_sample.SIZE, seed=make_sample.SEED)[0]
    strands = truth["strands"][0]
    assert 1000 < strands.sum() < 0.05 * strands.numel()
    assert truth["pha"][0][strands > 0].min() >= 0.1


@pytest.mark.parametrize("recipe", ["mixed", "flyaways"])
def test_strand_set_is_deterministic_in_range_and_marks_its_strands(recipe):
    a, b = StrandMattingSet(3, 96, 128, seed=2, recipe=recipe), StrandMattingSet(3, 96, 128, seed=2, recipe=recipe)
    for i in range(3):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in x)
        assert set(x) == {"src", "bgr", "pha", "fgr", "strands"}
        for value in x.values():
            assert value.dtype == torch.float32 and value.min() >= 0 and value.max() <= 1
        assert x["pha"][x["strands"] > 0].min() >= 0.1
    assert not torch.equal(a[0]["src"], StrandMattingSet(3, 96, 128, seed=3, recipe=recipe)[0]["src"])
    with pytest.raises(IndexError):
        a[3]
    with pytest.raises(ValueError, match="recipe"):
        StrandMattingSet(1, 8, 8, recipe="bald")


def test_flyaways_are_one_pixel_strands_at_sixty_percent():
    sample = StrandMattingSet(1, 192, 256, seed=0, recipe="flyaways")[0]
    on = sample["strands"][0] > 0
    assert on.sum() > 300
    alpha = sample["pha"][0][on]
    assert float(((alpha >= 0.1) & (alpha <= 0.6 + 1e-5)).float().mean()) > 0.8  # beside the body, at most 0.6


def test_detail_crop_centres_on_strands():
    sample = StrandMattingSet(1, 160, 160, seed=4)[0]
    hits = [detail_crop(sample, 64, 64, torch.Generator().manual_seed(s), focus=1.0)["strands"].sum() > 0
            for s in range(10)]
    assert all(hits)
    crop = detail_crop(sample, 64, 64, torch.Generator().manual_seed(0))
    assert all(v.shape[-2:] == (64, 64) for v in crop.values())
    with pytest.raises(ValueError, match="crop"):
        detail_crop(sample, 256, 64, torch.Generator())


def test_mix_draws_from_its_sources_deterministically():
    mix = MattingMix(8, 64, 64, seed=1, mix="synthetic=1,strands=1,flyaways=1", crop_scale=1.25)
    first = [mix[i] for i in range(4)]
    again = MattingMix(8, 64, 64, seed=1, mix="synthetic=1,strands=1,flyaways=1", crop_scale=1.25)
    for i, sample in enumerate(first):
        assert set(sample) == {"src", "bgr", "pha", "fgr", "strands"}
        assert sample["src"].shape == (3, 64, 64)
        assert torch.equal(sample["pha"], again[i]["pha"])
    assert parse_mix("synthetic=0.4,strands=0.6") == {"synthetic": 0.4, "strands": 0.6}
    for bad in ("hair=1", "strands=-1", "strands=x", "strands=0", ""):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_thin_structures_and_their_loss_weights():
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[..., 5, 2:30] = 0.8  # a 1-px strand
    alpha[..., 12:28, 8:24] = 1.0  # a solid block
    thin = thin_structures(alpha)
    assert thin[..., 5, 4:28].min() == 1 and thin[..., 14:26, 10:22].max() == 0
    weights = detail_weights(alpha, thin=8, semi=2)
    assert weights[..., 5, 10] == 1 + 8 + 2 and weights[..., 20, 16] == 1 and weights[..., 0, 30] == 1
    assert weights[..., 7, 10] == 1 + 8 + 2 and weights[..., 8, 10] == 1  # 2 px beside the strand, not 3


def test_strand_metrics():
    true = np.zeros((1, 1, 4, 4))
    true[..., 0, :] = 0.6
    strands = (true > 0).astype(np.float32)
    pred = true.copy()
    pred[..., 0, :2] = 0.35  # two of four strand pixels off by 0.25 but still found
    metrics = strand_metrics(pred, true, strands)
    assert metrics["strand_score"] == 0.5 and metrics["strand_found"] == 1.0 and metrics["strand_pixels"] == 4
    assert math.isnan(strand_metrics(pred, true, strands * 0)["strand_score"])
