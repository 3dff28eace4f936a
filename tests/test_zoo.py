"""The zoo registry, and fetch / verify against a server on 127.0.0.1: good, corrupted and interrupted
downloads, mirrors and local copies, hashes recorded on first fetch only for a file that loads strictly
as the entry's model, files that fail a check kept aside (never deleted), `weights forget`."""
import dataclasses
import hashlib
import http.server
import json
import threading

import pytest

from bgmv2 import weights
from bgmv2.converters.identify import problem
from bgmv2.scripts.cli import main
from bgmv2.weights import ZooError, load_registry, verify
from bgmv2.weights.registry import Registry


def fetch(*args, **kwargs):
    """`weights.fetch` as the commands call it: handed the check that a new file is the entry's model."""
    return weights.fetch(*args, identify_file=problem, **kwargs)

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


def registry_for(url, sha256, fmt="pth"):
    return Registry({"presets": {}, "models": [
        {"name": "test-model", "origin": "test", "backbone": "mobilenetv2", "kind": "refine", "format": fmt,
         "precision": "fp32", "file": "model.pth", "sha256": sha256, "urls": [url + "model.pth"]}]})


def shipped_bytes() -> bytes:
    """A real model file (the shipped MobileNetV2 safetensors, 10 MB): what a first fetch must get."""
    return load_registry().models[0].shipped_path.read_bytes()


def suspects(folder):
    return sorted(p.name for p in folder.glob("model.pth.suspect-*"))


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


def test_corrupted_download_is_refused_and_kept_aside(server, tmp_path):
    bad = PAYLOAD[:-1] + b"\x00"
    RangeHandler.files["model.pth"] = bad
    with pytest.raises(ZooError, match="is not the published model.pth.*This file is the suspect.*kept aside"):
        fetch("test-model", registry=registry_for(server, hashlib.sha256(PAYLOAD).hexdigest()), directory=tmp_path)
    aside = tmp_path / f"model.pth.suspect-{hashlib.sha256(bad).hexdigest()[:8]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [aside.name] and aside.read_bytes() == bad


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
    model = shipped_bytes()
    RangeHandler.files["model.pth"] = model
    registry = registry_for(server, None, fmt="safetensors")
    fetch("test-model", registry=registry, directory=tmp_path / "a")
    digest = hashlib.sha256(model).hexdigest()
    assert f"loaded strictly as a safetensors file of MattingRefine (mobilenetv2), recorded {digest}" in capsys.readouterr().err
    record = json.loads((cache / "hashes.json").read_text())["model.pth"]
    assert record["sha256"] == digest and record["source"] == server + "model.pth" and record["checked"]
    RangeHandler.files["model.pth"] = PAYLOAD  # the server now hands out something else
    with pytest.raises(ZooError, match=f"not the sha256 recorded on its first fetch \\({digest}.*kept aside.*"
                                       "This file is the suspect: it is an unrecognised file"):
        fetch("test-model", registry=registry, directory=tmp_path / "b")
    assert suspects(tmp_path / "b") and not (tmp_path / "b" / "model.pth").exists()


@pytest.mark.parametrize("content, says", [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(5000), "it is a JPEG image"),
    (b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>\n", "it is an HTML page"),
    (b"PK\x03\x04" + bytes(100), "it is a truncated or corrupt zip archive"),
])
def test_a_first_fetch_of_a_non_model_records_nothing(server, tmp_path, cache, content, says):
    """The zoo is not poisoned: a renamed picture, a mirror's error page or a truncated download is
    refused, kept aside and its hash not recorded; the real file is accepted afterwards."""
    RangeHandler.files["mirror/model.pth"] = content
    registry = registry_for(server, None, fmt="safetensors")
    with pytest.raises(ZooError, match=f"is not test-model .*: {says}.*hash was not recorded.*kept aside"):
        fetch("test-model", source=server + "mirror/", registry=registry, directory=tmp_path / "z")
    assert not (cache / "hashes.json").exists()
    assert suspects(tmp_path / "z") and sorted(p.name for p in (tmp_path / "z").iterdir()) == suspects(tmp_path / "z")
    RangeHandler.files["mirror/model.pth"] = shipped_bytes()
    assert fetch("test-model", source=server + "mirror/", registry=registry, directory=tmp_path / "z").exists()


def test_cli_refuses_a_renamed_jpeg_as_an_official_model(tmp_path, cache, capsys):
    """`bgmv2 weights fetch pytorch-resnet50 --from photo.pth`: exit 1, one message, nothing recorded."""
    photo = tmp_path / "jpeg_renamed.pth"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(5000))
    assert main(["weights", "fetch", "pytorch-resnet50", "--from", str(photo)]) == 1
    out, err = capsys.readouterr()
    assert "is not pytorch-resnet50 (a pth file of MattingRefine (resnet50)): it is a JPEG image" in err
    assert "Traceback" not in err and out == "" and not (cache / "hashes.json").exists()
    assert photo.exists() and not (cache / "pytorch-resnet50" / "pytorch_resnet50.pth").exists()


def test_a_poisoned_record_from_an_older_version_is_named_and_forgotten(tmp_path, cache, capsys):
    """A bare hash in hashes.json (older versions recorded any first download) is the suspect when a
    file that loads as the model disagrees with it; `weights forget` resets it."""
    model = shipped_bytes()
    cache.mkdir(parents=True)
    (cache / "hashes.json").write_text(json.dumps({"model.pth": "ab" * 32}))
    local = tmp_path / "model.pth"
    local.write_bytes(model)
    registry = registry_for("http://127.0.0.1:9/", None, fmt="safetensors")
    with pytest.raises(ZooError, match="The recorded hash is the suspect.*bgmv2 weights forget test-model"):
        fetch("test-model", source=str(local), registry=registry, directory=tmp_path / "c")
    assert local.read_bytes() == model and suspects(tmp_path / "c")
    from bgmv2.weights import forget
    assert forget("test-model", registry=registry)["sha256"] == "ab" * 32
    assert forget("test-model", registry=registry) is None
    assert fetch("test-model", source=str(local), registry=registry, directory=tmp_path / "c").read_bytes() == model
    assert json.loads((cache / "hashes.json").read_text())["model.pth"]["sha256"] == hashlib.sha256(model).hexdigest()


@pytest.mark.parametrize("damage, says", [
    (lambda data: data[:-1000], "This file is the suspect: it does not load.*truncated"),
    (lambda data: data[:-10] + bytes(10), "Both load as a safetensors file of MattingRefine.*cannot be told"),
], ids=["truncated", "other-weights"])
def test_a_cached_copy_that_fails_is_kept_aside_not_deleted(tmp_path, cache, damage, says):
    model = shipped_bytes()
    registry = registry_for("http://127.0.0.1:9/", None, fmt="safetensors")
    local = tmp_path / "model.pth"
    local.write_bytes(model)
    cached = fetch("test-model", source=str(local), registry=registry, directory=tmp_path / "c")
    cached.write_bytes(damage(model))  # changed in the cache afterwards
    with pytest.raises(ZooError, match=f"the cached copy .* has sha256 .*kept aside.*{says}"):
        fetch("test-model", registry=registry, directory=tmp_path / "c")
    assert not cached.exists() and len(suspects(tmp_path / "c")) == 1


def test_weights_forget_command(tmp_path, cache, capsys):
    cache.mkdir(parents=True)
    (cache / "hashes.json").write_text(json.dumps({"pytorch_resnet50.pth": "cd" * 32}))
    assert main(["weights", "info", "pytorch-resnet50"]) == 0
    assert "cd" * 32 + " (recorded from unknown, unknown; not checked" in capsys.readouterr().out
    assert main(["weights", "forget", "pytorch-resnet50"]) == 0
    assert f"forgot sha256 {'cd' * 32}" in capsys.readouterr().out
    assert json.loads((cache / "hashes.json").read_text()) == {}
    assert main(["weights", "forget", "pytorch-resnet50"]) == 0
    assert "nothing to forget" in capsys.readouterr().out
    assert main(["weights", "forget", "bgmv2-mobilenetv2-synthetic"]) == 1
    err = capsys.readouterr().err
    assert "published in the registry" in err and "Traceback" not in err


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
    assert "missing.pth: no such file or folder; give the downloaded pytorch_resnet50.pth" in capsys.readouterr().err


def test_a_damaged_shipped_file_is_reported_not_removed(monkeypatch):
    registry = load_registry()
    entry = next(m for m in registry.models if m.shipped)
    registry.models[registry.models.index(entry)] = dataclasses.replace(entry, sha256="0" * 64)
    with pytest.raises(ZooError, match="the shipped file is damaged"):
        fetch(entry.name, registry=registry)
    assert entry.shipped_path.exists()


def contract_onnx(weight: float) -> bytes:
    """A tiny ONNX graph of the matting contract (src, bgr -> pha, fgr) with one initializer."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np
    image = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Sub", ["src", "bgr"], ["d"]), helper.make_node("Mul", ["d", "w"], ["pha"]),
         helper.make_node("Identity", ["src"], ["fgr"])], "tiny",
        [helper.make_tensor_value_info("src", TensorProto.FLOAT, image),
         helper.make_tensor_value_info("bgr", TensorProto.FLOAT, image)],
        [helper.make_tensor_value_info("pha", TensorProto.FLOAT, image),
         helper.make_tensor_value_info("fgr", TensorProto.FLOAT, image)],
        [numpy_helper.from_array(np.array([weight], np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString()


def test_onnx_entries_are_checked_as_graphs_of_the_contract(tmp_path, cache):
    """Upstream's ONNX graphs name no weights (no state dict to load strictly): the first fetch checks
    the graph's contract and finite weights instead, and the record says what was checked."""
    registry = registry_for("http://127.0.0.1:9/", None, fmt="onnx")
    bad = tmp_path / "nan.onnx"
    bad.write_bytes(contract_onnx(float("nan")))
    with pytest.raises(ZooError, match="its weights hold NaN or infinity: w.*hash was not recorded"):
        fetch("test-model", source=str(bad), registry=registry, directory=tmp_path / "o")
    good = tmp_path / "good.onnx"
    good.write_bytes(contract_onnx(1.0))
    fetch("test-model", source=str(good), registry=registry, directory=tmp_path / "o")
    record = json.loads((cache / "hashes.json").read_text())["model.pth"]
    assert record["checked"].startswith("parsed and checked as an ONNX model (src, bgr -> pha, fgr")
