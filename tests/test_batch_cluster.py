"""`bgmv2 batch --address` against a real Ray cluster started as docs/batch.md shows (`ray start --head
--port PORT`, here on 127.0.0.1 with a small footprint), token authentication on: the head's token is in
its HOME's .ray/auth_token (a HOME of the test's own, shared by the batch as on the head's machine).
Default tier: one join that writes what `bgmv2 images` writes. Slow: the head killed mid-run gives one
line, a summary and a ledger that a rerun against a new head resumes from.

The head is stopped by killing its process group (never `ray stop`, which stops every Ray on the machine).
"""
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bgmv2.scripts.cli import main

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # `ray`, whether or not its script is on PATH
FAST = ["--threads", "1", "--device", "cpu", "--no-progress"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))
    return env


@contextlib.contextmanager
def ray_head(home: Path, port: int):
    """`ray start --head --port PORT` (plus flags that keep it small and off other clusters' ports)."""
    from bgmv2.scripts.batch import gcs
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    log = open(Path(temp) / "head.log", "w")
    command = RAY + ["start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
                     "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
                     "--dashboard-agent-listen-port", str(free_port()), "--object-store-memory", str(100 << 20),
                     "--temp-dir", temp, "--block"]
    process = subprocess.Popen(command, env=clean_env(home), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not gcs.alive(f"127.0.0.1:{port}", 1):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Ray head did not start:\n" + (Path(temp) / "head.log").read_text()[-3000:])
            time.sleep(0.5)
        yield process
    finally:
        stop_head(process)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def stop_head(process) -> None:
    for sig, wait in ((signal.SIGTERM, 1), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def home(tmp_path):
    """The head machine's HOME: its Ray token in .ray/auth_token (as `ray` keeps it)."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    return home


def batch_process(home, out, manifest, model, port, *extra, wait=True):
    command = [sys.executable, "-m", "bgmv2.scripts.cli", "batch", "--manifest", str(manifest), "-o", str(out),
               "--model", str(model), "--address", f"127.0.0.1:{port}", *FAST, *extra]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=clean_env(home), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=REPO, env=clean_env(home), capture_output=True, text=True, timeout=300)


def test_batch_joins_a_cluster_started_as_the_docs_show(home, models, tmp_path, capsys):
    """Token authentication on (the head refuses a question without the token), no RAY_AUTH_MODE set for
    the batch: it joins, and its picture equals `bgmv2 images`' byte for byte."""
    from bgmv2.scripts.batch import gcs
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.synth import synthetic_clip
    pictures, bgr = synthetic_clip(1, 64, 96, seed=3)
    write_image(tmp_path / "p.png", pictures[0])
    write_image(tmp_path / "b.png", bgr)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"src": "p.png", "bgr": "b.png"}) + "\n")  # relative: the workers are elsewhere
    port = free_port()
    with ray_head(home, port):
        assert gcs.ask(f"127.0.0.1:{port}", 5)[0] == gcs.NO_TOKEN  # token authentication is on
        result = batch_process(home, tmp_path / "out", manifest, models / "refine.pth", port, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "1 done" in result.stderr
    assert main(["images", "--src", str(tmp_path / "p.png"), "--bgr", str(tmp_path / "b.png"), "-o",
                 str(tmp_path / "images"), "--model", str(models / "refine.pth"), *FAST]) == 0
    for kind in ("com", "pha", "fgr"):
        assert np.array_equal(cv2.imread(str(tmp_path / "out" / "p" / f"{kind}.png"), cv2.IMREAD_UNCHANGED),
                              cv2.imread(str(tmp_path / "images" / kind / "p.png"), cv2.IMREAD_UNCHANGED))


@pytest.mark.slow
def test_head_killed_mid_run_is_one_line_a_summary_and_a_ledger_to_resume_from(home, models, tmp_path):
    from test_batch_ray import make_media
    media = make_media(tmp_path / "media", clips=4, frames=(30,))
    for name in ("broken.mp4", "pics/bad.png"):
        (media / "src" / name).unlink()
    manifest = media / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({"src": f"src/c{i}.mp4", "bgr": f"bgr/c{i}.png"}) + "\n" for i in range(4)))
    out, port = tmp_path / "out", free_port()
    ledger = out / "batch-ledger.jsonl"
    with ray_head(home, port) as head:
        process = batch_process(home, out, manifest, models / "refine.pth", port, "--workers", "2",
                                "--segment-frames", "10", wait=False)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if ledger.exists() and '"done"' in ledger.read_text():
                break
            time.sleep(0.2)
        assert process.poll() is None, "the batch ended before the head could be killed"
        stop_head(head)
        started = time.monotonic()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and time.monotonic() - started < 60, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: the Ray cluster's head") and "rerun the same command" in lines[-1], err
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in err, err
    summary = json.loads((out / "batch-summary.json").read_text())
    statuses = {item["name"]: item["status"] for item in summary["items"]}
    assert set(statuses.values()) <= {"done", "not done"} and "not done" in statuses.values()
    assert {w["status"] for w in summary["workers"]} == {"lost"}
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert {r["name"] for r in records if r["event"] == "stopped"} == {n for n, s in statuses.items() if s == "not done"}
    assert not (out / ".bgmv2-batch.lock").exists() and not (out / ".bgmv2-batch").exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    with ray_head(home, port):  # the cluster is back: a rerun makes only what was not done
        result = batch_process(home, out, manifest, models / "refine.pth", port, "--workers", "2",
                               "--segment-frames", "10")
    assert result.returncode == 0, result.stderr
    again = {item["name"]: item["status"] for item in json.loads((out / "batch-summary.json").read_text())["items"]}
    assert {n for n, s in again.items() if s == "up to date"} == {n for n, s in statuses.items() if s == "done"}
    assert {n for n, s in again.items() if s == "done"} == {n for n, s in statuses.items() if s == "not done"}


@pytest.mark.slow
def test_head_killed_while_the_batch_joins_is_one_line_and_a_summary(home, models, tmp_path):
    """`ray.init` alone would retry for minutes: the batch asks the head while it joins."""
    from test_batch_ray import make_media
    media = make_media(tmp_path / "media", clips=1, frames=(8,))
    manifest = media / "jobs.jsonl"
    manifest.write_text(json.dumps({"src": "src/c0.mp4", "bgr": "bgr/c0.png"}) + "\n")
    out, port = tmp_path / "out", free_port()
    with ray_head(home, port) as head:
        process = batch_process(home, out, manifest, models / "refine.pth", port, wait=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and not (out / "batch-ledger.jsonl").exists():
            time.sleep(0.05)  # the ledger's first records come just before the join
        stop_head(head)
        started = time.monotonic()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and time.monotonic() - started < 60, err
    assert err.strip().splitlines()[-1].startswith("error: the Ray cluster's head"), err
    assert json.loads((out / "batch-summary.json").read_text())["counts"]["not done"] == 1
    assert not (out / ".bgmv2-batch.lock").exists()
