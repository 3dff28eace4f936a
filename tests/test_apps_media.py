"""Unit tests of scripts/media: readers, writers, rendering, alignment, pipeline, runners."""
import argparse
import threading
import time

import numpy as np
import pytest
import torch

from bgmv2.scripts.media import decode, encode
from bgmv2.scripts.media.align import Aligner
from bgmv2.scripts.media.composite import Renderer, parse_colour
from bgmv2.scripts.media.errors import MediaError
from bgmv2.scripts.media.outputs import OutputSet, refuse_existing
from bgmv2.scripts.media.pipeline import Pipeline
from bgmv2.scripts.media.runner import FrameRunner
from bgmv2.scripts.media.synth import synthetic_clip, write_video


def marker_frames(count: int, height: int, width: int):
    """Frames with a red square in the top-left corner and a frame-number stripe: orientation shows."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 40, np.uint8)
        frame[:12, :12] = (255, 0, 0)
        frame[-6:, :] = (0, 0, 10 * i)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2), (0, 0)])
def test_video_reader_applies_the_rotation_tag(tmp_path, rotation, turns):
    stored = marker_frames(4, 36, 61)  # odd width: stored as 4:4:4
    path = tmp_path / "rotated.mp4"
    write_video(path, stored, fps=12, rotation=rotation)
    reader = decode.VideoReader(path)
    frames = list(reader)
    reader.close()
    assert len(frames) == 4 and reader.fps == 12
    expected = np.rot90(stored[0], turns)
    assert frames[0].shape == expected.shape
    red = (frames[0][..., 0].astype(int) > 200) & (frames[0][..., 1] < 80)
    ys, xs = np.nonzero(red)
    expected_red = np.nonzero((expected[..., 0] == 255) & (expected[..., 1] == 0))
    assert abs(ys.mean() - expected_red[0].mean()) < 2 and abs(xs.mean() - expected_red[1].mean()) < 2


def test_video_reader_errors(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00not a video at all" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="not a readable video"):
        decode.VideoReader(tmp_path / "junk.mp4")
    with pytest.raises(MediaError, match="not a readable video"):
        decode.VideoReader(tmp_path / "empty.mp4")
    with pytest.raises(MediaError, match="no such file"):
        decode.VideoReader(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="is a folder"):
        decode.VideoReader(tmp_path)


def test_images_listing_and_reading(tmp_path):
    with pytest.raises(MediaError, match="has no images"):
        decode.list_images(tmp_path)
    (tmp_path / "b").mkdir()
    frames = marker_frames(2, 10, 13)
    encode.write_image(tmp_path / "b" / "2.png", frames[0])
    encode.write_image(tmp_path / "1.jpg", frames[1])
    (tmp_path / "notes.txt").write_text("not an image")
    root, files = decode.list_images(tmp_path)
    assert [f.relative_to(root).as_posix() for f in files] == ["1.jpg", "b/2.png"]
    assert decode.read_image(files[1]).shape == (10, 13, 3)
    assert np.array_equal(decode.read_image(files[1]), frames[0])  # PNG is lossless, RGB order kept
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(MediaError, match="bad.png: not a readable image"):
        decode.read_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="bad.png: not a readable image"):
        decode.image_size(tmp_path / "bad.png")


def test_background_is_resized_with_a_warning(capsys):
    still = decode.StillBackground(np.zeros((20, 30, 3), np.uint8), "bg.png")
    assert still.frame(0, (60, 40)).shape == (40, 60, 3)
    assert still.frame(1, (60, 40)).shape == (40, 60, 3)
    err = capsys.readouterr().err
    assert err.count("resized to match") == 1 and "30x20 but the frames are 60x40" in err
    still.frame(2, (50, 50))
    assert "aspect ratios differ" in capsys.readouterr().err


def test_video_background_shorter_than_source_reuses_its_last_frame(tmp_path, capsys):
    write_video(tmp_path / "bg.mp4", marker_frames(2, 16, 16), fps=10)
    background = decode.open_background(tmp_path / "bg.mp4")
    frames = [background.frame(i, (16, 16)) for i in range(4)]
    background.close()
    assert frames[2] is frames[1] is frames[3]
    assert "has only 2 frames" in capsys.readouterr().err


@pytest.mark.parametrize("kind, size", [("rgb", (31, 17)), ("gray", (32, 18)), ("rgba", (31, 17))])
def test_video_writer_is_atomic_and_counts_frames(tmp_path, kind, size):
    path = tmp_path / ("out.mov" if kind == "rgba" else "out.mp4")
    writer = encode.VideoWriter(path, fps=10, size=size, kind=kind)
    channels = {"rgb": (3,), "gray": (), "rgba": (4,)}[kind]
    for i in range(5):
        writer.write(np.full((size[1], size[0]) + channels, 20 * i, np.uint8))
        assert not path.exists()
    writer.close()
    assert path.exists() and not writer.temporary.exists()
    reader = decode.VideoReader(path)
    frames = list(reader)
    reader.close()
    assert len(frames) == 5 and frames[0].shape == (size[1], size[0], 3)
    aborted = encode.VideoWriter(tmp_path / "gone.mp4", fps=10, size=(16, 16))
    aborted.write(np.zeros((16, 16, 3), np.uint8))
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_sequence_writer_replaces_a_folder_only_when_complete(tmp_path):
    folder = tmp_path / "pha"
    folder.mkdir()
    (folder / "old.png").write_bytes(b"old")
    writer = encode.SequenceWriter(folder, ".png")
    writer.write(np.zeros((4, 5), np.uint8))
    writer.write(np.zeros((4, 5, 4), np.uint8))
    assert (folder / "old.png").exists()  # untouched until close
    writer.close()
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pha"]
    aborted = encode.SequenceWriter(tmp_path / "fgr", ".png")
    aborted.write(np.zeros((4, 5, 4), np.uint8))
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pha"]


def test_refuse_existing_and_output_set(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(MediaError, match="1 output\\(s\\) already exist: .*a.png.*--force"):
        refuse_existing([tmp_path / "a.png", tmp_path / "b.png"], force=False)
    refuse_existing([tmp_path / "a.png"], force=True)
    outputs = OutputSet()
    outputs.add(encode.VideoWriter(tmp_path / "v.mp4", fps=5, size=(16, 16))).write(np.zeros((16, 16, 3), np.uint8))
    outputs.add(encode.SequenceWriter(tmp_path / "seq")).write(np.zeros((16, 16), np.uint8))
    outputs.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_parse_colour():
    assert parse_colour("green") == (120, 255, 155)
    assert parse_colour("#0A0b0c") == (10, 11, 12)
    assert parse_colour(" 1, 2 ,3") == (1, 2, 3)
    assert parse_colour("beach.jpg") is None
    with pytest.raises(MediaError, match="0 to 255"):
        parse_colour("1,2,300")


def test_renderer_outputs_types_and_ranges():
    pha = torch.linspace(0, 1, 6 * 7).view(1, 1, 6, 7)
    fgr = torch.zeros(1, 3, 6, 7)
    fgr[:, 0] = 1  # red subject
    outputs = {"pha": pha, "fgr": fgr, "err_sm": torch.rand(1, 1, 2, 2), "ref_sm": torch.tensor([[[[0.0, 1.0]]]])}
    pictures = Renderer(("com", "pha", "fgr", "err", "ref"), colour=(0, 0, 255))(outputs)
    assert pictures["com"].shape == (6, 7, 3) and pictures["com"].dtype == np.uint8
    assert tuple(pictures["com"][0, 0]) == (0, 0, 255) and tuple(pictures["com"][-1, -1]) == (255, 0, 0)
    assert pictures["pha"].shape == (6, 7) and pictures["pha"].min() == 0 and pictures["pha"].max() == 255
    assert pictures["fgr"].shape == (6, 7, 4) and np.array_equal(pictures["fgr"][..., 3], pictures["pha"])
    assert pictures["err"].shape == (6, 7)
    assert set(np.unique(pictures["ref"])) == {0, 255} and (pictures["ref"][:, :3] == 0).all()
    com = Renderer(("com",))(outputs, com_frame=np.full((6, 7, 3), 255, np.uint8))["com"]
    assert tuple(com[0, 0]) == (255, 255, 255)


def test_aligner_recovers_a_known_homography():
    rng = np.random.default_rng(0)
    import cv2
    texture = cv2.resize((rng.random((40, 60, 3)) * 255).astype(np.uint8), (240, 160), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(texture, (3, 3), 0)
    H = np.array([[1.02, 0.03, 6.0], [-0.02, 1.01, -4.0], [0.0, 0.0, 1.0]])
    frame = cv2.warpPerspective(texture, H, (240, 160))
    aligner = Aligner("orb")
    aligned = aligner(frame, texture)
    found = aligner.last_homography
    assert found is not None
    corners = np.float32([[40, 30], [200, 30], [200, 130], [40, 130]]).reshape(-1, 1, 2)
    error = np.abs(cv2.perspectiveTransform(corners, found) - cv2.perspectiveTransform(corners, H)).max()
    assert error < 1.5
    inner = (slice(20, 140), slice(20, 220))
    assert np.abs(aligned[inner].astype(int) - frame[inner].astype(int)).mean() < 6
    assert Aligner("sift").homography(frame, texture) is not None
    flat = np.full((160, 240, 3), 128, np.uint8)
    assert Aligner("orb")(flat, flat) is flat  # nothing to match: background kept as it is


def test_pipeline_keeps_order_and_overlaps():
    seen = []

    def slow_items():
        for i in range(12):
            time.sleep(0.005)
            yield i

    pipeline = Pipeline(slow_items(), lambda i: i * 10, seen.append, total=12, progress=False, queue_size=2)
    assert pipeline.run() == 12 and seen == [i * 10 for i in range(12)]
    threads = set()
    Pipeline(range(3), lambda i: threads.add(threading.current_thread().name) or i,
             lambda i: threads.add(threading.current_thread().name), progress=False).run()
    assert threads == {"MainThread", "bgmv2-encode"}


def pipeline_threads():
    """The pipeline's stage threads still alive (the browser runtime's one web server per process is not one)."""
    return [t for t in threading.enumerate() if t.name.startswith("bgmv2-") and t.name != "bgmv2-web-site"]


@pytest.mark.parametrize("stage", ["read", "infer", "consume"])
def test_pipeline_raises_a_stage_error_and_stops(stage):
    def items():
        for i in range(100):
            if stage == "read" and i == 5:
                raise MediaError("bad frame 5")
            yield i

    def infer(i):
        if stage == "infer" and i == 5:
            raise MediaError("bad frame 5")
        return i

    consumed = []

    def consume(i):
        if stage == "consume" and i == 5:
            raise MediaError("bad frame 5")
        consumed.append(i)

    with pytest.raises(MediaError, match="bad frame 5"):
        Pipeline(items(), infer, consume, progress=False, queue_size=2).run()
    assert consumed == list(range(5)) or len(consumed) <= 5
    assert not pipeline_threads()


def test_pipeline_keyboard_interrupt_waits_for_the_writer():
    finished = []

    def consume(i):
        time.sleep(0.05)
        finished.append(i)

    def infer(i):
        if i == 3:
            raise KeyboardInterrupt
        return i

    with pytest.raises(KeyboardInterrupt):
        Pipeline(range(10), infer, consume, progress=False).run()
    assert finished == list(range(len(finished))) and len(finished) <= 3  # whole items only, in order
    assert not pipeline_threads()


def test_device_errors():
    from bgmv2.converters import ConversionError, devices
    assert devices.choose("cpu", "torch") == "cpu"
    assert devices.choose("auto", "torch") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConversionError, match="device gpu0 is not a device here; use cpu, cuda"):
        devices.choose("gpu0", "torch")
    if not torch.cuda.is_available():
        with pytest.raises(ConversionError, match=r"device cuda(:0)? was asked for, but .*\. Use device cpu \(or auto\)"):
            devices.choose("cuda", "torch")


def test_frame_runner_any_size_matches_matte():
    from bgmv2.converters.torch_formats import torch_runner
    from bgmv2.pytorch_impl import MattingRefine, matte
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2").eval()
    runner = FrameRunner(torch_runner(model, "model", "(eager)", {}))
    clip, bgr = synthetic_clip(1, 37, 51, seed=2)
    out = runner(runner.prepare(clip[0]), runner.prepare(bgr))
    pha, fgr, *_ = matte(model, torch.from_numpy(clip[0]).permute(2, 0, 1), torch.from_numpy(bgr).permute(2, 0, 1))
    assert out["pha"].shape == (1, 1, 37, 51) and torch.allclose(out["pha"], pha, atol=1e-6)
    assert torch.allclose(out["fgr"], fgr, atol=1e-6)


def test_shipped_model_missing_is_a_clear_error(monkeypatch, tmp_path):
    from bgmv2 import weights
    from bgmv2.scripts.media import runner as runner_module

    class Entry:
        name, file, shipped_path = "bgmv2-x", "x.safetensors", tmp_path / "x.safetensors"

    class Registry:
        def default(self, backbone, kind):
            return Entry()

    monkeypatch.setattr(weights, "load_registry", lambda: Registry())
    with pytest.raises(MediaError, match="shipped model .* is not in this install yet. Pass --model"):
        runner_module.shipped_model_path()
    args = argparse.Namespace(model=None)
    with pytest.raises(MediaError, match="not in this install"):
        runner_module.load_runner(argparse.Namespace(**vars(args), threads=None, device="cpu", precision=None,
                                                     preset=None, kind=None, backbone=None, backend="auto"),
                                  announce=False)
