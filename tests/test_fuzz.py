"""Fuzzing detection and loading: 1,200 mutated and truncated .pth, .safetensors, TorchScript and ONNX byte
strings (and a malicious pickle) raise nothing but `ConversionError` with a message, never hang (a
per-case alarm) and never run pickled code (a marker file the payload would create stays absent)."""
import signal

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bgmv2.converters import ConversionError  # noqa: E402
from bgmv2.converters.api import load, read  # noqa: E402
from bgmv2.converters.detection import detect  # noqa: E402
from test_detect import Payload, tiny_files, tiny_onnx_bytes  # noqa: E402

EXAMPLES = 1200
SECONDS_PER_CASE = 20  # a hang, not a slow case: typical cases take milliseconds


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    marker = folder / "pickled-code-ran"
    files = tiny_files(folder)
    evil = folder / "evil.pth"
    torch.save({"weight": Payload(str(marker))}, evil)
    seeds = {fmt: files[fmt].read_bytes() for fmt in ("pth", "safetensors", "torchscript")}
    seeds["evil"] = evil.read_bytes()
    try:
        seeds["onnx"] = tiny_onnx_bytes()
    except pytest.skip.Exception:
        pass  # onnx not installed: fuzz the other formats
    return seeds, marker


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang(f"detection or loading took more than {SECONDS_PER_CASE} s")


def mutations():
    flips = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=8)
    span = st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=64))
    return st.tuples(flips, st.one_of(st.none(), st.integers(min_value=0)), st.one_of(st.none(), span),
                     st.binary(max_size=16))


def mutate(data: bytes, mutation) -> bytes:
    flips, cut, removed, inserted = mutation
    data = bytearray(data)
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    if removed and data:
        start = removed[0] % len(data)
        del data[start:start + removed[1]]
    if inserted and data:
        at = (flips[0][0] if flips else len(data) // 2) % len(data)
        data[at:at] = inserted
    if cut is not None and data:
        data = data[:cut % (len(data) + 1)]
    return bytes(data)


def test_mutated_files_raise_only_conversion_errors(seeds, tmp_path_factory):
    sources, marker = seeds
    kinds = sorted(sources)
    folder = tmp_path_factory.mktemp("fuzz")
    seen = {"cases": 0, "errors": 0, "accepted": 0, **{kind: 0 for kind in kinds}}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(kinds), mutation=mutations())
    def check(kind, mutation):
        data = mutate(sources[kind], mutation)
        seen[kind] += 1
        path = folder / f"case-{kind}"
        path.write_bytes(data)
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(SECONDS_PER_CASE)
        try:
            for step in ("read", "load"):
                try:
                    fmt = detect(path)
                    (read if step == "read" else load)(path, fmt)
                    seen["accepted"] += 1  # only the tiny ONNX graph loads (it is a valid runner)
                except ConversionError as error:
                    assert str(error).strip(), "an error without a message"
                    seen["errors"] += 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        seen["cases"] += 1
        assert not marker.exists(), "pickled code was executed"

    check()
    assert seen["cases"] >= 1000 and all(seen[kind] >= 100 for kind in kinds), seen
    assert not marker.exists()
    print(f"fuzz: {seen}")
