"""`bgmv2 video` on short generated clips: odd frame size and a rotation tag, frame counts, file types,
alpha ranges, image sequences, video backgrounds and composites, alignment, bad inputs, --force,
and Ctrl-C (in-process and a real SIGINT) leaving no partial output."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bgmv2.scripts.cli import main
from bgmv2.scripts.media.decode import VideoReader
from bgmv2.scripts.media.encode import write_image
from bgmv2.scripts.media.synth import synthetic_clip, write_video

FAST = ["--threads", "1", "--no-progress", "--device", "cpu"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """An 8-frame clip stored 91x63 (odd) with a 90-degree rotation tag (upright 63x91), its upright
    background as a picture and as a shorter video, and a 40-frame clip for interruption."""
    folder = tmp_path_factory.mktemp("video")
    clip, bgr = synthetic_clip(8, 63, 91, seed=5)
    write_video(folder / "src.mp4", clip, fps=10, rotation=90)
    upright_bgr = np.ascontiguousarray(np.rot90(bgr, 1))
    write_image(folder / "bgr.png", upright_bgr)
    write_video(folder / "bgr.mp4", [upright_bgr] * 3, fps=10)
    write_video(folder / "com.mp4", [np.full((91, 63, 3), 30 * i, np.uint8) for i in range(8)], fps=10)
    long_clip, long_bgr = synthetic_clip(400, 48, 64, seed=6)  # seconds of work: SIGINT lands mid-run
    write_video(folder / "long.mp4", long_clip, fps=25)
    write_image(folder / "long_bgr.png", long_bgr)
    return folder


def video(media, models, out, *extra, src="src.mp4", bgr="bgr.png", model="refine.pth"):
    return main(["video", "--src", str(media / src), "--bgr", str(media / bgr), "--output-dir", str(out),
                 "--model", str(models / model), *FAST, *extra])


def decode_all(path):
    reader = VideoReader(path)
    frames = list(reader)
    reader.close()
    return frames, reader


def test_rotated_odd_sized_clip_to_videos(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert video(media, models, out, "--output-types", "com", "pha", "fgr", "err", "ref") == 0
    assert sorted(p.name for p in out.iterdir()) == ["com.mp4", "err.mp4", "fgr.mov", "pha.mp4", "ref.mp4"]
    for name in ("com.mp4", "pha.mp4", "err.mp4", "ref.mp4", "fgr.mov"):
        frames, reader = decode_all(out / name)
        assert len(frames) == 8, name
        assert frames[0].shape == (91, 63, 3), name  # upright: the rotation tag was applied
        assert reader.fps == 10
    import av
    with av.open(str(out / "fgr.mov")) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "rgba"
        rgba = frame.to_ndarray()
    pha, _ = decode_all(out / "pha.mp4")
    assert rgba.shape == (91, 63, 4) and rgba[..., 3].std() > 1  # a real matte in the alpha channel
    assert np.abs(rgba[..., 3].astype(int) - pha[0][..., 0].astype(int)).mean() < 4  # pha.mp4 is lossy
    err = capsys.readouterr().err
    assert "8 frames in" in err and "resized" not in err


def test_image_sequences(media, models, tmp_path):
    out = tmp_path / "seq"
    assert video(media, models, out, "--output-format", "image_sequences", "--output-types", "pha", "fgr", "com") == 0
    for kind in ("pha", "fgr", "com"):
        names = sorted(p.name for p in (out / kind).iterdir())
        assert names == [f"{i:06d}.png" for i in range(8)], kind
    fgr = cv2.imread(str(out / "fgr" / "000003.png"), cv2.IMREAD_UNCHANGED)
    pha = cv2.imread(str(out / "pha" / "000003.png"), cv2.IMREAD_UNCHANGED)
    assert fgr.shape == (91, 63, 4) and pha.shape == (91, 63) and pha.dtype == np.uint8
    assert np.array_equal(fgr[..., 3], pha) and 0 <= pha.min() and pha.max() <= 255 and pha.std() > 1
    out_jpg = tmp_path / "jpg"
    assert video(media, models, out_jpg, "--output-format", "jpg", "--output-types", "com", "fgr") == 0
    assert (out_jpg / "com" / "000007.jpg").exists() and (out_jpg / "fgr" / "000007.png").exists()


def test_video_background_shorter_and_composite_on_a_video(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert video(media, models, out, "--bgr", str(media / "bgr.mp4"), "--com-bg", str(media / "com.mp4"),
                 "--output-types", "com") == 0
    frames, _ = decode_all(out / "com.mp4")
    assert len(frames) == 8
    assert "has only 3 frames; its last frame is used" in capsys.readouterr().err


def test_alignment_and_upstream_aliases(media, models, tmp_path):
    out = tmp_path / "up"
    code = main(["video", "--video-src", str(media / "src.mp4"), "--video-bgr", str(media / "bgr.png"),
                 "--output-dir", str(out), "--model-checkpoint", str(models / "refine.pth"),
                 "--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--preprocess-alignment",
                 "--video-target-bgr", "white", "--video-resize", "40", "60", "--output-types", "com", *FAST])
    assert code == 0
    frames, _ = decode_all(out / "com.mp4")
    assert len(frames) == 8 and frames[0].shape == (60, 40, 3)


def test_background_of_another_size_is_resized(media, models, tmp_path, capsys):
    write_image(tmp_path / "small.png", np.zeros((45, 31, 3), np.uint8))
    assert video(media, models, tmp_path / "out", "--bgr", str(tmp_path / "small.png"), "--output-types", "pha") == 0
    assert "is 31x45 but the frames are 63x91; resized to match" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("junk", "--src .*junk.mp4: not a readable video"),
    ("empty", "--src .*empty.mp4: not a readable video"),
    ("no_frames", "--src .*no_frames.avi: the video has no decodable frames"),
    ("audio_only", "--src .*audio.m4a: the file has no video stream"),
    ("missing_bgr", "--bgr .*nowhere.png: no such file"),
    ("bad_bgr", "--bgr .*junk_bgr.png: not a readable image"),
    ("ref_of_base", "has no ref output"),
    ("cuda", "--device cuda was asked for"),
])
def test_bad_inputs_are_clear_errors(media, models, tmp_path, capsys, case, message):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    src, bgr, extra, model = media / "src.mp4", media / "bgr.png", [], "refine.pth"
    if case == "junk":
        src = tmp_path / "junk.mp4"
        src.write_bytes(b"\x00\x00\x00\x18ftypmp42 then garbage" * 10)
    elif case == "empty":
        src = tmp_path / "empty.mp4"
        src.write_bytes(b"")
    elif case == "no_frames":
        import av
        src = tmp_path / "no_frames.avi"
        with av.open(str(src), "w") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            container.start_encoding()
    elif case == "audio_only":
        import av
        src = tmp_path / "audio.m4a"
        with av.open(str(src), "w") as container:
            stream = container.add_stream("aac", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    elif case == "missing_bgr":
        bgr = tmp_path / "nowhere.png"
    elif case == "bad_bgr":
        bgr = tmp_path / "junk_bgr.png"
        bgr.write_bytes(b"nothing")
    elif case == "ref_of_base":
        extra, model = ["--output-types", "ref"], "base.pth"
    elif case == "cuda":
        extra = ["--device", "cuda"]
    code = main(["video", "--src", str(src), "--bgr", str(bgr), "-o", str(tmp_path / "out"),
                 "--model", str(models / model), *FAST, *extra])
    assert code == 1
    err = capsys.readouterr().err
    import re
    assert re.search(message, err), err
    assert "Traceback" not in err and "ZeroDivisionError" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_existing_outputs_need_force_and_stay_intact_until_replaced(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "com.mp4").write_bytes(b"previous result")
    assert video(media, models, out, "--output-types", "com", "pha") == 1
    assert "already exist" in capsys.readouterr().err
    assert (out / "com.mp4").read_bytes() == b"previous result" and not (out / "pha.mp4").exists()
    assert video(media, models, out, "--output-types", "com", "pha", "--force") == 0
    assert len(decode_all(out / "com.mp4")[0]) == 8


def test_interrupt_in_process_leaves_no_partial_output(media, models, tmp_path, monkeypatch, capsys):
    from bgmv2.scripts.media import runner as runner_module
    real = runner_module.load_runner

    def interrupting(args, **kwargs):
        runner = real(args, **kwargs)
        calls = []

        class Interrupting:
            def __getattr__(self, name):
                return getattr(runner, name)

            def __call__(self, *a, **k):
                calls.append(1)
                if len(calls) == 4:
                    raise KeyboardInterrupt
                return runner(*a, **k)
        return Interrupting()

    monkeypatch.setattr(runner_module, "load_runner", interrupting)
    out = tmp_path / "out"
    out.mkdir()
    (out / "com.mp4").write_bytes(b"finished earlier")
    assert video(media, models, out, "--output-types", "com", "pha", "fgr", "--force") == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["com.mp4"]  # no partial files, the old one intact
    assert (out / "com.mp4").read_bytes() == b"finished earlier"
    seq = tmp_path / "seq"
    assert video(media, models, seq, "--output-types", "pha", "--output-format", "png") == 130
    assert not seq.exists() or not list(seq.iterdir())


def test_sigint_leaves_no_partial_output(media, models, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bgmv2.scripts.cli", "video", "--src", str(media / "long.mp4"), "--bgr",
               str(media / "long_bgr.png"), "-o", str(out), "--model", str(models / "refine.pth"),
               "--output-types", "com", "pha", *FAST]
    # A shell runs background jobs (CI's, often) with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: give the child the default disposition, as a terminal's Ctrl-C finds it.
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and any("partial" in p.name for p in out.iterdir()):
            break
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)  # outputs are open (partial names exist), hundreds of frames to go
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_upstream_wrapper_script(media, models, tmp_path, monkeypatch):
    import runpy
    out = tmp_path / "wrapped"
    monkeypatch.setattr(sys, "argv", ["inference_video.py", "--video-src", str(media / "src.mp4"), "--video-bgr",
                                      str(media / "bgr.png"), "--output-dir", str(out), "--model-checkpoint",
                                      str(models / "refine.pth"), "--output-types", "pha", *FAST])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "inference_video.py"), run_name="__main__")
    assert exit_info.value.code == 0 and (out / "pha.mp4").exists()


def test_output_that_is_an_input_is_refused(media, models, tmp_path, capsys):
    import shutil
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(media / "src.mp4", out / "com.mp4")
    before = (out / "com.mp4").read_bytes()
    assert main(["video", "--src", str(out / "com.mp4"), "--bgr", str(media / "bgr.png"), "-o", str(out),
                 "--output-types", "com", "--model", str(models / "refine.pth"), "--force", *FAST]) == 1
    assert "would replace the input" in capsys.readouterr().err
    assert (out / "com.mp4").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["com.mp4"]


def test_encoder_error_is_a_message_and_leaves_nothing(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert video(media, models, out, "--output-types", "com", "pha", "--codec", "mjpeg", "--resize", "64x90") == 1
    err = capsys.readouterr().err
    assert "writing the video failed" in err and "--codec" in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir())
