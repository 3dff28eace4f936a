"""A catalogue of bad inputs across every command and the apps' Python API: each is refused with a
non-zero exit status (2: usage, 1: error) and one line naming the problem, never a traceback, and
leaves nothing behind (no partial file, no output). Commands run in-process (scripts.cli.main), so the
whole catalogue takes seconds; signals are covered by subprocess tests in test_apps_robust.py."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bgmv2.scripts.cli import main

FAST = ["--threads", "1", "--no-progress", "--device", "cpu"]
NO_GPU = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def place(tmp_path_factory, models):
    """Good and bad files for the catalogue; {name} in a case is replaced by these paths."""
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.synth import synthetic_clip, write_video
    folder = tmp_path_factory.mktemp("catalogue")
    clip, bgr = synthetic_clip(6, 48, 64, seed=9)
    (folder / "src").mkdir()
    write_image(folder / "src" / "a.png", clip[0])
    write_image(folder / "pic.png", clip[0])
    write_image(folder / "bgr.png", bgr)
    write_video(folder / "clip.mp4", clip, fps=10)
    (folder / "empty").mkdir()
    (folder / "file").write_text("a file, not a folder")
    (folder / "nothing.jsonl").write_text("\n# a manifest without items\n")
    import shutil
    shutil.copyfile(models / "refine.pth", folder / "m.pth")
    (folder / "junk.png").write_bytes(b"\x89PNG but nothing else")
    (folder / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 8)
    (folder / "junk.pth").write_bytes(b"not a model" * 20)
    import av
    with av.open(str(folder / "whole.avi"), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in clip * 2:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    data = (folder / "whole.avi").read_bytes()
    (folder / "cut.avi").write_bytes(data[:int(len(data) * 0.8)])
    names = {"model": str(models / "refine.pth"), "base": str(models / "base.pth")}
    names.update({p.name.split(".")[0]: str(p) for p in folder.iterdir()})
    names.update({p.name.replace(".", "_"): str(p) for p in folder.iterdir()})  # junk_png, junk_mp4, junk_pth
    return folder, names


IMAGES = ["images", "--src", "{src}", "--bgr", "{bgr}", "-o", "{out}", "--model", "{model}", *FAST]
VIDEO = ["video", "--src", "{clip}", "--bgr", "{bgr}", "-o", "{out}", "--model", "{model}", *FAST]
DEMO = ["demo", "-o", "{out}", "--model", "{model}", "--threads", "1"]
BENCH = ["bench", "--model", "{model}", "--size", "64x48", "--frames", "2", "--rounds", "1", "--threads", "1",
         "--device", "cpu"]
CONVERT = ["convert", "{model}", "{out}/x.pth"]
PARITY = ["parity", "--reference", "{model}", "--candidate", "{model}", "--repeat", "0", "--out", "{out}"]
BATCH = ["batch", "--src", "{src}", "--bgr", "{bgr}", "-o", "{out}", "--model", "{model}", *FAST]
HAS_RAY = importlib.util.find_spec("ray") is not None
USAGE, ERROR = 2, 1

# (command line, exit status, what the one line must say: a regular expression)
CASES = [
    # images: options
    (IMAGES + ["--threads", "-3"], USAGE, "--threads.*below"),
    (IMAGES + ["--threads", "0"], USAGE, "--threads"),
    (IMAGES + ["--threads", "many"], USAGE, "not a whole number"),
    (IMAGES + ["--output-types", "xyz"], USAGE, "--output-types"),
    (IMAGES + ["--image-format", "gif"], USAGE, "--image-format"),
    (IMAGES + ["--queue-size", "0"], USAGE, "--queue-size"),
    (IMAGES + ["--precision", "fp8"], USAGE, "--precision"),
    (IMAGES + ["--backend", "nosuch"], USAGE, "--backend"),
    (IMAGES + ["--preset", "8k"], USAGE, "--preset"),
    (IMAGES + ["--refine-mode", "magic"], USAGE, "--refine-mode"),
    (IMAGES + ["--refine-kernel-size", "5"], USAGE, "--refine-kernel-size"),
    (IMAGES + ["--align-method", "surf"], USAGE, "--align-method"),
    (IMAGES + ["--backbone-scale", "half"], USAGE, "--backbone-scale"),
    (IMAGES + ["--refine-sample-pixels", "1.5"], USAGE, "--refine-sample-pixels"),
    (IMAGES + ["--refine-prevent-oversampling=maybe"], USAGE, "refine-prevent-oversampling"),
    (IMAGES + ["--skip-existing", "--force"], ERROR, "--skip-existing"),
    # images: knob values (one rule, shared with convert and parity)
    (IMAGES + ["--backbone-scale", "0.9"], USAGE, "backbone_scale"),
    (IMAGES + ["--backbone-scale", "-1"], USAGE, "backbone_scale"),
    (IMAGES + ["--backbone-scale", "0"], USAGE, "backbone_scale"),
    (IMAGES + ["--backbone-scale", "nan"], USAGE, "backbone_scale"),
    (IMAGES + ["--backbone-scale", "inf"], USAGE, "backbone_scale"),
    (IMAGES + ["--refine-sample-pixels", "-5"], USAGE, "refine_sample_pixels"),
    (IMAGES + ["--refine-sample-pixels", "0"], USAGE, "refine_sample_pixels"),
    (IMAGES + ["--refine-threshold", "5"], USAGE, "refine_threshold"),
    (IMAGES + ["--refine-threshold", "-0.1"], USAGE, "refine_threshold"),
    (IMAGES + ["--refine-threshold", "nan"], USAGE, "refine_threshold"),
    # images: inputs and outputs
    (IMAGES + ["--src", "{empty}/nowhere"], ERROR, "no such file or folder"),
    (IMAGES + ["--src", "{empty}"], ERROR, "has no images"),
    (IMAGES + ["--src", "{junk_png}"], ERROR, "junk.png: not a readable image"),
    (IMAGES + ["--bgr", "{empty}/nothing.png"], ERROR, "nothing.png: no such file"),
    (IMAGES + ["--bgr", "{junk_png}"], ERROR, "not a readable image"),
    (IMAGES + ["--bgr", "{clip}"], ERROR, "video background only works"),
    (IMAGES + ["--bgr", "{empty}"], ERROR, "has no images"),
    (IMAGES + ["-o", "{file}"], ERROR, "is a file, not a folder"),
    (IMAGES + ["-o", "{file}/below"], ERROR, "which is a file"),
    (IMAGES + ["--com-bg", "{empty}/nothing.png"], ERROR, "--com-bg.*no such file"),
    (IMAGES + ["--com-bg", "{junk_png}"], ERROR, "--com-bg.*not a readable image"),
    (IMAGES + ["--com-bg", "{clip}"], ERROR, "video background only works"),
    (IMAGES + ["--com-bg", "#12345"], ERROR, "colour '#12345': give a name"),
    (IMAGES + ["--com-bg", "300,1,1"], ERROR, "from 0 to 255"),
    (IMAGES + ["--backbone-scale", "1e-9"], ERROR, "0x0 input"),
    (IMAGES + ["-o", "{bgr}"], ERROR, "is a file, not a folder"),
    # images: models and devices
    (IMAGES + ["--model", "{empty}/missing.pth"], ERROR, "missing.pth: no such file"),
    (IMAGES + ["--model", "{junk_pth}"], ERROR, "junk.pth|junk.png"),
    (IMAGES + ["--model", "{pic}"], ERROR, "pic.png"),
    (IMAGES + ["--model", "no-such-zoo-name"], ERROR, "no-such-zoo-name"),
    (IMAGES + ["--model", "{empty}"], ERROR, "empty"),
    (IMAGES + ["--device", "tpu"], ERROR, "--device"),
    (IMAGES + ["--device", "cuda:99"], ERROR, "--device cuda:99"),
    (IMAGES + ["--backend", "tensorflow"], ERROR, "--backend tensorflow runs"),
    (IMAGES + ["--backend", "onnxruntime"], ERROR, "--backend onnxruntime runs"),
    (IMAGES + ["--model", "{base}", "--output-types", "ref"], ERROR, "has no ref output"),
    (IMAGES + ["--backbone", "resnet50"], ERROR, "resnet50|mobilenetv2"),
    (IMAGES + ["--refine-kernel-size", "1"], ERROR, "kernel"),
    # video: options
    (VIDEO + ["--codec", "nosuchcodec"], ERROR, "--codec nosuchcodec: not a video encoder"),
    (VIDEO + ["--codec", "aac"], ERROR, "--codec aac: not a video encoder"),
    (VIDEO + ["--codec", "png", "--output-types", "com"], ERROR, "png|--codec"),
    (VIDEO + ["--crf", "999"], USAGE, "--crf.*0 to 51"),
    (VIDEO + ["--crf", "-1"], USAGE, "--crf"),
    (VIDEO + ["--crf", "high"], USAGE, "--crf"),
    (VIDEO + ["--preset-x264", "bogus"], USAGE, "--preset-x264"),
    (VIDEO + ["--encoder-threads", "-1"], USAGE, "--encoder-threads"),
    (VIDEO + ["--threads", "-3"], USAGE, "--threads"),
    (VIDEO + ["--resize", "0x0"], USAGE, "--resize.*positive"),
    (VIDEO + ["--resize", "1280"], USAGE, "--resize.*WIDTHxHEIGHT"),
    (VIDEO + ["--resize", "axb"], USAGE, "--resize"),
    (VIDEO + ["--resize", "4x4x4"], USAGE, "--resize"),
    (VIDEO + ["--video-resize", "0", "10"], ERROR, "--resize 0x10"),
    (VIDEO + ["--output-format", "gif"], USAGE, "--output-format"),
    (VIDEO + ["--skip-existing", "--force"], ERROR, "--skip-existing"),
    (VIDEO + ["--refine-threshold", "5"], USAGE, "refine_threshold"),
    # video: inputs and outputs
    (VIDEO + ["--src", "{empty}/none.mp4"], ERROR, "none.mp4: no such file"),
    (VIDEO + ["--src", "{junk_mp4}"], ERROR, "junk.mp4: not a readable video"),
    (VIDEO + ["--src", "{empty}"], ERROR, "is a folder"),
    (VIDEO + ["--src", "{cut}"], ERROR, "cut.avi: only .* frame\\(s\\) of the 12 frames"),
    (VIDEO + ["--bgr", "{empty}/none.png"], ERROR, "none.png: no such file"),
    (VIDEO + ["--bgr", "{junk_png}"], ERROR, "not a readable"),
    (VIDEO + ["--bgr", "{empty}"], ERROR, "is a folder"),
    (VIDEO + ["--bgr", "{cut}"], ERROR, "cut.avi: only"),
    (VIDEO + ["--output-types", "com", "--com-bg", "{junk_png}"], ERROR, "--com-bg"),
    (VIDEO + ["-o", "{file}"], ERROR, "is a file, not a folder"),
    (VIDEO + ["-o", "{file}/x"], ERROR, "which is a file"),
    (VIDEO + ["--model", "{base}", "--output-types", "ref"], ERROR, "has no ref output"),
    (VIDEO + ["--device", "tpu"], ERROR, "--device"),
    # demo
    (DEMO + ["-o", "{file}"], ERROR, "is a file, not a folder"),
    (DEMO + ["--com-bg", "{pic}"], ERROR, "give a colour"),
    (DEMO + ["--threads", "-3"], USAGE, "--threads"),
    (DEMO + ["--precision", "fp8"], USAGE, "--precision"),
    (DEMO + ["--device", "tpu"], ERROR, "--device"),
    (DEMO + ["--backbone-scale", "2"], USAGE, "backbone_scale"),
    (DEMO + ["--model", "{junk_pth}"], ERROR, "junk"),
    # bench
    (BENCH + ["--warmup", "-1"], USAGE, "--warmup"),
    (BENCH + ["--min-ratio", "5"], USAGE, "--min-ratio.*\\(0, 1\\]"),
    (BENCH + ["--min-ratio", "0"], USAGE, "--min-ratio"),
    (BENCH + ["--min-ratio", "-0.5"], USAGE, "--min-ratio"),
    (BENCH + ["--frames", "0"], USAGE, "--frames"),
    (BENCH + ["--rounds", "0"], USAGE, "--rounds"),
    (BENCH + ["--size", "0x0"], USAGE, "--size"),
    (BENCH + ["--size", "720"], USAGE, "--size"),
    (BENCH + ["--crf", "999"], USAGE, "--crf"),
    (BENCH + ["--threads", "-3"], USAGE, "--threads"),
    (BENCH + ["--codec", "nosuchcodec"], ERROR, "--codec nosuchcodec"),
    (BENCH + ["--min-ratio", "0.5", "--no-pipeline"], ERROR, "--min-ratio"),
    (BENCH + ["--video", "{empty}/none.mp4"], ERROR, "none.mp4: no such file"),
    (BENCH + ["--refine-sample-pixels", "-5"], USAGE, "refine_sample_pixels"),
    # inspect
    (["inspect", "{empty}/missing.pth"], ERROR, "missing.pth: no such file"),
    (["inspect", "{junk_pth}"], ERROR, "junk.pth"),
    (["inspect", "{model}", "--run", "0x0"], USAGE, "--run.*positive"),
    (["inspect", "{model}", "--run", "abc"], USAGE, "--run.*WIDTHxHEIGHT"),
    (["inspect", "{model}", "--run", "10x10x10"], USAGE, "--run"),
    (["inspect", "{model}", "--run", "64x48", "--device", "nonsense"], ERROR, "--device"),
    (["inspect", "{model}", "--run", "64x48", "--device", "cuda:99"], ERROR, "--device cuda:99"),
    (["inspect"], USAGE, "file"),
    # convert
    (["convert", "{model}"], USAGE, "SOURCE and DEST"),
    (["convert", "{model}", "{out}/a.pth", "{out}/b.pth"], USAGE, "unrecognized arguments"),
    (["convert", "--info", "{model}", "{out}/b.pth"], USAGE, "--info takes one FILE"),
    (["convert", "{empty}/missing.pth", "{empty}/x.onnx"], ERROR, "missing.pth"),
    (["convert", "{junk_pth}", "{empty}/x.onnx"], ERROR, "junk.pth"),
    (["convert", "{pic}", "{empty}/x.onnx"], ERROR, "pic.png"),
    (["convert", "{model}", "{out}/x.onnx"], ERROR, "no such folder"),
    (CONVERT + ["--to", "nosuch"], USAGE, "--to"),
    (["convert", "{model}", "{model}"], ERROR, "is the source itself"),
    (CONVERT + ["--probe", "10x10"], USAGE, "--probe.*multiples of 4"),
    (CONVERT + ["--probe", "0x0"], USAGE, "--probe"),
    (CONVERT + ["--opset", "13"], USAGE, "--opset: invalid choice: 13"),
    (CONVERT + ["--precision", "fp8"], USAGE, "--precision"),
    (CONVERT + ["--backbone-scale", "2"], USAGE, "backbone_scale"),
    (CONVERT + ["--refine-sample-pixels", "-5"], USAGE, "refine_sample_pixels"),
    (CONVERT + ["--refine-threshold", "5"], USAGE, "refine_threshold"),
    (CONVERT + ["--refine-mode", "magic"], USAGE, "--refine-mode"),
    (CONVERT + ["--onnx-variant", "fast"], USAGE, "--onnx-variant"),
    # convert: a bound for every target's size and the probe; only what was asked
    (["convert", "{model}", "{out}/x.tflite", "--size", "100000x100000"], ERROR,
     "--size 100000x100000: .* cells of 4x4 pixels.* give a smaller size"),
    (["convert", "{model}", "{out}/x.onnx", "--probe", "100000x100000"], ERROR, "--probe 100000x100000: .* cells"),
    (["convert", "{model}", "{out}/x.pth", "--probe", "16384x16384"], ERROR, "--probe 16384x16384: .* cells"),
    (["convert", "{model}", "{out}/x.tflite", "--to", "onnx"], ERROR,
     "x.tflite is named as a tflite file, but onnx was asked .*name it with .onnx"),
    (["convert", "{model}", "{out}/x.onnx", "--to", "savedmodel"], ERROR, "named as a onnx file, but savedmodel"),
    (["convert", "{model}", "{out}/x.tflite", "--simplify"], ERROR, "--simplify is an option of the exporter that writes onnx \\(.onnx\\) files; a tflite file.*leave it out"),
    (["convert", "{model}", "{out}/x.xml", "--simplify"], ERROR, "--simplify is an option of the exporter that writes onnx"),
    (["convert", "{model}", "{out}/x.pth", "--onnx-variant", "nonzero"], ERROR, "--onnx-variant is an option of the exporter that writes onnx"),
    (["convert", "{model}", "{out}/x.pt2", "--onnx-from", "pytorch"], ERROR, "--onnx-from is an option of the exporter that writes onnx"),
    (["convert", "{model}", "{empty}/x.onnx", "--onnx-variant", "tensorrt", "--refine-mode", "thresholding"], ERROR,
     "--onnx-variant tensorrt has no NonZero.*thresholding.*leave --onnx-variant out"),
    (["convert", "{model}", "{empty}/x.onnx", "--onnx-variant", "static", "--refine-mode", "thresholding"], ERROR,
     "--onnx-variant static has no NonZero"),
    (["convert", "{base}", "{empty}/x.onnx", "--onnx-variant", "tensorrt"], ERROR, "a MattingBase has no refiner"),
    (["convert", "{model}", "{file}/x.onnx"], ERROR, "file is a file, not a folder"),
    (["convert", "{model}", "{file}/deeper/x.onnx"], ERROR, "file is a file, not a folder"),
    (["convert", "--info", "{empty}/missing.onnx"], ERROR, "missing.onnx"),
    # parity
    (["parity"], ERROR, "--reference"),
    (["parity", "--reference", "{model}"], ERROR, "--candidate"),
    (PARITY + ["--size", "10x10"], ERROR, "--size.*multiples of 4"),
    (PARITY + ["--size", "big"], ERROR, "--size"),
    (PARITY + ["--threads", "-3"], USAGE, "--threads"),
    (PARITY + ["--batch", "0"], USAGE, "--batch"),
    (PARITY + ["--repeat", "-1"], ERROR, "--repeat"),
    (PARITY + ["--refine-threshold", "5"], USAGE, "refine_threshold"),
    (PARITY + ["--src", "{pic}"], ERROR, "--bgr"),
    (["parity", "--reference", "{empty}/none.pth", "--candidate", "{model}", "--size", "16x16", "--out", "{out}"],
     ERROR, "none.pth"),
    (["parity", "--zoo", "x", "--reference", "{model}", "--out", "{out}"], ERROR, "--zoo"),
    (["parity", "--formats", "onnx", "--out", "{out}"], ERROR, "--zoo"),
    # weights, train, webcam, the command itself
    (["weights", "info", "no-such-entry"], ERROR, "no-such-entry"),
    (["weights", "verify", "{empty}/none.pth"], ERROR, "none.pth"),
    (["weights", "fetch", "pytorch-mobilenetv2", "--from", "{empty}/nothere", "--dir", "{out}"], ERROR,
     "--from .*nothere: no such file or folder"),
    (["weights", "fetch", "pytorch-mobilenetv2", "--from", "{empty}", "--dir", "{out}"], ERROR,
     "--from .*empty is a folder without pytorch_mobilenetv2.pth"),
    (["train", "base", "--checkpoint", "{out}/c.pth", "--size", "63x64"], USAGE, "--size.*multiples of 4"),
    (["train", "base", "--checkpoint", "{out}/c.pth", "--size", "0x0"], USAGE, "--size"),
    (["train", "base", "--checkpoint", "{out}/c.pth", "--fgr-dir", "{empty}"], USAGE, "--fgr-dir"),
    (["webcam", "--no-window", "--model", "{model}"], ERROR, "--no-window"),
    (["webcam", "--threads", "-3"], USAGE, "--threads"),
    (["webcam", "--view", "xyz"], USAGE, "--view"),
    (["webcam", "--resolution", "0x5"], USAGE, "--resolution.*positive"),
    (["webcam", "--resolution", "1", "2", "3"], USAGE, "--resolution.*WIDTHxHEIGHT"),
    (["nosuchcommand"], USAGE, "nosuchcommand"),
    (["images"], USAGE, "required"),
]
if HAS_RAY:  # batch: every option refused before Ray starts
    CASES += [
        (BATCH + ["--cpus-per-worker", "nan"], ERROR, "--cpus-per-worker nan: give a number above 0"),
        (BATCH + ["--gpus-per-worker", "inf"], ERROR, "--gpus-per-worker inf"),
        (BATCH + ["--connect-timeout", "inf"], ERROR, "--connect-timeout inf: give a number above 0"),
        (BATCH + ["--start-timeout", "-1"], ERROR, "--start-timeout -1: give a number above 0"),
        (BATCH + ["--address", ""], ERROR, "--address '' is empty"),
        (BATCH + ["--address", "local"], ERROR, "--address local: expected HOST:PORT"),
        (["batch", "--manifest", "{nothing_jsonl}", "-o", "{out}", "--model", "{model}", *FAST], ERROR,
         "nothing.jsonl: no items in it"),
    ]
if NO_GPU and HAS_RAY:
    CASES += [(BATCH + ["--device", "cuda"], ERROR, "--device cuda was asked for")]
if NO_GPU:
    CASES += [(IMAGES + ["--device", "cuda"], ERROR, "--device cuda was asked for"),
              (VIDEO + ["--device", "cuda"], ERROR, "--device cuda was asked for"),
              (["inspect", "{model}", "--run", "64x48", "--device", "cuda"], ERROR, "--device cuda")]


def fill(argv, names, out):
    return [a.replace("{out}", str(out)).format(**names) if "{" in a else a for a in argv]


def leftovers(folder: Path):
    return [p for p in folder.rglob("*") if ".partial-" in p.name or p.name.startswith(".partial")
            or ".replaced-" in p.name]


@pytest.mark.parametrize("argv, status, message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(place, tmp_path, capsys, argv, status, message):
    folder, names = place
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    out = tmp_path / "out"
    try:
        code = main(fill(argv, names, out))
    except SystemExit as exit_info:  # argparse's usage errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if re.match(r"(bgmv2[\w ]*: )?error: ", line)]
    assert len(lines) == 1, err
    assert re.search(message, lines[0]), (message, lines[0])
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))
    assert not leftovers(tmp_path) and not leftovers(folder)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # inputs untouched


def test_catalogue_is_large():
    assert len(CASES) + len(API_CASES) >= 100


def api_cases():
    from bgmv2.converters import ConversionError, convert
    from bgmv2.converters.acceptance import rule_for
    from bgmv2.pytorch_impl import load_model, matte
    from bgmv2.scripts.arg_types import parse_size
    from bgmv2.scripts.knob_options import check_knob_values
    from bgmv2.scripts.media import decode, encode, outputs
    from bgmv2.scripts.media.errors import MediaError
    return [
        (lambda p: parse_size("0x5"), ValueError, "positive"),
        (lambda p: parse_size("1280*720"), ValueError, "WIDTHxHEIGHT"),
        (lambda p: parse_size("30x30", multiple=4), ValueError, "multiples of 4"),
        (lambda p: check_knob_values({"backbone_scale": 3}), ValueError, "backbone_scale"),
        (lambda p: check_knob_values({"refine_mode": "magic"}), ValueError, "refine_mode"),
        (lambda p: check_knob_values({"refine_threshold": 2}), ValueError, "refine_threshold"),
        (lambda p: decode.VideoReader(p / "none.mp4"), MediaError, "no such file"),
        (lambda p: list(decode.VideoReader(p / "cut.avi")), MediaError, "truncated"),
        (lambda p: decode.open_background(p / "empty"), MediaError, "is a folder"),
        (lambda p: decode.read_image(p / "junk.png"), MediaError, "not a readable image"),
        (lambda p: decode.list_images(p / "empty"), MediaError, "has no images"),
        (lambda p: encode.check_codec("nosuchcodec"), MediaError, "not a video encoder"),
        (lambda p: encode.write_image(p / "file" / "x.png", np.zeros((4, 4, 3), np.uint8)), MediaError,
         "cannot write"),
        (lambda p: encode.SequenceWriter(p / "file" / "seq"), MediaError, "cannot write"),
        (lambda p: outputs.check_output_dir(p / "file"), MediaError, "is a file"),
        (lambda p: convert(p / "junk.pth", p / "never.onnx", log=None), ConversionError, "junk.pth"),
        (lambda p: convert(p / "m.pth", p / "never.onnx", probe_size=(0, 0), log=None), ConversionError,
         r"probe_size=\(0, 0\): give a \(height, width\) pair of positive"),
        (lambda p: convert(p / "m.pth", p / "never.onnx", probe_size=(288.5, 512), log=None), ConversionError,
         "probe_size"),
        (lambda p: convert(p / "m.pth", p / "never.onnx", probe_batch=0, log=None), ConversionError, "probe_batch=0"),
        (lambda p: convert(p / "m.pth", p / "never.tflite", size=(100_000, 100_000), log=None), ConversionError,
         "--size 100000x100000: .* cells"),
        (lambda p: rule_for("fp8"), ValueError, "precision 'fp8' has no acceptance rule; choose one of fp32"),
        (lambda p: matte(refine(), torch.rand(1, 4, 10, 10), torch.rand(1, 4, 10, 10)), ValueError,
         r"3 channels .*got shape \(1, 4, 10, 10\)\."),
        (lambda p: matte(refine(), torch.rand(4, 10, 10), torch.rand(4, 10, 10)), ValueError, r"got shape \(4, 10, 10\)\."),
        (lambda p: matte(refine(), torch.rand(0, 3, 8, 8), torch.rand(0, 3, 8, 8)), ValueError,
         r"src is empty \(shape \(0, 3, 8, 8\)\); give at least one picture"),
        (lambda p: matte(refine(), torch.rand(1, 3, 0, 0), torch.rand(1, 3, 0, 0)), ValueError, "src is empty"),
        (lambda p: refine()(torch.rand(0, 3, 8, 8), torch.rand(0, 3, 8, 8)), ValueError, "src is empty"),
        (lambda p: load_model(p / "m.pth", device="tpu"), ValueError, "device='tpu' is not a device PyTorch knows"),
        (lambda p: load_model(p / "m.pth", dtype="fp16"), ValueError,
         "dtype='fp16': give a floating-point torch dtype \\(torch.float16\\)"),
        (lambda p: load_model(p / "m.pth", dtype=torch.int8), ValueError, "floating-point torch dtype"),
    ] + ([(lambda p: load_model(p / "m.pth", device="cuda"), ValueError, "device='cuda' was asked for, but")]
         if NO_GPU else [])


def refine():
    from bgmv2.pytorch_impl import MattingRefine
    return MattingRefine("mobilenetv2").eval()


API_CASES = list(range(30 if NO_GPU else 29))  # (their count; built lazily so collection imports nothing heavy)


@pytest.mark.parametrize("index", API_CASES)
def test_api_bad_input_raises_its_error_type_with_one_line(place, index):
    folder, _ = place
    call, error_type, message = api_cases()[index]
    with pytest.raises(error_type) as info:
        call(folder)
    text = str(info.value)
    assert "\n" not in text.strip() and re.search(message, text), text
    assert not leftovers(folder)
