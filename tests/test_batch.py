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
                            "--workers must be at least 1")] + [
                          (["--src", str(media / "src"), "--bgr", str(media / "one.png"), flag, value], message)
                          for flag, value, message in [
                              ("--cpus-per-worker", "nan", "--cpus-per-worker nan: give a number above 0"),
                              ("--cpus-per-worker", "inf", "--cpus-per-worker inf"),
                              ("--gpus-per-worker", "-1", "--gpus-per-worker -1: give a number at least 0"),
                              ("--connect-timeout", "inf", "--connect-timeout inf: give a number above 0"),
                              ("--start-timeout", "-1", "--start-timeout -1: give a number above 0"),
                              ("--start-timeout", "nan", "--start-timeout nan"),
                              ("--address", "", "--address '' is empty: .* or leave --address out"),
                              ("--address", "local", "--address local: expected HOST:PORT"),
                              ("--address", "http://h:1", "expected HOST:PORT")]]:
        assert main(base + extra) == 1
        err = capsys.readouterr().err
        import re
        assert re.search(message, err) and "Traceback" not in err and err.count("error:") == 1, err
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


def test_names_are_output_folders_compared_after_normalising(media):
    """`x/p3`, `x/./p3` and `x//p3/` are one output folder: the later ones are refused, nothing is lost."""
    manifest = media / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps({"src": "src/a.png", "bgr": "bgr/a.png", "name": name})
                                  for name in ("x/p3", "x/./p3", "x//p3/", "./y")) + "\n")
    items, problems = from_manifest(manifest)
    assert [i.name for i in items] == ["x/p3", "y"]
    assert len(problems) == 2 and all("already used by" in p.message and "jobs.jsonl:1" in p.message for p in problems)
    assert "'x/./p3' (output folder 'x/p3')" in problems[0].message


def test_items_carry_absolute_paths(media, monkeypatch):
    """Workers of a cluster do not share the driver's current folder: every path they get is absolute."""
    monkeypatch.chdir(media)
    (media / "jobs.jsonl").write_text(json.dumps({"src": "src/a.png", "bgr": "bgr/a.png"}) + "\n")
    for items, _ in (from_manifest("jobs.jsonl"), from_folders("src", "bgr", "out")):
        assert items and all(i.src.is_absolute() and i.bgr.is_absolute() for i in items)


def test_odd_ledger_lines_are_skipped_and_named(tmp_path, capsys):
    """Valid JSON of the wrong shape (edited by hand) is ignored with its line named; it never makes every
    rerun fail, and the records around it count."""
    out = tmp_path / "out"
    out.mkdir()
    lines = [{"event": "done", "name": "a", "fingerprint": "fa"}, {"event": "start", "name": ["p0"]}, ["a", "list"],
             {"event": 3, "name": "b"}, {"event": "done", "name": "c", "fingerprint": {"x": 1}}, "text", None,
             {"event": "done", "name": "d", "fingerprint": "fd"}]
    (out / "batch-ledger.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    ledger = Ledger(out)
    assert ledger.up_to_date("a", "fa", []) and ledger.up_to_date("d", "fd", [])
    assert not ledger.owns("c") and not ledger.owns("b")
    err = capsys.readouterr().err
    assert "6 line(s) that are not batch records ignored (line 2, 3, 4, 5, 6, ...)" in err
    ledger.append("done", "e", fingerprint="fe")
    assert Ledger(out).up_to_date("e", "fe", [])


@pytest.mark.parametrize("content", [{"pid": 10 ** 30, "host": "HOST"}, {"pid": 0, "host": "HOST"},
                                     {"pid": -1, "host": "HOST"}, {"pid": "12", "host": "HOST"},
                                     {"pid": True, "host": "HOST"}, {"pid": 12}, ["pid", 12], 7])
def test_a_lock_without_a_valid_pid_is_taken_over_with_a_warning(tmp_path, capsys, content):
    lock = OutputLock(tmp_path)
    text = json.dumps(content).replace("HOST", socket.gethostname())
    lock.path.write_text(text)
    with lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert "is not a lock a batch wrote" in capsys.readouterr().err


def test_cluster_lost_report_lists_no_worker_as_running(tmp_path):
    """At the end a worker is ok, restarted (a new PID), died or lost, never `running`."""
    from bgmv2.scripts.batch.report import Report
    report = Report(tmp_path, show=False)
    report.add("a", "image", "a.png")
    for index in range(4):
        report.worker(index, {"host": "h", "pid": 100 + index})
    report.task_done(0, "a", 1, 0.1, pid=100)
    report.task_done(1, "a", 1, 0.1, pid=555)  # Ray restarted worker 1
    report.worker_died(2)
    report.survey({0: {"pid": 100}, 1: {"pid": 555}, 2: None, 3: None})
    workers = {w["index"]: w for w in report.summary()["workers"]}
    assert [workers[i]["status"] for i in range(4)] == ["ok", "ok", "died", "died"]
    assert workers[1]["restarts"] == 1 and workers[1]["pid"] == 555
    report.worker(4, {"host": "h", "pid": 200})
    report.cluster_lost()
    assert report.summary()["workers"][-1]["status"] == "lost"


class FakeServer:
    """A local TCP server that never answers (`silent`) or answers HTTP (`http`)."""

    def __init__(self, kind: str):
        import http.server
        import threading
        if kind == "http":
            self.server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            self.port = self.server.server_port
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
        else:
            self.server = socket.socket()
            self.server.bind(("127.0.0.1", 0))
            self.server.listen(8)
            self.port = self.server.getsockname()[1]

    def close(self):
        if not isinstance(self.server, socket.socket):
            self.server.shutdown()
            self.server.server_close()
        else:
            self.server.close()


@pytest.mark.parametrize("kind, message", [("silent", "did not answer as a Ray cluster"),
                                           ("http", "answers, but not as a Ray cluster")])
def test_an_address_that_is_not_a_ray_head_is_refused_within_the_connect_timeout(media, capsys, kind, message):
    """A web server or a port that never answers: one line within --connect-timeout, before Ray or the model."""
    server = FakeServer(kind)
    try:
        start = time.monotonic()
        code = main(["batch", "--src", str(media / "src" / "a.png"), "--bgr", str(media / "one.png"), "-o",
                     str(media / "out"), "--address", f"127.0.0.1:{server.port}", "--connect-timeout", "2",
                     "--no-progress"])
        took = time.monotonic() - start
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 1 and took < 15, (took, err)
    assert err.count("error:") == 1 and message in err and "Traceback" not in err, err
    assert not (media / "out").exists()


def fake_head(token=None):
    """A gRPC server answering Ray's cluster-id question, wanting `token` when given."""
    import grpc
    from concurrent import futures
    from bgmv2.scripts.batch.gcs import METHOD

    def cluster_id(request, context):
        sent = dict(context.invocation_metadata()).get("authorization")
        if token and sent != f"Bearer {token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: Authentication token is missing")
        return b"\n\x1cid"
    handler = grpc.method_handlers_generic_handler("ray.rpc.NodeInfoGcsService", {
        "GetClusterId": grpc.unary_unary_rpc_method_handler(cluster_id, request_deserializer=lambda b: b,
                                                            response_serializer=lambda b: b)})
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    assert METHOD == "/ray.rpc.NodeInfoGcsService/GetClusterId"
    return server, f"127.0.0.1:{port}"


def test_a_head_with_token_authentication_is_joined_with_the_token_found_as_ray_finds_it(tmp_path, monkeypatch):
    pytest.importorskip("grpc")
    from bgmv2.scripts.batch.gcs import prepare_join
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    server, address = fake_head()
    try:
        assert prepare_join(address, 2) is None  # no authentication: nothing to send
    finally:
        server.stop(None)
    server, address = fake_head("s3cret")
    try:
        with pytest.raises(MediaError, match=r"uses token authentication .* no token was found here \(.*auth_token\)"):
            prepare_join(address, 2)
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("s3cret\n")  # the head's file, copied here
        assert prepare_join(address, 2) == "s3cret"
        monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")  # the environment first, as Ray reads it
        with pytest.raises(MediaError, match="refused the token from RAY_AUTH_TOKEN"):
            prepare_join(address, 2)
        monkeypatch.delenv("RAY_AUTH_TOKEN")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        with pytest.raises(MediaError, match="RAY_AUTH_MODE=disabled is set here"):
            prepare_join(address, 2)
    finally:
        server.stop(None)


def test_a_head_that_stops_answering_is_a_lost_cluster(monkeypatch):
    pytest.importorskip("grpc")
    from bgmv2.scripts.batch import gcs
    from bgmv2.scripts.batch.address import parse
    server, address = fake_head()
    assert gcs.alive(address, 1)
    server.stop(None)
    assert not gcs.alive(address, 1)
    assert parse(address)[0] == "gcs"
    cluster = pytest.importorskip("bgmv2.scripts.batch.cluster")
    monkeypatch.setattr(cluster, "HEAD_LOST", 1.0)
    watch = cluster.HeadWatch(address, 1.0)
    start = time.monotonic()
    with pytest.raises(gcs.ClusterLost, match="has not answered for"):
        watch.check(confirm=True)
    assert time.monotonic() - start < 10
