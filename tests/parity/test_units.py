"""Small pieces of the parity engine: timing records, sizes a fixed-k file needs, round thresholds."""
import numpy as np

from bgmv2.parity_tests.diagnosis import round_value
from bgmv2.parity_tests.inferred import size_with_cells
from bgmv2.converters.probes import Probe


def probe(height=8, width=8, batch=2):
    x = np.zeros((batch, 3, height, width), np.float32)
    return Probe("tiny", x, x)


def test_timing_is_warmed_up_median_and_flags_a_busy_machine(monkeypatch):
    from bgmv2.parity_tests import engine
    calls = []
    monkeypatch.setattr(engine, "load_average", lambda: 100.0 * (engine.os.cpu_count() or 1))
    timing = engine.timing_of(lambda src, bgr: calls.append(1), probe(), repeat=3)
    assert len(calls) == 4 and timing["warmup"] == 1 and timing["repeats"] == 3  # one warm-up call, 3 timed
    assert timing["indicative"] and "load average" in timing["why_indicative"]
    assert timing["min_ms"] <= timing["ms_per_frame"] <= timing["max_ms"]
    monkeypatch.setattr(engine, "load_average", lambda: 0.0)
    monkeypatch.setattr(engine, "SPREAD_LIMIT", float("inf"))
    assert not engine.timing_of(lambda src, bgr: None, probe(), repeat=2)["indicative"]
    assert engine.timing_of(lambda src, bgr: None, probe(), repeat=0) is None


def test_size_with_cells():
    assert size_with_cells(192, 256, 3000) == (192, 256)  # 3,072 cells already
    h, w = size_with_cells(192, 256, 5000)  # upstream's k = 5,000
    assert (h // 4) * (w // 4) >= 5000 and h % 16 == 0 and w % 16 == 0 and (h, w) == (256, 336)


def test_round_value_picks_the_threshold_a_person_typed():
    assert round_value(0.0431, 0.0512) == 0.05
    assert round_value(0.0999, 0.1003) == 0.1
    assert round_value(0.2, 0.2) == 0.2


def test_timing_note_summarises_busy_runs():
    from bgmv2.parity_tests.engine import CaseResult, Report
    from bgmv2.parity_tests.report import timing_note
    busy = [{"indicative": True, "load_average": load, "cores": 2, "min_ms": 10.0, "max_ms": 30.0}
            for load in (11.1, 13.7)]
    cases = [CaseResult("a", "a", timing=busy[0]), CaseResult("b", "b", timing=busy[1]), CaseResult("c", "c")]
    note = timing_note(Report({}, [], "cpu", {}, cases=cases))
    assert note.startswith("* ms/frame only indicative for 2 case(s): load average 11.1-13.7 on 2 cores")
    assert "3.0x apart" in note
    assert timing_note(Report({}, [], "cpu", {}, cases=[cases[2]])) is None
