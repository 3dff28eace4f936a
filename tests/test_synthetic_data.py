"""The synthetic training set is deterministic, realistic in range, and the folder dataset reads the
published datasets' layout."""
import numpy as np
import pytest
import torch

from bgmv2.scripts.training.folders import DatasetError, FolderMattingSet
from bgmv2.data.synthetic import SyntheticMattingSet


def test_same_seed_and_index_give_the_same_sample():
    a, b = SyntheticMattingSet(4, 64, 96, seed=3), SyntheticMattingSet(4, 64, 96, seed=3)
    for i in range(4):
        assert all(torch.equal(a[i][k], b[i][k]) for k in ("src", "bgr", "pha", "fgr"))
    other = SyntheticMattingSet(4, 64, 96, seed=4)
    assert not torch.equal(a[0]["src"], other[0]["src"])
    assert not torch.equal(a[0]["src"], a[1]["src"])


def test_sample_shapes_ranges_and_realism():
    data = SyntheticMattingSet(6, 96, 128, seed=0)
    for i in range(len(data)):
        s = data[i]
        assert s["src"].shape == (3, 96, 128) and s["bgr"].shape == (3, 96, 128)
        assert s["pha"].shape == (1, 96, 128) and s["fgr"].shape == (3, 96, 128)
        for x in s.values():
            assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
        soft = ((s["pha"] > 0.05) & (s["pha"] < 0.95)).float().mean()
        assert soft > 0.002  # soft edges / strands, not a binary mask
        assert 0.02 < s["pha"].mean() < 0.9
        outside = s["pha"][0] == 0
        # the background shot is close to, but not the same as, what lies behind the subject
        difference = (s["src"] - s["bgr"]).abs().mean(dim=0)[outside]
        assert 0 < difference.mean() < 0.15
    with pytest.raises(IndexError):
        data[6]


def write_png(path, array):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)


def make_folders(root, clips=2, frames=2, unpaired=False):
    rng = np.random.default_rng(0)
    for c in range(clips):
        for f in range(frames):
            write_png(root / "fgr" / f"{c:04d}" / f"{f:05d}.jpg".replace(".jpg", ".png"), rng.random((40, 60, 3)))
            write_png(root / "pha" / f"{c:04d}" / f"{f:05d}.png", rng.random((40, 60)))
    for b in range(3):
        write_png(root / "backgrounds" / f"bg{b}.png", rng.random((50, 70, 3)))
    if unpaired:
        write_png(root / "fgr" / "9999" / "00000.png", rng.random((40, 60, 3)))
    return root / "fgr", root / "pha", root / "backgrounds"


def test_folder_dataset_layout(tmp_path):
    fgr, pha, bgr = make_folders(tmp_path)
    data = FolderMattingSet(fgr, pha, bgr, 32, 48, seed=1, length=6)
    assert len(data) == 6
    sample = data[5]
    assert sample["src"].shape == (3, 32, 48) and sample["pha"].shape == (1, 32, 48)
    assert torch.equal(data[2]["src"], data[2]["src"])


def test_folder_dataset_errors(tmp_path):
    fgr, pha, bgr = make_folders(tmp_path, unpaired=True)
    with pytest.raises(DatasetError, match="have no partner.*9999"):
        FolderMattingSet(fgr, pha, bgr, 32, 48)
    with pytest.raises(DatasetError, match="does not exist"):
        FolderMattingSet(tmp_path / "nope", pha, bgr, 32, 48)
