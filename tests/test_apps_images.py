"""`bgmv2 images` on generated pictures: outputs, file types, alpha ranges, every bad-input message,
--force, and Ctrl-C leaving finished files and no partial ones."""
import os

import cv2
import numpy as np
import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine
from bgmv2.scripts.cli import main
from bgmv2.scripts.media.encode import write_image
from bgmv2.scripts.media.synth import synthetic_clip

FAST = ["--threads", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Folder of 3 pictures (odd size 45x67, one in a sub-folder, JPEG and PNG) and their background."""
    folder = tmp_path_factory.mktemp("images")
    clip, bgr = synthetic_clip(3, 45, 67, seed=4)
    (folder / "src" / "more").mkdir(parents=True)
    write_image(folder / "src" / "a.jpg", clip[0])
    write_image(folder / "src" / "b.png", clip[1])
    write_image(folder / "src" / "more" / "c.png", clip[2])
    write_image(folder / "bgr.png", bgr)
    (folder / "bgrs").mkdir()
    for name in ("1.png", "2.png", "3.png"):
        write_image(folder / "bgrs" / name, bgr)
    return folder


def images(media, models, out, *extra, model="refine.pth"):
    return main(["images", "--src", str(media / "src"), "--bgr", str(media / "bgr.png"), "--output-dir", str(out),
                 "--model", str(models / model), *FAST, *extra])


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_folder_of_pictures_all_output_types(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert images(media, models, out, "--output-types", "com", "pha", "fgr", "err", "ref") == 0
    names = ["a", "b", "more/c"]
    assert files_under(out) == sorted(f"{t}/{n}.png" for t in ("com", "pha", "fgr", "err", "ref") for n in names)
    for name in names:
        com = cv2.imread(str(out / "com" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        pha = cv2.imread(str(out / "pha" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        fgr = cv2.imread(str(out / "fgr" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        ref = cv2.imread(str(out / "ref" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert com.shape == (45, 67, 3) and pha.shape == (45, 67) and fgr.shape == (45, 67, 4)
        assert pha.dtype == np.uint8 and pha.std() > 1  # a real matte, not a constant
        assert np.array_equal(fgr[..., 3], pha)  # the foreground's alpha is the matte
        assert set(np.unique(ref)) <= {0, 255}
    assert "3 picture(s) matted" in capsys.readouterr().err


def test_upstream_aliases_and_defaults(media, models, tmp_path, capsys):
    out = tmp_path / "up"
    code = main(["images", "--images-src", str(media / "src" / "a.jpg"), "--images-bgr", str(media / "bgr.png"),
                 "--output-dir", str(out), "--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                 "--model-checkpoint", str(models / "refine.pth"), "--model-backbone-scale", "0.5",
                 "--model-refine-mode", "thresholding", "--output-types", "pha", *FAST])
    assert code == 0 and files_under(out) == ["pha/a.png"]
    err = capsys.readouterr().err
    assert "scale 0.5, thresholding threshold 0.1)" in err  # the model's default threshold, not upstream's 0.7


def test_one_background_per_picture_and_com_on_a_picture(media, models, tmp_path):
    out = tmp_path / "pairs"
    code = main(["images", "--src", str(media / "src"), "--bgr", str(media / "bgrs"), "-o", str(out),
                 "--model", str(models / "refine.pth"), "--output-types", "com", "--com-bg", str(media / "bgr.png"),
                 "--image-format", "jpg", *FAST])
    assert code == 0 and files_under(out) == ["com/a.jpg", "com/b.jpg", "com/more/c.jpg"]


def test_background_of_another_size_is_resized_with_a_warning(media, models, tmp_path, capsys):
    big = tmp_path / "big.png"
    write_image(big, cv2.resize(cv2.imread(str(media / "bgr.png")), (134, 90)))
    out = tmp_path / "out"
    code = main(["images", "--src", str(media / "src" / "a.jpg"), "--bgr", str(big), "-o", str(out),
                 "--model", str(models / "refine.pth"), *FAST])
    assert code == 0
    assert "is 134x90 but the frames are 67x45; resized to match" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("empty", "the folder has no images"),
    ("missing", "no such file or folder"),
    ("unreadable", "broken.jpg: not a readable image"),
    ("count", "--src has 3 picture\\(s\\) but --bgr has 2"),
    ("missing_bgr", "--bgr .*nothing.png: no such file"),
    ("video_com", "a video background only works with `bgmv2 video`"),
    ("ref_of_base", "has no ref output"),
    ("cuda", "--device cuda was asked for"),
    ("bad_model", "junk.pth is an unrecognised file, not a model file"),
    ("bad_backend", "is a pth file, but --backend tensorflow runs keras, savedmodel, tflite files"),
])
def test_bad_inputs_are_clear_errors(media, models, tmp_path, capsys, case, message):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    src, bgr, extra, model = str(media / "src"), str(media / "bgr.png"), [], "refine.pth"
    if case == "empty":
        (tmp_path / "empty").mkdir()
        src = str(tmp_path / "empty")
    elif case == "missing":
        src = str(tmp_path / "nowhere")
    elif case == "unreadable":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
        src = str(tmp_path / "bad")
    elif case == "count":
        (tmp_path / "two").mkdir()
        for name in ("1.png", "2.png"):
            write_image(tmp_path / "two" / name, np.zeros((45, 67, 3), np.uint8))
        bgr = str(tmp_path / "two")
    elif case == "missing_bgr":
        bgr = str(tmp_path / "nothing.png")
    elif case == "video_com":
        (tmp_path / "bg.mp4").write_bytes(b"")
        extra = ["--com-bg", str(tmp_path / "bg.mp4")]
    elif case == "ref_of_base":
        extra, model = ["--output-types", "ref"], "base.pth"
    elif case == "bad_backend":
        extra = ["--backend", "tensorflow"]
    elif case == "bad_model":
        (tmp_path / "junk.pth").write_bytes(b"junk" * 100)
        model = str(tmp_path / "junk.pth")
    args = ["images", "--src", src, "--bgr", bgr, "-o", str(tmp_path / "out"),
            "--model", str(models / model) if case != "bad_model" else model, *FAST, *extra]
    if case == "cuda":
        args[args.index("--device") + 1] = "cuda"
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") or "\nerror: " in err
    import re
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists() or not files_under(tmp_path / "out")


def test_existing_outputs_need_force(media, models, tmp_path, capsys):
    out = tmp_path / "out"
    assert images(media, models, out, "--output-types", "pha") == 0
    target = out / "pha" / "a.png"
    os.utime(target, (1, 1))
    assert images(media, models, out, "--output-types", "pha") == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err and target.stat().st_mtime == 1
    assert images(media, models, out, "--output-types", "pha", "--force") == 0
    assert target.stat().st_mtime > 1


def test_interrupted_run_keeps_finished_pictures_and_no_partial_ones(media, models, tmp_path, monkeypatch, capsys):
    from bgmv2.scripts.media import runner as runner_module
    real = runner_module.load_runner

    def interrupting(args, **kwargs):
        runner = real(args, **kwargs)
        calls = []
        original = runner.__call__

        class Interrupting:
            def __getattr__(self, name):
                return getattr(runner, name)

            def __call__(self, *a, **k):
                calls.append(1)
                if len(calls) == 3:
                    raise KeyboardInterrupt
                return original(*a, **k)
        return Interrupting()

    monkeypatch.setattr(runner_module, "load_runner", interrupting)
    out = tmp_path / "out"
    assert images(media, models, out, "--output-types", "pha", "fgr") == 130
    assert "interrupted" in capsys.readouterr().err
    written = files_under(out)
    assert not [f for f in written if "partial" in f]
    assert set(written) <= {"pha/a.png", "fgr/a.png", "pha/b.png", "fgr/b.png"}
    for name in written:  # every file left is complete
        assert cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED) is not None


def test_torchscript_and_the_converters_runners(media, models, tmp_path, capsys):
    from bgmv2.pytorch_impl import load_model, script_model
    script_model(load_model(models / "refine.pth")).save(str(tmp_path / "scripted.pt"))
    single = ["--src", str(media / "src" / "a.jpg"), "--bgr", str(media / "bgr.png"), "--output-types", "pha"]
    assert main(["images", *single, "-o", str(tmp_path / "ts"), "--model", str(tmp_path / "scripted.pt"),
                 "--refine-mode", "thresholding", *FAST]) == 0
    assert "scripted.pt: torchscript via PyTorch" in capsys.readouterr().err
    assert main(["images", *single, "-o", str(tmp_path / "conv"), "--model", str(models / "refine.pth"),
                 "--backend", "converters", *FAST]) == 0
    assert "pth via PyTorch" in capsys.readouterr().err
    assert main(["images", *single, "-o", str(tmp_path / "bf16"), "--model", str(models / "refine.pth"),
                 "--precision", "bf16", *FAST]) == 0
    assert "on cpu (bf16)" in capsys.readouterr().err  # (a random network's bf16 alpha says nothing; see docs/speed.md)
    assert cv2.imread(str(tmp_path / "bf16" / "pha" / "a.png"), cv2.IMREAD_UNCHANGED).shape == (45, 67)
    converted = cv2.imread(str(tmp_path / "conv" / "pha" / "a.png"), cv2.IMREAD_UNCHANGED)
    reference = tmp_path / "ref"
    assert main(["images", *single, "-o", str(reference), "--model", str(models / "refine.pth"), *FAST]) == 0
    assert np.abs(cv2.imread(str(reference / "pha" / "a.png"), cv2.IMREAD_UNCHANGED).astype(int)
                  - converted.astype(int)).max() <= 1


@pytest.mark.slow
def test_onnx_model_in_the_video_app(models, tmp_path):
    """Any format: an ONNX file (converted here) runs through ONNX Runtime in `bgmv2 video`."""
    pytest.importorskip("onnxruntime")
    from bgmv2 import converters
    from bgmv2.scripts.media.synth import write_video
    torch.manual_seed(0)  # default initialisation: calm enough for the conversion's strict probe check
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "plain.pth")
    onnx_file = tmp_path / "model.onnx"
    converters.convert(tmp_path / "plain.pth", onnx_file, log=None)
    clip, bgr = synthetic_clip(4, 45, 67, seed=8)
    write_video(tmp_path / "clip.mp4", clip, fps=5)
    write_image(tmp_path / "bgr.png", bgr)
    outputs = {}
    for name, model in (("onnx", onnx_file), ("torch", tmp_path / "plain.pth")):
        assert main(["video", "--src", str(tmp_path / "clip.mp4"), "--bgr", str(tmp_path / "bgr.png"),
                     "-o", str(tmp_path / name), "--model", str(model), "--output-format", "png",
                     "--output-types", "pha", "ref", *FAST]) == 0
        outputs[name] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / name / "pha").iterdir())]
    assert len(outputs["onnx"]) == 4
    for a, b in zip(outputs["onnx"], outputs["torch"]):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_outputs_never_replace_inputs(media, models, tmp_path, capsys):
    """--output-dir may be --src: its output folders are not read as pictures; an output that would
    replace an input (here the background) is refused before anything is written."""
    import shutil
    src = tmp_path / "src"
    shutil.copytree(media / "src", src)
    (src / "com").mkdir()
    shutil.copy(media / "bgr.png", src / "com" / "b.png")  # an earlier output, and this run's background
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    argv = ["images", "--src", str(src), "--output-dir", str(src), "--output-types", "com", "--model",
            str(models / "refine.pth"), "--force", *FAST]
    assert main([*argv, "--bgr", str(src / "com" / "b.png")]) == 1
    assert "would replace the input" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    assert main([*argv, "--bgr", str(media / "bgr.png")]) == 0  # com/b.png is not taken for a picture
    assert sorted(p.relative_to(src / "com").as_posix() for p in (src / "com").rglob("*.png")) == [
        "a.png", "b.png", "more/c.png"]


def test_torchscript_knobs_are_checked(media, models, tmp_path, capsys):
    from bgmv2.pytorch_impl import script_model
    path = tmp_path / "m.pt"
    script_model(MattingRefine("mobilenetv2").eval()).save(str(path))
    # Out-of-range values are refused while parsing, for every model (tests/test_bad_input_catalogue.py);
    # what only the loaded file can tell is checked against the scripted model.
    for flag, value, message in [("--refine-kernel-size", "1", "kernel size 3, not 1")]:
        assert main(["images", "--src", str(media / "src" / "a.jpg"), "--bgr", str(media / "bgr.png"), "-o",
                     str(tmp_path / "out"), "--model", str(path), flag, value, *FAST]) == 1
        assert message in capsys.readouterr().err


def test_a_background_identical_to_the_picture_is_warned_about(media, models, tmp_path, capsys):
    """src == bgr gives an all-background matte: the run says so (once), it does not pass silently."""
    out = tmp_path / "same"
    code = main(["images", "--src", str(media / "bgr.png"), "--bgr", str(media / "bgr.png"), "-o", str(out),
                 "--model", str(models / "refine.pth"), *FAST])
    err = capsys.readouterr().err
    assert code == 0 and err.count("are identical") == 1 and "matte is empty" in err, err
