"""Parity at speed: one thread where more only contend, and the reference's runs (float64, float32,
fp16) and the built-in probes kept on disk across runs (`converters/reference_cache.py`)."""
import numpy as np
import pytest

from .conftest import SHIPPED


def test_one_thread_on_small_or_busy_machines():
    from bgmv2.parity_tests.threads import choose
    assert choose(3)[0] == 3 and "--threads" in choose(3)[1]
    assert choose(cores=2, load=0.0)[0] == 1
    assert choose(cores=16, load=13.0)[0] == 1 and "busy" in choose(cores=16, load=13.0)[1]
    assert choose(cores=16, load=1.0)[0] is None


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BGMV2_PARITY_CACHE", raising=False)
    return tmp_path / "home" / "parity" / "reference"


def test_reference_runs_are_kept_across_runs(cache_home, monkeypatch):
    from bgmv2.parity_tests.candidates import Reference
    from bgmv2.parity_tests.matrix import default_knobs
    from bgmv2.converters.probes import synthetic_probe
    probe, knobs = synthetic_probe(64, 96, 1, seed=3), default_knobs(64, 96)
    first = Reference(SHIPPED).run_as(knobs, probe, "fp64")
    assert len(list(cache_home.glob("*.npz"))) == 2  # the probe and the float64 run
    again = Reference(SHIPPED)  # a new run: nothing in memory
    monkeypatch.setattr(type(again), "model_as", lambda *args: pytest.fail("computed again instead of read"))
    second = again.run_as(knobs, probe, "fp64")
    assert all(second[k].dtype == first[k].dtype and np.array_equal(second[k], first[k]) for k in first)
    other = dict(knobs, refine_sample_pixels=knobs["refine_sample_pixels"] + 16)
    with pytest.raises(pytest.fail.Exception):  # other knobs: another entry
        again.run_as(other, probe, "fp64")


def test_the_key_follows_weights_probe_precision_and_torch(cache_home, monkeypatch):
    import torch
    from bgmv2 import converters
    from bgmv2.converters import reference_cache
    from bgmv2.converters.probes import synthetic_probe
    spec, probe = converters.read(SHIPPED), synthetic_probe(64, 96, 1, seed=3)
    knobs = {"refine_mode": "sampling"}
    base = reference_cache.key(spec, knobs, probe, "fp64", None)
    assert reference_cache.key(spec, knobs, probe, "fp32", None) != base
    assert reference_cache.key(spec, knobs, synthetic_probe(64, 96, 1, seed=4), "fp64", None) != base
    changed = converters.read(SHIPPED)
    name = next(iter(changed.state))
    changed.state[name] = changed.state[name] + 1
    assert reference_cache.key(changed, knobs, probe, "fp64", None) != base
    monkeypatch.setattr(torch, "__version__", "0.0-other")
    assert reference_cache.key(spec, knobs, probe, "fp64", None) != base


def test_damaged_entries_are_misses_and_the_cache_can_be_off(cache_home, monkeypatch):
    from bgmv2.converters import reference_cache
    outputs = {"pha": np.ones((1, 1, 4, 4))}
    assert reference_cache.cached("e", lambda: outputs)["pha"].sum() == 16
    (cache_home / "e.npz").write_bytes(b"not a zip")
    assert reference_cache.cached("e", lambda: {"pha": np.zeros(1)})["pha"].sum() == 0
    monkeypatch.setenv("BGMV2_PARITY_CACHE", "0")
    assert reference_cache.load("e") is None


def test_the_oldest_entries_go_past_the_limit(cache_home):
    import os
    from bgmv2.converters import reference_cache
    for index in range(4):
        reference_cache.store(f"e{index}", {"x": np.zeros(1000)})
        os.utime(cache_home / f"e{index}.npz", (index, index))
    reference_cache.prune(cache_home, limit=2 * (cache_home / "e0.npz").stat().st_size)
    assert sorted(p.name for p in cache_home.glob("*.npz")) == ["e2.npz", "e3.npz"]


def test_a_busy_machine_gets_one_thread_and_one_timed_run(tmp_path, monkeypatch, capsys):
    import json
    from bgmv2.parity_tests import threads
    from bgmv2.scripts.cli import main
    monkeypatch.setattr(threads, "load_average", lambda: 100.0)
    out = str(tmp_path / "report")
    code = main(["parity", "--reference", SHIPPED, "--candidate", SHIPPED, "--size", "64x64", "--out", out])
    printed = capsys.readouterr().out
    with open(f"{out}/parity.json") as f:
        report = json.load(f)
    assert code == 0 and report["cases"][0]["timing"]["repeats"] == 1, printed
    assert "threads per runtime: 1 (" in printed and "busy" in printed and "1 timed run per file" in printed
    assert "load average 100.0" in report["environment"]["threads"]
