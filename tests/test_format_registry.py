"""The format registry: every format is one module with the same face, listed once; a new format is
one new module plus one line in the table, and every entry point (detect, read, load, info, convert,
guess_format, FORMATS) then knows it."""
import importlib
import sys
import types

import numpy as np
import pytest

import converters
from converters import ConversionError, formats
from converters.api import convert, info, load, read

FACE = formats.FACE


def test_every_registered_module_has_the_whole_face():
    assert converters.NAMES == ("pth", "safetensors", "torchscript", "pt2", "onnx", "keras", "savedmodel")
    for name, module in formats.registry().items():
        assert module.NAME == name
        assert all(hasattr(module, attribute) for attribute in FACE), name
        assert module.LAYOUT in ("NCHW", "NHWC") and set(module.PRECISIONS) <= set(formats.PRECISIONS)
        assert converters.FORMATS[name] == (module.DESCRIPTION, module.LAYOUT, module.SIDE)


def test_the_api_dispatches_without_naming_formats():
    """No branch on a format name left in the entry points: they ask the table."""
    import inspect
    from converters import api, detection
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
    with pytest.raises(ConversionError, match="unknown format 'tflite'; choose one of pth, safetensors"):
        formats.get("tflite")


TOY = '''"""`npz`: a toy format for the registry test: the state dict in a numpy .npz, run in PyTorch."""
import numpy as np

NAME = "npz"
DESCRIPTION = "numpy npz state dict (test)"
LAYOUT = "NCHW"
SIDE = "numpy"
SUFFIXES = (".npz",)
PRECISIONS = ("fp32",)
KNOBS_AT_LOAD = True


def detect(path, kind):
    with open(path, "rb") as f:
        return f.read(2) == b"PK" and path.endswith(".npz")


def read(path):
    from converters.meta import ModelSpec
    from converters.torch_formats import spec_from_torch_state, torch_state
    with np.load(path, allow_pickle=False) as data:
        return spec_from_torch_state(torch_state(dict(data)), path, {"format": NAME}, {})


def prepare(job):
    return {"toy": "yes"}


def write(spec, path, metadata, job):
    with open(path, "wb") as f:
        np.savez(f, **spec.state)


def load(path, knobs=None, **options):
    from converters.torch_formats import eager_runner, torch_model
    spec = read(path)
    return eager_runner(torch_model(spec, {**spec.knob_values(), **(knobs or {})}), NAME, path, {}, "fp32")


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
    saved = dict(formats.REGISTRY)
    formats.REGISTRY.clear()
    yield
    formats.REGISTRY.clear()
    formats.REGISTRY.update(saved)
    sys.modules.pop("toy_formats.npz_format", None)
    sys.modules.pop("toy_formats", None)
    importlib.invalidate_caches()


def test_one_file_and_one_line_add_a_format(toy_format, tmp_path):
    import torch
    from conftest import realistic_weights, torch_probe
    from pytorch_impl import MattingRefine, save_state_dict
    model = realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=16 * 50), seed=2)
    save_state_dict(model, tmp_path / "m.pth")
    assert "npz" in formats.FORMATS and formats.guess_format("x.npz") == "npz"
    result = convert(tmp_path / "m.pth", tmp_path / "m.npz", probe_size=(32, 48), log=None)
    assert result.format == "npz" and result.metadata["toy"] == "yes" and all(c.ok for c in result.comparisons)
    from converters.detection import detect
    assert detect(tmp_path / "m.npz") == "npz" and info(tmp_path / "m.npz")["format"] == "npz"
    assert np.array_equal(read(tmp_path / "m.npz").state["refiner.conv1.weight"],
                          model.state_dict()["refiner.conv1.weight"].numpy())
    src, bgr = torch_probe(1, 32, 48, seed=3)
    with torch.no_grad():
        expected = model(src, bgr)[0].numpy()
    assert np.array_equal(load(tmp_path / "m.npz", knobs={"refine_sample_pixels": 16 * 50})(src, bgr)["pha"], expected)
    with pytest.raises(ConversionError, match="npz files are written in fp32 only"):
        convert(tmp_path / "m.pth", tmp_path / "h.npz", precision="fp16", log=None)
