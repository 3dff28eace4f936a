"""One rule for the knobs: the same bad value gets the same message from the PyTorch model, a scripted
model, the Keras mirror's rule, converters and the command lines; nothing is written for a bad value."""
import importlib.util
import re
from pathlib import Path

import pytest
import torch

from bgmv2.converters import ConversionError
from bgmv2 import knobs
from bgmv2.pytorch_impl import MattingRefine, load_model, script_model
from bgmv2.scripts.cli import main

ROOT = Path(__file__).resolve().parents[1]

# (knob, bad value, what the message must say)
BAD = [
    ("backbone_scale", 0.75, r"backbone_scale must be in \(0, 1/2\]; got 0.75\. .*0.25 for HD"),
    ("backbone_scale", 0, r"backbone_scale must be in \(0, 1/2\]; got 0\.0\."),
    ("backbone_scale", float("nan"), r"backbone_scale must be in \(0, 1/2\]; got nan\."),
    ("refine_sample_pixels", -5, r"refine_sample_pixels must be a whole number of at least 16 \(one 4x4 cell\); got -5\."),
    ("refine_sample_pixels", 15, r"refine_sample_pixels must be a whole number of at least 16 .*; got 15\."),
    ("refine_sample_pixels", 1600.5, r"refine_sample_pixels must be a whole number .*; got 1600\.5\."),
    ("refine_sample_pixels", True, r"refine_sample_pixels must be a whole number .*; got True\."),
    ("refine_threshold", 5, r"refine_threshold must be in \[0, 1\] or -1; got 5\.0\. .*-1 refines every cell"),
    ("refine_threshold", -0.5, r"refine_threshold must be in \[0, 1\] or -1; got -0\.5\."),
    ("refine_threshold", "high", r"refine_threshold must be in \[0, 1\] or -1; got 'high'\."),
    ("refine_mode", "fast", r"refine_mode='fast' is not supported; choose one of 'full', 'sampling', 'thresholding'"),
    ("refine_kernel_size", 5, r"refine_kernel_size=5 is not supported; choose one of 1, 3"),
    ("refine_patch_crop_method", "crop", r"refine_patch_crop_method='crop' is not supported; choose one of 'unfold'"),
    ("refine_patch_replace_method", "swap", r"refine_patch_replace_method='swap' is not supported"),
    ("refine_prevent_oversampling", "maybe", r"refine_prevent_oversampling must be true or false; got 'maybe'\."),
]
GOOD = [("backbone_scale", "0.125", 0.125), ("refine_sample_pixels", 1600.0, 1600), ("refine_sample_pixels", "16", 16),
        ("refine_threshold", -1, -1.0), ("refine_threshold", 1, 1.0), ("refine_threshold", "0", 0.0),
        ("refine_prevent_oversampling", "false", False), ("refine_kernel_size", "1", 1), ("refine_mode", "full", "full")]
IDS = [f"{name}={value!r}" for name, value, _ in BAD]


def message(check, *args):
    with pytest.raises(ValueError) as caught:
        check(*args)
    return str(caught.value)


@pytest.mark.parametrize("name, value, says", BAD, ids=IDS)
def test_the_rule_gives_its_message(name, value, says):
    text = message(knobs.check_knob, name, value)
    assert re.search(says, text), text


def test_one_knob_table_read_without_torch():
    """bgmv2.knobs is the one rule for both models; importing it imports no framework."""
    import subprocess
    import sys
    code = "import sys, bgmv2.knobs; print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("name, value, expected", GOOD)
def test_valid_values_are_converted_to_the_knobs_type(name, value, expected):
    got = knobs.check_knob(name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name, value, says", BAD, ids=IDS)
def test_model_constructor_and_converters_say_the_same(name, value, says):
    expected = message(knobs.check_knob, name, value)
    with pytest.raises(ValueError) as caught:
        MattingRefine("mobilenetv2", **{name: value})
    assert str(caught.value) == expected
    if name in ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold",
                "refine_prevent_oversampling"):  # the knobs a file may carry
        from bgmv2.converters.api import check_knobs
        with pytest.raises(ConversionError) as caught:
            check_knobs({name: value})
        assert str(caught.value) == expected


def test_knobs_set_later_and_on_scripted_models_are_checked():
    model = MattingRefine("mobilenetv2").eval()
    with pytest.raises(ValueError, match=r"refine_threshold must be in \[0, 1\] or -1; got 5\.0"):
        model.refiner.threshold = 5
    with pytest.raises(ValueError, match="refine_sample_pixels must be a whole number of at least 16"):
        model.refiner.sample_pixels = -5
    with pytest.raises(ValueError, match=r"backbone_scale must be in \(0, 1/2\]; got 0.75"):
        model.backbone_scale = 0.75
    assert (model.refiner.threshold, model.refiner.sample_pixels, model.backbone_scale) == (0.1, 80_000, 0.25)
    scripted = script_model(model)
    src = torch.rand(1, 3, 32, 32)
    for knob, value, says in [("refine_threshold", 5.0, r"refine_threshold must be in \[0, 1\] or -1; got 5"),
                              ("refine_sample_pixels", -5, "refine_sample_pixels must be a whole number of at least 16"),
                              ("refine_mode", "fast", "refine_mode='fast' is not supported")]:
        saved = getattr(scripted, knob)
        setattr(scripted, knob, value)
        with pytest.raises(Exception, match=says):
            scripted(src, src)
        setattr(scripted, knob, saved)
    scripted(src, src)


def test_load_model_refuses_bad_knobs(tmp_path):
    from bgmv2.pytorch_impl import save_state_dict
    path = tmp_path / "m.safetensors"
    save_state_dict(MattingRefine("mobilenetv2"), path)
    with pytest.raises(ValueError, match=r"refine_sample_pixels must be a whole number of at least 16 \(one 4x4 cell\); got -5"):
        load_model(path, refine_sample_pixels=-5)
    with pytest.raises(ValueError, match=r"refine_threshold must be in \[0, 1\] or -1; got 5\.0"):
        load_model(path, refine_threshold=5)


def test_a_file_whose_metadata_records_a_bad_knob_is_refused(tmp_path):
    """refine_threshold=5 never reaches a file through convert; one made otherwise is refused on read."""
    from safetensors.torch import save_file
    from bgmv2.converters import read
    state = {k: v.contiguous() for k, v in MattingRefine("mobilenetv2").state_dict().items()}
    path = tmp_path / "bad_meta.safetensors"
    save_file(state, str(path), metadata={"bgmv2.refine_threshold": "5", "bgmv2.model": "MattingRefine"})
    with pytest.raises(ConversionError, match=r"metadata records a knob the model refuses: refine_threshold must be "
                                              r"in \[0, 1\] or -1; got 5\.0"):
        read(path)


@pytest.mark.parametrize("argv, says", [
    (["convert", "a.pth", "b.onnx", "--refine-threshold", "5"], r"argument --refine-threshold: refine_threshold must be "
                                                                r"in \[0, 1\] or -1; got 5\.0"),
    (["convert", "a.pth", "b.onnx", "--refine-sample-pixels", "-5"], "refine_sample_pixels must be a whole number"),
    (["parity", "--reference", "a.pth", "--candidate", "b.onnx", "--backbone-scale", "0.75"],
     r"backbone_scale must be in \(0, 1/2\]; got 0.75"),
    (["images", "--src", "s", "--bgr", "b", "-o", "o", "--refine-threshold", "5"], r"got 5\.0"),
    (["video", "--src", "s", "--bgr", "b", "-o", "o", "--refine-sample-pixels", "-5"], "at least 16 .*got -5"),
    (["images", "--src", "s", "--bgr", "b", "-o", "o", "--refine-mode", "fast"], "refine_mode='fast' is not supported"),
    (["images", "--src", "s", "--bgr", "b", "-o", "o", "--refine-kernel-size", "5"], "refine_kernel_size=5 is not "),
])
def test_command_line_flags_use_the_rule(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and re.search(says, err) and "Traceback" not in err


def test_convert_refuses_a_bad_threshold_and_writes_nothing(tmp_path):
    from bgmv2.converters import convert
    from bgmv2.pytorch_impl import save_state_dict
    save_state_dict(MattingRefine("mobilenetv2"), tmp_path / "m.pth")
    with pytest.raises(ConversionError, match=r"refine_threshold must be in \[0, 1\] or -1; got 5\.0"):
        convert(tmp_path / "m.pth", tmp_path / "m.safetensors", knobs={"refine_threshold": 5}, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]
    assert knobs.check_knobs({"refine_threshold": None, "backbone_scale": "0.5"}) == {"backbone_scale": 0.5}
