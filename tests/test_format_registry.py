"""The format registry: every format is one module with the same face, listed once; a new format is
one new module plus one line in the table, and every entry point (detect, read, load, info, convert,
guess_format, FORMATS) then knows it."""
import importlib
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bgmv2 import converters
from bgmv2.converters import ConversionError, formats
from bgmv2.converters.api import convert, info, load, read

FACE = formats.FACE


def test_every_registered_module_has_the_whole_face():
    assert converters.NAMES == ("pth", "safetensors", "torchscript", "pt2", "onnx", "keras", "savedmodel", "tflite",
                                "openvino")
    for name, module in formats.registry().items():
        assert module.NAME == name
        assert all(hasattr(module, attribute) for attribute in FACE), name
        assert module.LAYOUT in ("NCHW", "NHWC") and set(module.PRECISIONS) <= set(formats.PRECISIONS)
        assert converters.FORMATS[name] == (module.DESCRIPTION, module.LAYOUT, module.SIDE)


def test_the_api_dispatches_without_naming_formats():
    """No branch on a format name left in the entry points: they ask the table."""
    import inspect
    from bgmv2.converters import api, detection
    for function in (api.read, api.load, api.info, api.convert, api.write, detection.detect):
        source = inspect.getsource(function)
        for name in formats.registry():
            assert f'"{name}"' not in source and f"'{name}'" not in source, (function.__name__, name)


def test_names_suggest_formats():
    assert formats.guess_format("m.weights.h5") == "keras" and formats.guess_format("m.h5") == "keras"
    assert formats.guess_format("a/b/M.ONNX") == "onnx" and formats.guess_format("m.pt") == "torchscript"
    assert formats.guess_format("exported_savedmodel") == "savedmodel" and formats.guess_format("m.xyz") is None


def test_a_module_without_the_face_is_refused_by_name():
    broken = types.ModuleType("converters.broken_format")
    broken.NAME = "broken"
    with pytest.raises(TypeError, match="broken_format lacks DESCRIPTION.*detect"):
        formats.check_face(broken)
    with pytest.raises(ConversionError, match="unknown format 'coreml'; choose one of pth, safetensors"):
        formats.get("coreml")


TOY = '''"""`npz`: a toy format for the registry test: the state dict in a numpy .npz, run in PyTorch."""
import numpy as np

NAME = "npz"
DESCRIPTION = "numpy npz state dict (test)"
LAYOUT = "NCHW"
SIDE = "numpy"
SUFFIXES = (".npz",)
PRECISIONS = ("fp32",)
RUNTIMES = ("torch",)
KNOBS_AT_LOAD = True


def detect(path, kind):
    with open(path, "rb") as f:
        return f.read(2) == b"PK" and path.endswith(".npz")


def read(path):
    from bgmv2.converters.meta import ModelSpec
    from bgmv2.converters.torch_formats import spec_from_torch_state, torch_state
    with np.load(path, allow_pickle=False) as data:
        return spec_from_torch_state(torch_state(dict(data)), path, {"format": NAME}, {})


def prepare(job):
    return {"toy": "yes"}


SIDECARS = []  # suffixes of companion files, set by a test


def companions(path):
    return [path + suffix for suffix in SIDECARS]


def write(spec, path, metadata, job):
    with open(path, "wb") as f:
        np.savez(f, **spec.state)
    for extra in companions(path):
        with open(extra, "w") as f:
            f.write("sidecar")


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    from bgmv2.converters.torch_formats import spec_runner
    return spec_runner(read(path), NAME, path, knobs, device, precision)


def info(path):
    return {"format": NAME}
'''


@pytest.fixture
def toy_format(tmp_path, monkeypatch):
    """`converters/npz_format.py` plus its line in FORMAT_MODULES (a package beside, not in the tree)."""
    (tmp_path / "toy_formats").mkdir()
    (tmp_path / "toy_formats" / "__init__.py").write_text("")
    (tmp_path / "toy_formats" / "npz_format.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(formats, "FORMAT_MODULES", formats.FORMAT_MODULES + ("toy_formats.npz_format",))
    saved, saved_runtimes = dict(formats.REGISTRY), dict(formats.RUNTIME_REGISTRY)
    formats.REGISTRY.clear()
    formats.RUNTIME_REGISTRY.clear()
    yield
    formats.REGISTRY.clear()
    formats.REGISTRY.update(saved)
    formats.RUNTIME_REGISTRY.clear()
    formats.RUNTIME_REGISTRY.update(saved_runtimes)
    sys.modules.pop("toy_formats.npz_format", None)
    sys.modules.pop("toy_formats", None)
    importlib.invalidate_caches()


def test_one_file_and_one_line_add_a_format(toy_format, tmp_path):
    import torch
    from conftest import realistic_weights, torch_probe
    from bgmv2.pytorch_impl import MattingRefine, save_state_dict
    model = realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=16 * 50), seed=2)
    save_state_dict(model, tmp_path / "m.pth")
    assert "npz" in formats.FORMATS and formats.guess_format("x.npz") == "npz"
    result = convert(tmp_path / "m.pth", tmp_path / "m.npz", probe_size=(32, 48), log=None)
    assert result.format == "npz" and result.metadata["toy"] == "yes" and all(c.ok for c in result.comparisons)
    from bgmv2.converters.detection import detect
    assert detect(tmp_path / "m.npz") == "npz" and info(tmp_path / "m.npz")["format"] == "npz"
    assert np.array_equal(read(tmp_path / "m.npz").state["refiner.conv1.weight"],
                          model.state_dict()["refiner.conv1.weight"].numpy())
    src, bgr = torch_probe(1, 32, 48, seed=3)
    with torch.no_grad():
        expected = model(src, bgr)[0].numpy()
    assert np.array_equal(load(tmp_path / "m.npz", knobs={"refine_sample_pixels": 16 * 50})(src, bgr)["pha"], expected)
    with pytest.raises(ConversionError, match="npz files are written in fp32 only"):
        convert(tmp_path / "m.pth", tmp_path / "h.npz", precision="fp16", log=None)


# -- the deployment targets are registry formats like the others -----------------------------------
def test_tflite_and_openvino_are_listed_once_and_detected_by_content(tmp_path):
    from bgmv2.converters import detect
    from bgmv2.converters import openvino_format, tflite_format
    for path, module in (("bgmv2.converters.tflite_format", tflite_format), ("bgmv2.converters.openvino_format", openvino_format)):
        assert formats.FORMAT_MODULES.count(path) == 1 and formats.registry()[module.NAME] is module
    assert formats.guess_format("m.tflite") == "tflite" and formats.guess_format("M.XML") == "openvino"
    flatbuffer = tmp_path / "model.bin"  # no telling suffix: the content decides
    flatbuffer.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    ir = tmp_path / "model.txt"
    ir.write_text('<?xml version="1.0"?>\n<net name="bgmv2" version="11">\n<layers/>\n</net>\n')
    page = tmp_path / "model.xml"  # an XML name, but not an IR
    page.write_text('<?xml version="1.0"?>\n<html><body>404</body></html>\n')
    assert detect(flatbuffer) == "tflite" and detect(ir) == "openvino"
    with pytest.raises(ConversionError, match="not a model file bgmv2 converts"):
        detect(page)
    assert formats.size_formats() == ("tflite",) and {"openvino", "fast"} <= set(formats.runtimes())
    assert openvino_format.companions(str(tmp_path / "m.xml")) == [str(tmp_path / "m.bin")]


def test_companion_files_move_with_the_file_for_any_format(toy_format, tmp_path, monkeypatch):
    """`companions(path)` in the face: written under the temporary name, renamed with the file, an
    existing one refused without --overwrite, nothing left when validation fails."""
    from conftest import realistic_weights
    from bgmv2.pytorch_impl import MattingRefine, save_state_dict
    save_state_dict(realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=16 * 50), seed=2),
                    tmp_path / "m.pth")
    monkeypatch.setattr(formats.get("npz"), "SIDECARS", [".side"])
    out = tmp_path / "out"
    out.mkdir()
    convert(tmp_path / "m.pth", out / "m.npz", probe_size=(32, 48), log=None)
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "m.npz.side"]
    (out / "m.npz").unlink()
    with pytest.raises(ConversionError, match=r"m\.npz\.side exists \(it is written with .*--overwrite"):
        convert(tmp_path / "m.pth", out / "m.npz", probe_size=(32, 48), log=None)
    convert(tmp_path / "m.pth", out / "m.npz", probe_size=(32, 48), log=None, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "m.npz.side"]

    def broken(runner):
        raise RuntimeError("validation blew up")

    with pytest.raises(ConversionError, match="validation blew up"):
        convert(tmp_path / "m.pth", out / "n.npz", probe_size=(32, 48), log=None, validate_with=broken)
    assert sorted(p.name for p in out.iterdir()) == ["m.npz", "m.npz.side"]  # no partial file, no sidecar


def test_a_fixed_size_is_refused_by_formats_without_it_and_read_as_width_by_height(toy_format, tmp_path):
    from bgmv2.converters.api import frame_size
    assert frame_size("1280x720") == (720, 1280) == frame_size((720, 1280)) and frame_size(None) is None
    for bad in ("1280*720", "0x720", (720,), "wide"):
        with pytest.raises(ConversionError, match="WIDTHxHEIGHT"):
            frame_size(bad)
    (tmp_path / "m.pth").write_bytes(b"never read")
    with pytest.raises(ConversionError, match="a fixed size .--size. is for tflite files; npz files take any size"):
        convert(tmp_path / "m.pth", tmp_path / "m.npz", size="96x64", log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth", "toy_formats"]


def test_other_runtimes_come_from_the_registry(toy_format, tmp_path):
    """`load(path, runtime=NAME)` goes to NAME's `load_other`; a format without one is refused by name."""
    (tmp_path / "m.npz").write_bytes(b"never read")
    with pytest.raises(ConversionError, match="runtime npz is not a runtime here; choose one of torch, onnxruntime"):
        load(tmp_path / "m.npz", "npz", runtime="npz")
    calls = []
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(formats.get("npz"), "load_other", lambda path, fmt, knobs, **options: calls.append(
        (path, fmt, knobs, options)) or "runner", raising=False)
    monkeypatch.setattr(formats.get("npz"), "RUNS_OTHER", ("onnx",), raising=False)
    formats.RUNTIME_REGISTRY.clear()  # the table is read again: npz now runs ONNX files
    try:
        assert load(tmp_path / "m.npz", "onnx", runtime="npz", threads=2) == "runner"
    finally:
        monkeypatch.undo()
        formats.RUNTIME_REGISTRY.clear()
    assert calls == [(str(tmp_path / "m.npz"), "onnx", {}, {"device": "cpu", "precision": None, "threads": 2})]


def test_convert_flags_come_from_the_registry(toy_format):
    import argparse
    from bgmv2.scripts import cmd_convert
    parser = argparse.ArgumentParser()
    cmd_convert.add_arguments(parser)
    args = parser.parse_args(["a.pth", "b", "--to", "npz", "--size", "1280x720"])
    assert args.to == "npz" and args.size == (1280, 720)  # WIDTHxHEIGHT, as every command
    text = parser.format_help()
    assert "tflite only" in text and "fp16: pth, safetensors, torchscript, pt2, onnx, openvino" in " ".join(text.split())
    with pytest.raises(SystemExit):
        parser.parse_args(["a.pth", "b", "--size", "1280x721"])


def test_a_new_format_is_converted_run_by_the_apps_checked_by_parity_and_offered_to_fast(toy_format, tmp_path, capsys):
    """One module and one registry line, no other edit: `convert` writes and checks it, `bgmv2 images`
    mattes with it (its own runtime and the fast one), `bgmv2 parity` passes it, and a planted bug in
    it fails."""
    import json
    from conftest import realistic_weights
    from bgmv2.pytorch_impl import MattingRefine, save_state_dict
    from bgmv2.scripts.cli import main
    model = realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=16 * 50), seed=2)
    save_state_dict(model, tmp_path / "m.pth")
    assert main(["convert", str(tmp_path / "m.pth"), str(tmp_path / "m.npz")]) == 0
    sample = Path(__file__).resolve().parents[1] / "scripts" / "media" / "sample"
    for extra in ([], ["--backend", "fast"]):
        out = tmp_path / f"out{len(extra)}"
        code = main(["images", "--src", str(sample / "src.jpg"), "--bgr", str(sample / "bgr.jpg"), "-o", str(out),
                     "--model", str(tmp_path / "m.npz"), "--device", "cpu", "--no-progress", *extra])
        assert code == 0 and (out / "pha" / "src.png").exists()
    err = capsys.readouterr().err
    assert "npz via PyTorch" in err and "npz via fast" in err and re.search(r"^fast: (eager|lean-[\w-]+) for", err, re.M)
    report = tmp_path / "parity"
    code = main(["parity", "--reference", str(tmp_path / "m.pth"), "--candidate", str(tmp_path / "m.npz"),
                 "--candidate", f"fast:{tmp_path / 'm.npz'}", "--out", str(report), "--repeat", "0"])
    cases = json.loads((report / "parity.json").read_text())["cases"]
    assert code == 0 and [c["ok"] for c in cases] == [True, True], cases
    assert cases[0]["format"] == "npz" and cases[1]["run_as"] == "fast"
    with np.load(tmp_path / "m.npz") as data:
        state = dict(data)
    state["decoder.conv1.weight"] = state["decoder.conv1.weight"] * 1.05  # a planted bug
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **state)
    code = main(["parity", "--reference", str(tmp_path / "m.pth"), "--candidate", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "parity-bad"), "--repeat", "0"])
    assert code == 1
