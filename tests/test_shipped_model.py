"""The weights we ship: hash as registered, load through every entry point, and beat the trivial
|src - bgr| threshold baseline on held-out synthetic images by the margin recorded in the registry."""
from pathlib import Path

import pytest
import torch

from bgmv2.parity_tests.metrics import matting_metrics
from bgmv2.pytorch_impl import MattingBase, MattingRefine, load_model
from bgmv2.scripts.training.loop import baseline_metrics, predict_alpha
from bgmv2.data.synthetic import SyntheticMattingSet
from bgmv2.weights import load_registry, sha256_of

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 777  # neither the training stream nor its validation set used this seed


@pytest.fixture(scope="module")
def shipped():
    return load_registry().default("mobilenetv2", "refine")


def test_hash_and_size_match_the_registry(shipped):
    assert sha256_of(shipped.shipped_path) == shipped.sha256
    assert shipped.shipped_path.stat().st_size == shipped.size


def test_loads_by_name_path_and_hub(shipped):
    by_name = load_model(shipped.name)
    by_path = load_model(shipped.shipped_path)
    assert isinstance(by_name, MattingRefine) and not by_name.training
    for a, b in zip(by_name.state_dict().values(), by_path.state_dict().values()):
        assert torch.equal(a, b)
    hub = torch.hub.load(str(REPO), "mattingrefine", source="local", backbone="mobilenetv2", pretrained=True,
                         refine_mode="thresholding")
    assert hub.refiner.mode == "thresholding"
    assert torch.equal(hub.state_dict()["refiner.conv4.bias"], by_name.state_dict()["refiner.conv4.bias"])
    base = torch.hub.load(str(REPO), "mattingbase", source="local", pretrained=True)
    assert type(base) is MattingBase
    assert type(torch.hub.load(str(REPO), "mattingrefine", source="local", pretrained=False)) is MattingRefine


def test_beats_the_threshold_baseline_on_held_out_images(shipped):
    data = SyntheticMattingSet(6, 512, 512, seed=HELD_OUT_SEED)  # the first 6 of the registry's 12
    samples = [data[i] for i in range(len(data))]
    val = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    model = load_model(shipped.name)
    ours = matting_metrics(predict_alpha(model, val["src"], val["bgr"]).numpy(), val["pha"].numpy())
    baseline = baseline_metrics(val)
    assert ours["sad"] < 0.6 * baseline["sad"], (ours, baseline)
    assert ours["mse"] < 0.6 * baseline["mse"], (ours, baseline)
