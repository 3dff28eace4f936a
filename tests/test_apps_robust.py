"""Issue 14 "nothing silent, nothing lost", apps side: batches that resume and go past bad files, one
error style (one line, the fix, a documented exit status, nothing partial left), SIGTERM like Ctrl-C,
stale partial files, nonsense values refused, truncated video, one size order and one boolean style."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bgmv2.scripts.cli import main
from bgmv2.scripts.media.encode import write_image
from bgmv2.scripts.media.synth import synthetic_clip, write_video

FAST = ["--threads", "1", "--no-progress", "--device", "cpu"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Pictures a, b, c (a JPEG cut in half: its header reads, its pixels do not), d; a background;
    a 12-frame clip and the same clip as an AVI cut at 90% (declares 12 frames, fewer decode)."""
    folder = tmp_path_factory.mktemp("robust")
    clip, bgr = synthetic_clip(12, 48, 64, seed=3)
    (folder / "src").mkdir()
    for name, frame in zip("abd", clip):
        write_image(folder / "src" / f"{name}.png", frame)
    write_image(folder / "whole.jpg", clip[3])
    data = (folder / "whole.jpg").read_bytes()
    (folder / "src" / "c.jpg").write_bytes(data[:len(data) // 2])
    write_image(folder / "bgr.png", bgr)
    write_video(folder / "clip.mp4", clip, fps=10)
    import av
    with av.open(str(folder / "whole.avi"), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    data = (folder / "whole.avi").read_bytes()
    (folder / "cut.avi").write_bytes(data[:int(len(data) * 0.8)])
    return folder


def images(media, models, out, *extra):
    return main(["images", "--src", str(media / "src"), "--bgr", str(media / "bgr.png"), "-o", str(out),
                 "--model", str(models / "refine.pth"), "--output-types", "pha", *FAST, *extra])


def video(media, models, out, *extra, src="clip.mp4"):
    return main(["video", "--src", str(media / src), "--bgr", str(media / "bgr.png"), "-o", str(out),
                 "--model", str(models / "refine.pth"), "--output-types", "pha", *FAST, *extra])


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


def one_error_line(err: str, *words) -> str:
    """The `error:` line of stderr (ours, or argparse's `bgmv2 CMD: error: ...`); no traceback; it names
    every word."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ") or ": error: " in line]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- 3: batches ------------------------------------------------------------------------------------
def test_bad_picture_stops_with_the_count_then_skip_existing_and_continue_on_error(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert images(media, models, out) == 1
    line = one_error_line(capsys.readouterr().err, "c.jpg", "not a readable image", "2 of 4 picture(s) were written",
                          "--skip-existing", "--continue-on-error")
    assert files_under(out) == ["pha/a.png", "pha/b.png"], line  # in input order, nothing partial
    before = (out / "pha" / "a.png").stat().st_mtime_ns
    assert images(media, models, out) == 1  # outputs exist: refused, as before
    assert "already exist" in capsys.readouterr().err
    assert images(media, models, out, "--skip-existing", "--force") == 1
    one_error_line(capsys.readouterr().err, "--skip-existing", "--force")
    assert images(media, models, out, "--skip-existing", "--continue-on-error") == 3
    err = capsys.readouterr().err
    assert "1 picture(s) failed (1 made)" in err and "c.jpg: not a readable image" in err and "Traceback" not in err
    assert files_under(out) == ["pha/a.png", "pha/b.png", "pha/d.png"]
    assert (out / "pha" / "a.png").stat().st_mtime_ns == before  # made once, never redone
    (media / "src" / "c.jpg").write_bytes((media / "whole.jpg").read_bytes())  # the user fixes it
    try:
        assert images(media, models, out, "--skip-existing") == 0
        assert "1 picture(s) matted" in capsys.readouterr().err and "(3 had their outputs already)"
        assert files_under(out) == ["pha/a.png", "pha/b.png", "pha/c.png", "pha/d.png"]
        assert images(media, models, out, "--skip-existing") == 0
        assert "nothing to do: all 4 picture(s)" in capsys.readouterr().err
    finally:
        data = (media / "whole.jpg").read_bytes()
        (media / "src" / "c.jpg").write_bytes(data[:len(data) // 2])


def test_bad_header_is_found_before_work_and_skipped_with_continue_on_error(media, models, tmp_path, capsys):
    import shutil
    src = tmp_path / "src"
    shutil.copytree(media / "src", src)
    (src / "c.jpg").write_bytes(b"not a picture at all")
    argv = ["images", "--src", str(src), "--bgr", str(media / "bgr.png"), "-o", str(tmp_path / "out"),
            "--model", str(tmp_path / "never-loaded.pth"), "--output-types", "pha", *FAST]
    assert main(argv) == 1  # found from the headers, before the (missing) model is even looked at
    one_error_line(capsys.readouterr().err, "c.jpg", "nothing was written", "--continue-on-error")
    assert not (tmp_path / "out").exists()
    argv[argv.index("--model") + 1] = str(models / "refine.pth")
    assert main([*argv, "--continue-on-error"]) == 3
    assert files_under(tmp_path / "out") == ["pha/a.png", "pha/b.png", "pha/d.png"]


def test_per_item_api_for_batch_runners(media, models, tmp_path):
    """What a batch runner calls: plan the items, open the context once, make one item at a time."""
    from bgmv2.scripts.cli import build_parser
    from bgmv2.scripts.media.pictures import matte_image, open_context, plan
    args = build_parser().parse_args(["images", "--src", str(media / "src"), "--bgr", str(media / "bgr.png"), "-o",
                                      str(tmp_path / "out"), "--model", str(models / "refine.pth"), "--output-types",
                                      "pha", "fgr", "--continue-on-error", *FAST])
    image_plan = plan(args)
    assert [item.src.name for item in image_plan.items] == ["a.png", "b.png", "c.jpg", "d.png"]
    context = open_context(args, image_plan)
    made = matte_image(image_plan.items[3], context)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in made) == ["fgr/d.png", "pha/d.png"]
    assert files_under(tmp_path / "out") == ["fgr/d.png", "pha/d.png"]
    from bgmv2.scripts.media.errors import MediaError
    with pytest.raises(MediaError, match="c.jpg: not a readable image"):
        matte_image(image_plan.items[2], context)


def test_video_skip_existing_makes_only_missing_types(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert video(media, models, out) == 0
    before = (out / "pha.mp4").stat().st_mtime_ns
    assert video(media, models, out, "--output-types", "pha", "com", "--skip-existing") == 0
    assert sorted(p.name for p in out.iterdir()) == ["com.mp4", "pha.mp4"]
    assert (out / "pha.mp4").stat().st_mtime_ns == before
    capsys.readouterr()
    assert video(media, models, out, "--output-types", "pha", "com", "--skip-existing") == 0
    assert "nothing to do" in capsys.readouterr().err


# -- 4: one error style ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["images", "video", "demo"])
def test_output_dir_that_is_a_file_or_read_only(media, models, tmp_path, monkeypatch, capsys, command):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")

    def run(out):
        if command == "images":
            return images(media, models, out)
        if command == "video":
            return video(media, models, out)
        return main(["demo", "-o", str(out), "--model", str(models / "refine.pth"), *FAST[:2]])
    assert run(a_file) == 1
    one_error_line(capsys.readouterr().err, str(a_file), "is a file, not a folder")
    assert run(a_file / "below") == 1
    one_error_line(capsys.readouterr().err, "which is a file")
    assert a_file.read_text() == "mine"
    real = os.statvfs

    class ReadOnly:
        def __init__(self, path):
            self.f_flag = real(path).f_flag | os.ST_RDONLY
    monkeypatch.setattr(os, "statvfs", ReadOnly)
    assert run(tmp_path / "ro") == 1
    one_error_line(capsys.readouterr().err, "read-only file system", "choose another folder")
    assert not (tmp_path / "ro").exists()


def full_disk_after(monkeypatch, count: int):
    """Make picture writes fail with ENOSPC after `count` of them succeeded."""
    from bgmv2.scripts.media import encode
    real, calls = encode.write_bytes, []

    def writing(path, data):
        calls.append(path)
        if len(calls) > count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)
    monkeypatch.setattr(encode, "write_bytes", writing)


def test_full_disk_images(media, models, tmp_path, monkeypatch, capsys):
    full_disk_after(monkeypatch, 1)
    out = tmp_path / "out"
    assert images(media, models, out, "--continue-on-error") == 1  # a full disk stops even a keep-going run
    one_error_line(capsys.readouterr().err, "the disk is full", "1 of 4 picture(s) were written", "--skip-existing")
    assert files_under(out) == ["pha/a.png"]


def test_full_disk_png_sequence_video(media, models, tmp_path, monkeypatch, capsys):
    full_disk_after(monkeypatch, 5)
    out = tmp_path / "out"
    assert video(media, models, out, "--output-format", "png") == 1
    one_error_line(capsys.readouterr().err, "pha", "the disk is full")
    assert files_under(out) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 40 KiB file system (tmpfs), where root may mount one; skipped elsewhere."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_really_full_disk_video_files(models, tmp_path, tiny_disk, capsys):
    rng = np.random.default_rng(0)  # noise does not compress: fgr.mov's PNG frames pass 40 KiB at once
    clip, bgr = list(rng.integers(0, 256, (6, 120, 160, 3), dtype=np.uint8)), np.zeros((120, 160, 3), np.uint8)
    write_video(tmp_path / "big.mp4", clip, fps=10)
    write_image(tmp_path / "bgr.png", bgr)
    out = tiny_disk / "out"
    assert main(["video", "--src", str(tmp_path / "big.mp4"), "--bgr", str(tmp_path / "bgr.png"), "-o", str(out),
                 "--model", str(models / "refine.pth"), "--output-types", "com", "pha", "fgr", *FAST]) == 1
    one_error_line(capsys.readouterr().err, "cannot write: the disk is full")
    assert list(out.iterdir()) == []


def test_inspect_bad_size_and_missing_cuda(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "bgmv2-mobilenetv2-synthetic", "--run", "0x0"])
    assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    assert main(["inspect", "bgmv2-mobilenetv2-synthetic", "--run", "64x48", "--device", "cuda"]) == 1
    one_error_line(capsys.readouterr().err, "--device cuda", "--device cpu")


def test_ctrl_c_in_convert_and_parity_is_one_line_and_leaves_nothing(models, tmp_path, monkeypatch, capsys):
    from bgmv2.converters import api
    from bgmv2.parity_tests import engine

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(api, "validate", interrupt)  # the probe check, after the file was written
    assert main(["convert", str(models / "refine.pth"), str(tmp_path / "m.safetensors")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setattr(engine, "run_parity", interrupt)
    code = main(["parity", "--reference", str(models / "refine.pth"), "--candidate", str(models / "refine.pth"),
                 "--size", "64x48", "--repeat", "0", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()


def test_unexpected_errors_are_one_line_with_the_debug_hint(media, models, tmp_path, monkeypatch, capsys):
    from bgmv2.scripts.media import composite

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")
    monkeypatch.setattr(composite.Renderer, "__call__", broken)
    assert images(media, models, tmp_path / "out") == 1
    line = one_error_line(capsys.readouterr().err, "unexpected RuntimeError: a bug over two lines", "BGMV2_DEBUG=1")
    assert line
    assert files_under(tmp_path / "out") == [] if (tmp_path / "out").exists() else True
    monkeypatch.setenv("BGMV2_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        images(media, models, tmp_path / "out")


def start(command, out):
    # A shell runs background jobs with SIGINT ignored; the child gets the default dispositions.
    return subprocess.Popen([sys.executable, "-m", "bgmv2.scripts.cli", *command], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_partial(process, out, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and any("partial" in p.name for p in out.iterdir()):
            return
        time.sleep(0.05)
    raise AssertionError(process.communicate())


def test_sigterm_is_handled_like_ctrl_c(models, tmp_path):
    first, bgr = synthetic_clip(1, 48, 64, seed=6)
    clip = [np.roll(first[0], i, axis=1) for i in range(300)]  # seconds of work, made in no time
    write_video(tmp_path / "long.mp4", clip, fps=25)
    write_image(tmp_path / "bgr.png", bgr)
    out = tmp_path / "out"
    process = start(["video", "--src", str(tmp_path / "long.mp4"), "--bgr", str(tmp_path / "bgr.png"), "-o", str(out),
                     "--model", str(models / "refine.pth"), "--output-types", "com", "pha", *FAST], out)
    wait_for_partial(process, out)
    process.terminate()  # SIGTERM: kill, timeout, a container stop
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_stale_partial_files_of_killed_runs_are_removed(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "pha").mkdir(parents=True)
    gone = dead_pid()
    stale = [out / f"pha.mp4.partial-{gone}", out / "pha" / f"a.png.partial-{gone}"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    (out / f"com.partial-{gone}").mkdir()  # an unfinished picture sequence
    alive = out / f"err.mp4.partial-{os.getppid()}"  # a running process's: left alone, reported
    alive.write_bytes(b"running")
    assert video(media, models, out) == 0
    err = capsys.readouterr().err
    assert "removed 2 unfinished file(s) left by earlier runs" in err and "belong to running processes" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(["pha", "pha.mp4", alive.name])
    assert images(media, models, out, "--continue-on-error") == 3
    assert "removed 1 unfinished file(s)" in capsys.readouterr().err
    assert not stale[1].exists()


def test_stale_replaced_folder_is_restored(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    gone = dead_pid()
    old = out / f"pha.replaced-{gone}"  # a swap cut between its two renames: the earlier output, set aside
    old.mkdir(parents=True)
    (old / "000000.png").write_bytes(b"earlier")
    assert video(media, models, out, "--output-format", "png") == 1  # restored, so it exists: --force needed
    err = capsys.readouterr().err
    assert "restored the earlier output" in err and "already exist" in err
    assert (out / "pha" / "000000.png").read_bytes() == b"earlier"


# -- 5: nonsense values ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, word", [
    (["--threads", "-3"], "--threads"), (["--crf", "999"], "--crf"), (["--encoder-threads", "-1"], "--encoder-threads"),
    (["--preset-x264", "fastest"], "--preset-x264"), (["--resize", "0x10"], "--resize")])
def test_nonsense_video_options_are_usage_errors(media, models, tmp_path, capsys, argv, word):
    with pytest.raises(SystemExit) as exit_info:
        video(media, models, tmp_path / "out", *argv)
    assert exit_info.value.code == 2
    assert f"argument {word}" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_unknown_codec_is_refused_not_replaced(media, models, tmp_path, capsys):
    assert video(media, models, tmp_path / "out", "--codec", "nosuchcodec") == 1
    one_error_line(capsys.readouterr().err, "--codec nosuchcodec", "not a video encoder", "libx264")
    assert not (tmp_path / "out").exists()
    assert video(media, models, tmp_path / "out", "--codec", "aac") == 1  # an audio encoder
    one_error_line(capsys.readouterr().err, "--codec aac")


@pytest.mark.parametrize("argv, message", [
    (["--refine-sample-pixels", "-5"], "refine_sample_pixels"), (["--refine-threshold", "5"], "refine_threshold"),
    (["--backbone-scale", "nan"], "backbone_scale"), (["--backbone-scale", "0"], "backbone_scale")])
def test_knob_values_are_checked_in_every_command(media, models, tmp_path, capsys, argv, message):
    """Refused while parsing, by the model's own rule: a usage error (2) naming the knob."""
    model = str(models / "refine.pth")
    for command in (["images", "--src", str(media / "src"), "--bgr", str(media / "bgr.png"), "-o",
                     str(tmp_path / "out"), "--model", model, *FAST],
                    ["convert", model, str(tmp_path / "x.pth")],
                    ["parity", "--reference", model, "--candidate", model, "--out", str(tmp_path / "r")]):
        with pytest.raises(SystemExit) as stop:
            main(command + list(argv))
        assert stop.value.code == 2
        one_error_line(capsys.readouterr().err, message)
    assert not any(tmp_path.iterdir())


# -- 6: truncated video ----------------------------------------------------------------------------
def test_truncated_video_is_an_error_or_with_continue_on_error_a_warning_and_status_3(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert video(media, models, out, src="cut.avi") == 1
    line = one_error_line(capsys.readouterr().err, "cut.avi", "of the 12 frames the file declares", "truncated",
                          "--continue-on-error", "Nothing was written")
    assert not out.exists() or files_under(out) == [], line
    assert video(media, models, out, "--continue-on-error", src="cut.avi") == 3
    err = capsys.readouterr().err
    assert "warning: --src" in err and "of the 12 frames the file declares" in err
    from bgmv2.scripts.media.decode import VideoReader
    reader = VideoReader(out / "pha.mp4")
    decoded = sum(1 for _ in reader)
    reader.close()
    assert 0 < decoded < 12 and f"matting the {decoded} that decode" in err
    assert video(media, models, tmp_path / "whole", src="whole.avi") == 0  # the intact file: no complaint
    assert "warning" not in capsys.readouterr().err


# -- 7: one size order, one boolean style ----------------------------------------------------------
def test_one_size_order_everywhere(media, models, tmp_path, capsys):
    assert video(media, models, tmp_path / "v", "--resize", "40x30") == 0
    from bgmv2.scripts.media.decode import VideoReader
    reader = VideoReader(tmp_path / "v" / "pha.mp4")
    assert reader.frame_size == (40, 30)  # WIDTHxHEIGHT
    reader.close()
    assert main(["inspect", str(models / "refine.pth"), "--run", "40x24"]) == 0
    assert "run:       40x24 on cpu" in capsys.readouterr().out
    from bgmv2.scripts.cli import build_parser
    parser = build_parser()
    for command in ("video", "bench", "parity", "convert", "inspect", "train"):
        sub = parser._subparsers._group_actions[0].choices[command]
        assert "sizes are WIDTHxHEIGHT, e.g. 1280x720" in " ".join(sub.format_help().split()), command
    args = parser.parse_args(["parity", "--size", "128x96"])
    from bgmv2.scripts.cmd_parity import probes_of
    probe = probes_of(args)[0]
    assert probe.src.shape[-2:] == (96, 128)  # (B, 3, H, W): 128 wide, 96 high
    args = parser.parse_args(["train", "base", "--checkpoint", "x", "--size", "128x64"])
    assert args.size == (64, 128)  # (height, width) inside, WIDTHxHEIGHT outside


def test_one_boolean_style_with_the_old_spelling_still_read(tmp_path):
    from bgmv2.scripts.arg_types import boolean_flags, legacy_booleans
    from bgmv2.scripts.cli import build_parser
    parser = build_parser()
    flags = boolean_flags(parser)
    assert "--refine-prevent-oversampling" in flags and "--progress" in flags
    for command in (["convert", "a.pth", "b.onnx"], ["images", "--src", "s", "--bgr", "b", "-o", "o"]):
        for spelling, value in ((["--refine-prevent-oversampling", "false"], False),
                                (["--refine-prevent-oversampling=true"], True),
                                (["--no-refine-prevent-oversampling"], False),
                                (["--refine-prevent-oversampling"], True), ([], None)):
            args = parser.parse_args(legacy_booleans([*command, *spelling], flags))
            assert args.refine_prevent_oversampling is value, (command, spelling)
    assert legacy_booleans(["convert", "--refine-prevent-oversampling", "a.pth", "b.onnx"], flags) == [
        "convert", "--refine-prevent-oversampling", "a.pth", "b.onnx"]


def test_convert_usage_takes_one_source_and_one_dest(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "bgmv2 convert [options] SOURCE DEST" in usage and "[SOURCE DEST ...]" not in usage
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "a.pth", "b.onnx", "c.onnx"])
    assert exit_info.value.code == 2 and "unrecognized arguments: c.onnx" in capsys.readouterr().err
    assert main(["convert", "a.pth"]) == 2
    one_error_line(capsys.readouterr().err, "SOURCE and DEST")
