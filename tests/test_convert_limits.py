"""A bound for every convert target's frame size and probe, checked before anything heavy runs
(converters/limits.py): the refiner's exact-selection limit and the memory the run would take."""
import pytest

from bgmv2.converters import ConversionError, convert, formats, limits


def destination(tmp_path, module):
    return tmp_path / ("x" + (module.SUFFIXES[0] if module.SUFFIXES else ""))


def test_every_target_refuses_a_probe_beyond_the_memory_available(models, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 30)
    for name, module in formats.registry().items():
        with pytest.raises(ConversionError, match=r"probe_size=\(2160, 3840\): running the model at 3840x2160 takes about 7.9 GB of memory .* 1.0 GB "
                                                  "available; give a smaller size"):
            convert(models / "refine.pth", destination(tmp_path, module), name, probe_size=(2160, 3840),
                    log=None)
    with pytest.raises(ConversionError, match="--size 3840x2160: running the model at 3840x2160 takes about 7.9 GB"):
        convert(models / "refine.pth", tmp_path / "x.tflite", size=(2160, 3840), log=None)
    assert not list(tmp_path.iterdir())


def test_every_target_refuses_a_frame_beyond_the_exact_selection(models, tmp_path):
    for name, module in formats.registry().items():
        with pytest.raises(ConversionError, match="16,777,216 cells of 4x4 pixels.*exact for fewer than 16,777,216"):
            convert(models / "refine.pth", destination(tmp_path, module), name, probe_size=(16384, 16384), log=None)
    assert not list(tmp_path.iterdir())


def test_available_memory_is_known_here_and_plausible():
    free = limits.available_memory()
    assert free is None or 0 <= free < 1 << 50
