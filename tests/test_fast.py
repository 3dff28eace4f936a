"""The `fast` backend: choice, check against eager, fallback, cache, sizes, graph capture, bad input.

Cheap candidates (copies of the eager model, a deliberately wrong one) test the selection logic in
milliseconds; one test compiles for real at a tiny size; CUDA cases are collected and skipped here.
"""
import json
import re

import numpy as np
import pytest
import torch

from bgmv2.converters import ConversionError
from bgmv2.converters.fast import fast_runner as make_fast_runner
from bgmv2.converters.fast.cache import ChoiceCache
from bgmv2.converters.fast.candidates import Candidate, cpu_bf16_unsupported, static_copy
from bgmv2.converters.fast.graphs import EmulatedGraphs, GraphedCall
from bgmv2.converters.torch_formats import torch_runner
from bgmv2.pytorch_impl import MattingBase, MattingRefine
from bgmv2.scripts.media.runner import FrameRunner

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


@pytest.fixture(scope="module")
def model():
    from conftest import realistic_weights
    torch.manual_seed(0)
    return realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=4_000)).eval()


def frames(height, width, count=3, seed=0):
    """A soft disc moving over a textured background: (frames, background) as uint8 HWC."""
    rng = np.random.default_rng(seed)
    bgr = (rng.random((height, width, 3)) * 80 + 90).astype(np.float32)
    y, x = np.mgrid[:height, :width]
    clip = []
    for t in range(count):
        d = np.hypot(y - height / 2, x - width * (0.4 + 0.1 * t)) / (0.3 * min(height, width))
        alpha = np.clip((1 - d) * 4, 0, 1)[..., None]
        clip.append((alpha * np.array([200, 60, 40]) + (1 - alpha) * bgr).astype(np.uint8))
    return clip, bgr.astype(np.uint8)


def same(model):
    return Candidate("same", "fp32", lambda: static_copy(model))


def wrong(model, after: int = 0):
    """Right for the first `after` calls, then alpha off by 0.2."""
    def build():
        copy, calls = static_copy(model), [0]

        def run(src, bgr):
            out = list(copy(src, bgr))
            calls[0] += 1
            if calls[0] > after:
                out[0] = (out[0] + 0.2).clamp(0, 1)
            return tuple(out)
        return run
    return Candidate("wrong", "fp32", build)


def broken():
    def build():
        raise RuntimeError("cannot build here")
    return Candidate("broken", "fp32", build)


def fast_runner(*args, **kwargs):
    """The fast runner with the machine taken as quiet (its choices are cached as on a quiet machine)."""
    runner = make_fast_runner(*args, **kwargs)
    runner.busy = lambda: ""
    return runner


def run_frames(runner, clip, bgr):
    """Frames through the apps' adapter: uint8 pictures in, torch outputs out."""
    frames = FrameRunner(runner)
    back = frames.prepare(bgr)
    return [frames(frames.prepare(f), back) for f in clip]


def eager(model):
    return torch_runner(model.to(memory_format=torch.channels_last), "model", "(eager)", {})


def eager_frames(model, clip, bgr):
    return run_frames(eager(model), clip, bgr)


def test_wrong_candidate_is_dropped_and_the_choice_cached(model, tmp_path):
    clip, bgr = frames(61, 93)  # odd size: padded to 64x96 and cropped back
    logs = []
    cache = ChoiceCache(tmp_path / "choices.json")
    runner = fast_runner(model, "cpu", candidates=[wrong(model), same(model), broken()], cache=cache, log=logs.append)
    runner.time = lambda src, bgr, runs: {"eager": 2.0, "same": 1.0}  # a clear win: cached
    outputs = run_frames(runner, clip, bgr)
    assert runner.chosen[(1, 3, 64, 96)] == "same"
    assert "wrong differs from eager" in logs[0] and "broken failed (RuntimeError: cannot build here)" in logs[0]
    assert len(logs) == 1 and "\n" not in logs[0]
    for got, want in zip(outputs, eager_frames(model, clip, bgr)):
        assert got["pha"].shape == (1, 1, 61, 93) and got["fgr"].shape == (1, 3, 61, 93)
        assert torch.allclose(got["pha"], want["pha"], atol=1e-5)
    entry, = json.loads((tmp_path / "choices.json").read_text()).values()
    assert entry["choice"] == runner.chosen[(1, 3, 64, 96)] and set(entry["ms"]) == {"eager", "same"}

    # second use: the cached choice, no timing
    again = fast_runner(model, "cpu", candidates=[wrong(model), same(model), broken()], cache=cache,
                        log=logs.append)
    again.time = lambda *a: pytest.fail("timed again although the choice was cached")
    run_frames(again, clip[:1], bgr)
    assert "cached choice" in logs[-1] and again.chosen == runner.chosen

    # a close call (within 10%) is not cached: timed again next time
    close = fast_runner(model, "cpu", candidates=[same(model)], cache=ChoiceCache(tmp_path / "close.json"),
                        log=logs.append, timed_calls=1)
    close.time = lambda src, bgr, runs: {"eager": 1.0, "same": 1.05}
    run_frames(close, clip[:1], bgr)
    assert "not cached" in logs[-1] and not (tmp_path / "close.json").exists()


def test_a_candidate_that_differs_on_a_later_frame_falls_back_to_eager(model, tmp_path):
    clip, bgr = frames(64, 96)
    logs = []
    runner = fast_runner(model, "cpu", candidates=[wrong(model, after=1)], cache=ChoiceCache(tmp_path / "c.json"),
                         log=logs.append, check_frames=3)
    runner.time = lambda src, bgr, runs: {"eager": 2.0, "wrong": 1.0}  # make the wrong one win the timing
    outputs = run_frames(runner, clip, bgr)
    assert "fast: wrong for 96x64" in logs[0]
    assert logs[1].startswith("warning: fast: wrong differs from eager on frame 2") and len(logs) == 2
    assert runner.chosen[(1, 3, 64, 96)] == "eager"
    for got, want in zip(outputs, eager_frames(model, clip, bgr)):  # the wrong matte is never returned
        assert torch.allclose(got["pha"], want["pha"], atol=1e-5)


def test_every_size_and_batch(model, tmp_path):
    runner = fast_runner(model, "cpu", candidates=[same(model)], cache=ChoiceCache(tmp_path / "c.json"),
                         log=lambda text: None, timed_calls=1)
    for height, width in [(33, 47), (50, 70)]:
        clip, bgr = frames(height, width, count=1)
        got, = run_frames(runner, clip, bgr)
        want, = eager_frames(model, clip, bgr)
        assert got["pha"].shape == (1, 1, height, width)
        assert torch.allclose(got["pha"], want["pha"], atol=1e-5)
    clip, bgr = frames(48, 64, count=2)
    adapter = FrameRunner(runner)
    batch = torch.cat([adapter.prepare(f) for f in clip])
    got = adapter(batch, adapter.prepare(bgr))
    assert got["pha"].shape == (2, 1, 48, 64)
    assert len(runner.chosen) == 3


def test_thresholding_and_base_models(tmp_path):
    torch.manual_seed(0)
    logs = []
    thresholding = MattingRefine("mobilenetv2", refine_mode="thresholding").eval()
    runner = fast_runner(thresholding, "cpu", cache=ChoiceCache(tmp_path / "c.json"), log=logs.append)
    clip, bgr = frames(64, 64, count=1)
    got, = run_frames(runner, clip, bgr)
    # the lean candidates take data-dependent cell counts: they were built, checked and timed
    assert "lean-fp32" in logs[0] and "failed" not in logs[0], logs
    assert got["pha"].shape == (1, 1, 64, 64)
    base = MattingBase("mobilenetv2").eval()
    runner = fast_runner(base, "cpu", candidates=[same(base)], cache=ChoiceCache(tmp_path / "c.json"), log=logs.append)
    out, = run_frames(runner, clip, bgr)
    assert runner.outputs == ("pha", "fgr", "err", "hid") and out["err"].shape == (1, 1, 64, 64)


def test_bad_input_is_a_message(tmp_path):
    from bgmv2 import converters
    model = MattingRefine("mobilenetv2").eval()
    with pytest.raises(ConversionError, match="not fp16"):
        fast_runner(model, "cpu", "fp16")
    with pytest.raises(ConversionError, match="float32 model"):
        fast_runner(MattingRefine("mobilenetv2").half(), "cpu")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x04test")
    with pytest.raises(ConversionError):
        converters.load(str(onnx), runtime="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ConversionError, match=r"device cuda(:0)? was asked for, but .*\. Use device cpu \(or auto\)"):
            fast_runner(model, "cuda")
    if cpu_bf16_unsupported():
        with pytest.raises(ConversionError, match="no native bf16"):
            fast_runner(model, "cpu", "bf16")


def test_unwritable_or_damaged_cache_only_loses_the_memory(tmp_path):
    """A damaged file is kept aside (other models' entries are not silently dropped) and said once."""
    path = tmp_path / "choices.json"
    path.write_text("{not json")
    cache = ChoiceCache(path)
    assert cache.get("k") is None
    assert len(cache.notes) == 1 and "kept aside" in cache.notes[0]
    cache.put("k", {"choice": "eager"})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert cache.get("k")["choice"] == "eager" and names[0] == "choices.json"
    assert len(names) == 2 and names[1].startswith("choices.json.corrupt-")
    assert (tmp_path / names[1]).read_text() == "{not json"
    blocked = ChoiceCache(tmp_path / "file" / "choices.json")
    (tmp_path / "file").write_text("a file where the folder should be")
    blocked.put("k", {"choice": "eager"})  # no exception
    assert blocked.get("k") is None


def test_graphed_call_captures_once_per_shape_and_returns_fresh_outputs():
    calls = []

    def fn(a, b):
        calls.append(a.shape)
        return a * 2 + b, a.sum(dim=1, keepdim=True)
    backend = EmulatedGraphs()
    graphed = GraphedCall(fn, backend, warmup=1, max_shapes=2)
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    first = graphed(x, y)
    second = graphed(x + 1, y)
    assert backend.captures == 1 and backend.replays == 2
    assert torch.equal(first[0], x * 2 + y) and torch.equal(second[0], (x + 1) * 2 + y)  # not overwritten
    graphed(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))  # a batch of two: captured anew
    graphed(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))  # third shape: the oldest is released
    assert backend.captures == 3 and len(graphed.entries) == 2
    z = torch.rand(1, 3, 8, 8)
    assert torch.equal(graphed(z, y)[0], z * 2 + y) and backend.captures == 4


@pytest.mark.slow  # Inductor compiles for 20-60 s on 2 cores, minutes when they are shared
def test_real_compile_matches_eager(tmp_path):
    """One real Inductor compile (fp32: at a tiny size bf16 rounding moves too large a share of pixels)."""
    from bgmv2.converters.fast.candidates import cpu_compiled
    from conftest import realistic_weights
    torch.manual_seed(0)
    model = realistic_weights(MattingRefine("mobilenetv2", refine_sample_pixels=2_000)).eval()
    logs = []
    runner = fast_runner(model, "cpu", candidates=[cpu_compiled(model, "fp32")],
                         cache=ChoiceCache(tmp_path / "c.json"), log=logs.append)
    clip, bgr = frames(96, 128, count=2)
    outputs = run_frames(runner, clip, bgr)
    assert "dropped" not in logs[0] and "differs" not in " ".join(logs), logs
    for got, want in zip(outputs, eager_frames(model, clip, bgr)):
        q = lambda x: torch.round(x.float().clamp(0, 1) * 255)  # noqa: E731
        assert (q(got["pha"]) - q(want["pha"])).abs().gt(2).float().mean() <= 0.005


@cuda
@pytest.mark.cuda
def test_cuda_graph_matches_eager(tmp_path):
    from conftest import realistic_weights
    torch.manual_seed(0)
    model = realistic_weights(MattingRefine("mobilenetv2")).eval()
    logs = []
    runner = fast_runner(model, "cuda", cache=ChoiceCache(tmp_path / "c.json"), log=logs.append)
    clip, bgr = frames(270, 480, count=3)
    outputs = run_frames(runner, clip, bgr)
    assert "cuda-graph" in logs[0], logs
    for got, want in zip(outputs, eager_frames(model.cuda(), clip, bgr)):
        q = lambda x: torch.round(x.float().clamp(0, 1) * 255)  # noqa: E731
        assert (q(got["pha"]) - q(want["pha"].cuda())).abs().gt(2).float().mean() <= 0.005


def test_video_frames_batched_through_the_pipeline(tmp_path):
    """Batch 3 over 7 frames (groups 3, 3, 1): every frame written, the same pictures as batch 1."""
    from bgmv2.scripts.media.composite import Renderer
    from bgmv2.scripts.media.matting import Job, Stages
    from bgmv2.scripts.media.pipeline import Pipeline
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2").eval()
    runner = FrameRunner(eager(model))
    clip, bgr = frames(40, 56, count=7)
    written = {}
    for batch in (1, 3):
        got = written[batch] = {}
        stages = Stages(runner, Renderer(["pha", "com"]),
                        lambda job, pictures, got=got: got.update({job.index: pictures}), batch=batch)
        jobs = (Job(i, f, bgr) for i, f in enumerate(clip))
        pipeline = Pipeline(stages.jobs(jobs), stages.infer, stages.consume, total=7, progress=False,
                            count=stages.count)
        assert pipeline.run() == 7
    assert sorted(written[3]) == list(range(7))
    for i in range(7):
        assert np.abs(written[3][i]["pha"].astype(int) - written[1][i]["pha"].astype(int)).max() <= 1


def test_backend_fast_from_the_command_line(tmp_path, capsys, monkeypatch):
    """The flag reaches the fast path (thresholding: only the lean candidates, nothing compiled), which says what
    it chose; an ONNX file is refused."""
    from bgmv2.scripts.cli import main
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "refine.pth")
    code = main(["demo", "-o", str(tmp_path / "out"), "--model", str(tmp_path / "refine.pth"), "--backend", "fast",
                 "--refine-mode", "thresholding", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "via fast" in err and re.search(r"^fast: (eager|lean-[\w-]+) for 640x360", err, re.M), err
    assert "lean-fp32" in err and "compile" not in err
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x04test")
    code = main(["demo", "-o", str(tmp_path / "out2"), "--model", str(tmp_path / "model.onnx"), "--backend", "fast"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "model.onnx" in err


def test_bench_measures_eager_and_fast_in_one_run(tmp_path, capsys, monkeypatch):
    """Plumbing only (thresholding: only the lean candidates, nothing compiled): both rows, the ratio line."""
    from bgmv2.scripts.cli import main
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), tmp_path / "refine.pth")
    code = main(["bench", "--model", str(tmp_path / "refine.pth"), "--backend", "fast", "--refine-mode", "thresholding",
                 "--size", "64x48", "--frames", "2", "--rounds", "2", "--threads", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    names = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and ":" in line]
    assert names == ["eager: model only (input tensors in memory)",
                     "eager: video pipeline (decode + model + composite + encode, overlapped)",
                     "fast: model only (input tensors in memory)",
                     "fast: video pipeline (decode + model + composite + encode, overlapped)"]
    assert re.search(r"^fast path ran: (eager|lean-[\w-]+) \((fp32|bf16)\)$", out, re.M), out
    assert re.search(r"^fast / eager: model only \d+\.\d\dx \(rounds [\d. ]+\), pipeline \d+\.\d\dx", out, re.M)


def test_cuda_graph_candidate_logic_on_the_cpu(model, tmp_path):
    """The CUDA candidate as built for a GPU (static copy, cast inside the graph, one capture per shape),
    with the graph emulated: same matte as eager, captured once for the size, again for a batch."""
    from bgmv2.converters.fast.candidates import cuda_graphed
    backend = EmulatedGraphs()
    candidate = cuda_graphed(model, "fp32", compiled=False, backend=backend)
    runner = fast_runner(model, "cpu", candidates=[candidate], cache=ChoiceCache(tmp_path / "c.json"),
                         log=lambda text: None, timed_calls=1)
    clip, bgr = frames(48, 64, count=3)
    runner.time = lambda src, bgr, runs: {"eager": 2.0, "cuda-graph-fp32": 1.0}
    outputs = run_frames(runner, clip, bgr)
    assert runner.chosen == {(1, 3, 48, 64): "cuda-graph-fp32"} and backend.captures == 1
    for got, want in zip(outputs, eager_frames(model, clip, bgr)):
        assert torch.allclose(got["pha"], want["pha"], atol=1e-5)
    adapter = FrameRunner(runner)
    batch = torch.cat([adapter.prepare(f) for f in clip])
    adapter(batch, adapter.prepare(bgr))
    assert backend.captures == 2


def test_choices_timed_on_a_busy_machine_are_provisional(model, tmp_path):
    """Timed under load: cached for runs beside this one (batch workers share it), timed again when quiet."""
    clip, bgr = frames(64, 96, count=1)
    cache, logs = ChoiceCache(tmp_path / "c.json"), []
    busy = fast_runner(model, "cpu", candidates=[same(model)], cache=cache, log=logs.append, timed_calls=1)
    busy.busy = lambda: "load average 9.0 on 2 cores"
    busy.time = lambda src, bgr, runs: {"eager": 2.0, "same": 1.0}
    run_frames(busy, clip, bgr)
    entry, = json.loads((tmp_path / "c.json").read_text()).values()
    assert entry["provisional"] and "busy" in logs[0]
    beside = fast_runner(model, "cpu", candidates=[same(model)], cache=cache, log=logs.append)
    beside.busy = lambda: "load average 9.0 on 2 cores"
    beside.time = lambda *a: pytest.fail("a busy run beside it takes the provisional choice")
    run_frames(beside, clip, bgr)
    quiet = fast_runner(model, "cpu", candidates=[same(model)], cache=cache, log=logs.append, timed_calls=1)
    timed = []
    quiet.time = lambda src, bgr, runs: timed.append(1) or {"eager": 2.0, "same": 1.0}
    run_frames(quiet, clip, bgr)
    entry, = json.loads((tmp_path / "c.json").read_text()).values()
    assert timed and "provisional" not in entry


def test_short_jobs_build_nothing_and_long_ones_everything_cheap_first(model, tmp_path, monkeypatch):
    from bgmv2.converters.fast import candidates as cands
    logs = []
    runner = fast_runner(model, "cpu", cache=ChoiceCache(tmp_path / "c.json"), log=logs.append, frames=1)
    run_frames(runner, *frames(48, 64, count=1))
    assert runner.chosen == {(1, 3, 48, 64): "eager"} and "does not repay building" in logs[0]
    names = lambda n: [c.name for c in cands.for_device(model, torch.device("cpu"), None, "m.pth", {}, "id", n)]  # noqa: E731
    assert not [n for n in names(None) if n.startswith(("compile", "onnx"))]  # unknown length: the cheap ones
    assert any(n.startswith("compile") for n in names(10_000)) and not [n for n in names(10_000) if "bf16" in n]


def test_a_cached_openvino_conversion_is_reused_and_a_broken_one_rebuilt(model, tmp_path):
    pytest.importorskip("openvino")
    from bgmv2.converters.fast.openvino_network import cached_conversion
    path = tmp_path / "ir" / "m.xml"
    first = cached_conversion(model, path)
    assert path.exists() and path.with_suffix(".bin").exists() and first is not None
    assert cached_conversion(model, path) is not None  # read back
    path.write_text("<not an IR")
    assert cached_conversion(model, path) is not None and path.read_text().startswith("<?xml")
