"""`bgmv2 demo`: the bundled sample matted into outputs and a preview, with and without shipped weights."""
import sys
from pathlib import Path

import cv2
import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine
from bgmv2.scripts.cli import main
from bgmv2.scripts.cmd_demo import SAMPLE

REPO = Path(__file__).resolve().parents[1]


def test_bundled_sample_is_small_and_reproducible():
    files = [SAMPLE / "src.jpg", SAMPLE / "bgr.jpg"]
    assert sum(f.stat().st_size for f in files) < 300_000
    for f in files:
        assert cv2.imread(str(f)).shape == (360, 640, 3)
    assert (SAMPLE / "make_sample.py").exists()


def test_demo_writes_outputs_and_preview(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "m.pth")
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--model", str(tmp_path / "m.pth"), "--threads", "1", "--device", "cpu"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["com.png", "fgr.png", "pha.png", "preview.png"]
    assert cv2.imread(str(out / "fgr.png"), cv2.IMREAD_UNCHANGED).shape == (360, 640, 4)
    assert cv2.imread(str(out / "pha.png"), cv2.IMREAD_UNCHANGED).shape == (360, 640)
    preview = cv2.imread(str(out / "preview.png"))
    assert preview.shape[0] == 270 and preview.shape[1] > 4 * 480
    capsys.readouterr()
    assert main(args) == 1 and "already exist" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_demo_without_shipped_weights_says_so_and_still_runs(tmp_path, monkeypatch, capsys):
    from bgmv2.scripts.media import runner as runner_module
    from bgmv2.scripts.media.errors import MediaError

    def missing():
        raise MediaError("the shipped model (x) is not in this install yet. Pass --model ...")
    monkeypatch.setattr(runner_module, "shipped_model_path", missing)
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "empty-cache"))
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--threads", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "is not in this install yet" in err and "UNTRAINED" in err
    assert (out / "preview.png").exists()


def test_demo_uses_the_shipped_model_when_present(tmp_path, capsys):
    from bgmv2 import weights
    entry = weights.load_registry().default("mobilenetv2", "refine")
    if not entry.shipped_path.exists():
        pytest.skip(f"{entry.file} is not in this checkout yet")
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--threads", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert entry.file in err and "UNTRAINED" not in err
    pha = cv2.imread(str(out / "pha.png"), cv2.IMREAD_UNCHANGED)
    assert 0.02 < (pha > 127).mean() < 0.6  # the subject is found, not everything or nothing


def test_missing_media_packages_name_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now fails as if it were not installed
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert "needs the `cv2` package" in err and "pip install 'bgmv2-zoo[video]'" in err and "Traceback" not in err


def test_demo_clip_is_the_sample_subject_over_its_background(tmp_path):
    """`bgmv2 demo --clip`'s clip.mp4: CLIP_FRAMES frames of 640x360 whose background is the sample's bgr.jpg."""
    import numpy as np
    from bgmv2.scripts.cmd_demo import CLIP_FRAMES, write_clip
    from bgmv2.scripts.media.decode import VideoReader, read_image
    write_clip(tmp_path / "clip.mp4")
    frames = list(VideoReader(str(tmp_path / "clip.mp4"), "--src"))
    assert len(frames) == CLIP_FRAMES and frames[0].shape == (360, 640, 3)
    bgr = read_image(SAMPLE / "bgr.jpg").astype(int)
    corner = np.abs(frames[0][:40, :40].astype(int) - bgr[:40, :40]).mean()  # no subject in the corner
    assert corner < 8, corner
