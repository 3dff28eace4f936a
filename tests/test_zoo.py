"""The zoo registry, and fetch / verify against a server on 127.0.0.1: good, corrupted and interrupted
downloads, mirrors and local copies, hashes recorded on first download."""
import hashlib
import http.server
import json
import threading

import pytest

from scripts.cli import main
from weights import ZooError, fetch, load_registry, verify
from weights.registry import Registry

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` with Range support; `cut` closes the first response after that many bytes."""
    files = {}
    cut = {}
    requests = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        name = self.path.lstrip("/")
        self.requests.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404)
            return
        data = self.files[name]
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = self.cut.pop(name, None)
        self.wfile.write(body if limit is None else body[:limit])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.cut, RangeHandler.requests = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BGMV2_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def registry_for(url, sha256):
    return Registry({"presets": {}, "models": [
        {"name": "test-model", "origin": "test", "backbone": "mobilenetv2", "kind": "refine", "format": "pth",
         "precision": "fp32", "file": "model.pth", "sha256": sha256, "urls": [url + "model.pth"]}]})


def test_registry_is_consistent():
    registry = load_registry()
    names = [m.name for m in registry.models]
    assert len(names) == len(set(names))
    assert registry.presets["hd"]["backbone_scale"] == 0.25 and registry.presets["hd"]["refine_sample_pixels"] == 80000
    assert registry.presets["4k"]["backbone_scale"] == 0.125 and registry.presets["4k"]["refine_sample_pixels"] == 320000
    shipped = [m for m in registry.models if m.shipped]
    assert shipped and shipped[0] is registry.models[0]
    assert all(m.sha256 and m.shipped_path.is_file() for m in shipped)
    assert {m.backbone for m in registry.models if m.origin == "official" and m.format == "pth"} == {
        "mobilenetv2", "resnet50", "resnet101"}
    with pytest.raises(ZooError, match="Did you mean pytorch-resnet50"):
        registry.get("pytorch-resnet5")


def test_good_download_is_verified_and_kept(server, tmp_path):
    RangeHandler.files["model.pth"] = PAYLOAD
    path = fetch("test-model", registry=registry_for(server, hashlib.sha256(PAYLOAD).hexdigest()),
                 directory=tmp_path / "out")
    assert path.read_bytes() == PAYLOAD and not list((tmp_path / "out").glob("*.partial"))


def test_corrupted_download_is_refused_and_removed(server, tmp_path):
    RangeHandler.files["model.pth"] = PAYLOAD[:-1] + b"\x00"
    with pytest.raises(ZooError, match="expected .*removed"):
        fetch("test-model", registry=registry_for(server, hashlib.sha256(PAYLOAD).hexdigest()), directory=tmp_path)
    assert not list(tmp_path.glob("model.pth*"))


def test_interrupted_download_resumes(server, tmp_path):
    RangeHandler.files["model.pth"] = PAYLOAD
    RangeHandler.cut["model.pth"] = 300_000
    registry = registry_for(server, hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(ZooError, match="partial download.*resumes"):
        fetch("test-model", registry=registry, directory=tmp_path)
    assert (tmp_path / "model.pth.partial").stat().st_size == 300_000
    path = fetch("test-model", registry=registry, directory=tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert RangeHandler.requests[-1] == ("model.pth", "bytes=300000-")


def test_unknown_hash_is_recorded_then_enforced(server, tmp_path, cache, capsys):
    RangeHandler.files["model.pth"] = PAYLOAD
    registry = registry_for(server, None)
    fetch("test-model", registry=registry, directory=tmp_path / "a")
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert f"recorded {digest}" in capsys.readouterr().err
    assert json.loads((cache / "hashes.json").read_text())["model.pth"] == digest
    RangeHandler.files["model.pth"] = PAYLOAD[::-1]  # the server now hands out something else
    with pytest.raises(ZooError, match=f"expected {digest}"):
        fetch("test-model", registry=registry, directory=tmp_path / "b")


def test_mirror_and_local_copies(server, tmp_path):
    RangeHandler.files["mirror/model.pth"] = PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    registry = registry_for("http://127.0.0.1:9/unreachable/", digest)
    path = fetch("test-model", source=server + "mirror/", registry=registry, directory=tmp_path / "m")
    assert path.read_bytes() == PAYLOAD
    local = tmp_path / "downloads"
    local.mkdir()
    (local / "model.pth").write_bytes(PAYLOAD)
    path = fetch("test-model", source=str(local), registry=registry, directory=tmp_path / "l")
    assert path.read_bytes() == PAYLOAD and (local / "model.pth").exists()  # the source is left alone
    with pytest.raises(ZooError, match="Offline\\? Download it elsewhere"):
        fetch("test-model", registry=registry, directory=tmp_path / "x")


def test_verify(tmp_path):
    registry = registry_for("http://127.0.0.1:9/", hashlib.sha256(PAYLOAD).hexdigest())
    good, bad = tmp_path / "model.pth", tmp_path / "renamed.pth"
    good.write_bytes(PAYLOAD)
    bad.write_bytes(PAYLOAD[1:])
    assert verify(good, registry=registry) == "ok"
    assert verify(bad, "test-model", registry=registry) == "mismatch"
    with pytest.raises(ZooError, match="not a file the zoo knows"):
        verify(bad, registry=registry)


def test_weights_command(capsys, tmp_path):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "bgmv2-mobilenetv2-synthetic" in out and "pytorch-resnet101" in out
    assert main(["weights", "info", "onnx-mobilenetv2-4k"]) == 0
    assert "320000" in capsys.readouterr().out
    shipped = load_registry().models[0]
    assert main(["weights", "verify", str(shipped.shipped_path)]) == 0
    assert ": ok" in capsys.readouterr().out
    assert main(["weights", "fetch", "pytorch-resnet50", "--from", str(tmp_path / "missing.pth")]) == 1
    assert "could not get pytorch_resnet50.pth" in capsys.readouterr().err


def test_a_damaged_shipped_file_is_reported_not_removed(monkeypatch):
    registry = load_registry()
    entry = next(m for m in registry.models if m.shipped)
    monkeypatch.setattr(Registry, "expected_sha256", lambda self, e: "0" * 64)
    with pytest.raises(ZooError, match="the shipped file is damaged"):
        fetch(entry.name, registry=registry)
    assert entry.shipped_path.exists()
