"""`bgmv2 batch` without starting Ray: manifest and folder inputs (bad lines named), the ledger, the
output-folder lock, segment planning, an unreachable cluster address and a missing Ray."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bgmv2.scripts.batch.items import from_folders, from_manifest
from bgmv2.scripts.batch.ledger import Ledger, file_state, fingerprint
from bgmv2.scripts.batch.lock import OutputLock
from bgmv2.scripts.batch.work import plan_segments
from bgmv2.scripts.cli import main
from bgmv2.scripts.media.encode import write_image
from bgmv2.scripts.media.errors import MediaError


@pytest.fixture
def media(tmp_path):
    picture = np.zeros((8, 8, 3), np.uint8)
    for name in ("src/a.png", "src/sub/b.jpg", "src/c.mp4", "bgr/a.png", "bgr/sub/b.png", "bgr/c.jpg", "one.png"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".mp4"):
            path.write_bytes(b"not decoded while listing")
        else:
            write_image(path, picture)
    return tmp_path


def test_manifest_lines_each_checked_and_named(media):
    manifest = media / "jobs.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"src": "src/a.png", "bgr": "bgr/a.png"}),
        '{"src": "src/sub/b.jpg", "bgr": ',  # torn
        json.dumps({"src": "src/missing.png", "bgr": "bgr/a.png"}),
        json.dumps({"src": "src/c.mp4", "bgr": "bgr/c.jpg", "name": "clips/c"}),
        json.dumps(["src/a.png"]),
        "",
        "# a comment",
        json.dumps({"src": "src/sub/b.jpg", "bgr": "bgr/sub/b.png", "name": "a"}),  # name taken
        json.dumps({"src": "src/a.png", "bgr": "bgr/a.png", "name": "../escape"}),
        json.dumps({"src": "src/a.png", "bgr": "src/c.mp4", "name": "x"}),
    ]) + "\n")
    items, problems = from_manifest(manifest)
    assert [(i.name, i.kind, i.src.name) for i in items] == [("a", "image", "a.png"), ("clips/c", "video", "c.mp4")]
    found = {p.origin.rsplit(":", 1)[1]: p.message for p in problems}
    assert sorted(found, key=int) == ["2", "3", "5", "8", "9", "10"]
    assert "not valid JSON" in found["2"]
    assert "src" in found["3"] and "missing.png: no such file" in found["3"]
    assert "expected {" in found["5"]
    assert "already used by" in found["8"] and "jobs.jsonl:1" in found["8"]
    assert "relative path" in found["9"]
    assert "is a video but src" in found["10"]


def test_folders_pair_by_relative_path_or_one_background(media):
    items, problems = from_folders(media / "src", media / "bgr", media / "out")
    assert [(i.name, i.bgr.relative_to(media).as_posix()) for i in items] == [
        ("a", "bgr/a.png"), ("c", "bgr/c.jpg"), ("sub/b", "bgr/sub/b.png")]
    assert not problems
    (media / "bgr" / "a.png").unlink()
    items, problems = from_folders(media / "src", media / "bgr", media / "out")
    assert [i.name for i in items] == ["c", "sub/b"]
    assert len(problems) == 1 and "needs exactly one background" in problems[0].message
    items, problems = from_folders(media / "src", media / "one.png", media / "src" / "out")
    assert len(items) == 3 and all(i.bgr.name == "one.png" for i in items) and not problems
    with pytest.raises(MediaError, match="no such file or folder"):
        from_folders(media / "nowhere", media / "one.png", media / "out")


def test_ledger_records_done_items_and_sees_stale_ones(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"1234")
    out = tmp_path / "out"
    outputs = [out / "a" / "pha.png"]
    first = fingerprint({"src": file_state(src)}, "sha-of-model", {"refine_mode": None})
    ledger = Ledger(out)
    ledger.append("start", "a")
    assert ledger.owns("a") and not ledger.up_to_date("a", first, outputs)
    outputs[0].parent.mkdir(parents=True)
    outputs[0].write_bytes(b"png")
    ledger.append("done", "a", fingerprint=first)
    with open(ledger.path, "a") as f:
        f.write('{"event": "done", "name": "b", "fingerp')  # a kill mid-write
    again = Ledger(out)  # a later run
    assert again.up_to_date("a", first, outputs) and not again.owns("b")
    again.append("done", "c", fingerprint="x")
    assert Ledger(out).up_to_date("c", "x", [])  # the torn line did not swallow the next record
    os.utime(src, ns=(1, 1))  # the input changed: stale
    assert not again.up_to_date("a", fingerprint({"src": file_state(src)}, "sha-of-model", {"refine_mode": None}),
                                outputs)
    assert not again.up_to_date("a", fingerprint({"src": file_state(src)}, "other-model", {"refine_mode": None}),
                                outputs)
    outputs[0].unlink()
    assert not again.up_to_date("a", first, outputs)  # an output was deleted
    again.append("failed", "d", error="outputs exist that no batch wrote")
    assert not Ledger(out).owns("d")  # a failure does not make existing outputs the batch's


def test_lock_refuses_a_live_batch_and_reclaims_a_dead_one(tmp_path, capsys):
    lock = OutputLock(tmp_path)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.path.write_text(json.dumps({"pid": sleeper.pid, "host": host, "since": time.time()}))
        with pytest.raises(MediaError, match=f"another batch \\(PID {sleeper.pid} on {host}"):
            lock.acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with lock:  # its PID is gone now: the lock is stale
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == host
        with pytest.raises(MediaError, match=f"PID {os.getpid()}"):
            OutputLock(tmp_path).acquire()
    assert not lock.path.exists()
    assert f"(PID {sleeper.pid} on {host}) is gone; taken over" in capsys.readouterr().err
    lock.path.write_text(json.dumps({"pid": 1, "host": "another-host", "since": 0}))
    with pytest.raises(MediaError, match="on another-host"):
        lock.acquire()


def test_segments_cover_every_frame_and_the_last_is_open():
    assert plan_segments(None, 4) == [(0, None)]
    assert plan_segments(4, 4) == [(0, None)]
    assert plan_segments(10, 4) == [(0, 4), (4, 8), (8, None)]
    assert plan_segments(12, 4) == [(0, 4), (4, 8), (8, None)]


def test_unreachable_cluster_is_a_quick_clear_error(media, capsys):
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    code = main(["batch", "--src", str(media / "src" / "a.png"), "--bgr", str(media / "one.png"), "-o",
                 str(media / "out"), "--address", f"127.0.0.1:{port}", "--connect-timeout", "2", "--no-progress"])
    assert code == 1 and time.monotonic() - start < 60
    err = capsys.readouterr().err
    assert f"--address 127.0.0.1:{port}: cannot reach 127.0.0.1:{port}" in err and "Traceback" not in err
    assert main(["batch", "--src", str(media / "src"), "--bgr", str(media / "one.png"), "-o", str(media / "out"),
                 "--address", "no-port-here"]) == 1
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_missing_ray_says_how_to_install(media, monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["batch", "--src", str(media / "src"), "--bgr", str(media / "one.png"), "-o", str(media / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: `bgmv2 batch` needs Ray, which is not installed: pip install 'bgmv2-zoo[ray]'"


def test_option_and_input_errors_are_one_line(media, capsys):
    base = ["batch", "-o", str(media / "out"), "--no-progress"]
    for extra, message in [([], "give --manifest FILE"),
                           (["--manifest", str(media / "nope.jsonl")], "--manifest .*nope.jsonl: no such file"),
                           (["--manifest", "m", "--src", "s"], "either --manifest or --src/--bgr"),
                           (["--src", str(media / "src"), "--bgr", str(media / "one.png"), "--workers", "0"],
                            "--workers must be at least 1")]:
        assert main(base + extra) == 1
        err = capsys.readouterr().err
        import re
        assert re.search(message, err) and "Traceback" not in err, err
    assert not (media / "out").exists()


def test_ray_is_imported_only_by_the_batch_command():
    code = ("import sys; from bgmv2.scripts.cli import build_parser; build_parser()\n"
            "import bgmv2.scripts.batch.driver, bgmv2.scripts.batch.work\nprint('ray' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_an_output_folder_in_use_is_refused(media, models, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".bgmv2-batch.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        code = main(["batch", "--src", str(media / "src" / "a.png"), "--bgr", str(media / "one.png"), "-o", str(out),
                     "--model", str(models / "refine.pth"), "--no-progress"])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 1
    err = capsys.readouterr().err
    assert f"is being written by another batch (PID {sleeper.pid} on {socket.gethostname()}" in err
    assert sorted(p.name for p in out.iterdir()) == [".bgmv2-batch.lock"]  # nothing else touched
