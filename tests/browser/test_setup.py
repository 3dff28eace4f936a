"""What the browser part needs, said in one line where it is missing (no browser needed for these):
Chromium, Playwright's driver, onnxruntime-web at the version package.json pins; and the pins agree."""
import json
import re
from pathlib import Path

import pytest

from .conftest import ROOT, SHIPPED
from .test_runtime import unrunnable


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("BGMV2_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("BGMV2_NODE_MODULES", str(tmp_path / "node_modules"))


def test_missing_pieces_are_one_line_naming_the_install(nothing_installed, tmp_path, capsys):
    pytest.importorskip("onnx")
    from bgmv2 import converters
    from bgmv2.converters.browser_runtime import available
    from bgmv2.scripts.cli import main
    missing = available()
    assert "\n" not in missing and "apt-get install chromium" in missing and "npm ci" in missing
    model = unrunnable(tmp_path / "m.onnx")
    with pytest.raises(converters.ConversionError) as error:
        converters.load(model, runtime="browser")
    assert str(error.value) == missing + "."
    code = main(["parity", "--reference", str(SHIPPED), "--candidate", f"browser:{model}", "--size", "64x64",
                 "--repeat", "0", "--out", str(tmp_path / "report")])
    captured = capsys.readouterr()
    assert code == 1 and f"ERROR m.onnx [browser]: {missing}" in captured.out and "Traceback" not in captured.err
    assert main(["web", str(tmp_path / "app"), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime-web is not installed (npm package): run `npm ci`") and err.count("\n") == 1
    assert not (tmp_path / "app").exists()


def test_a_device_the_runtime_does_not_have_is_refused(tmp_path):
    pytest.importorskip("onnx")
    from bgmv2 import converters
    with pytest.raises(converters.ConversionError, match="choose wasm .* or webgpu"):
        converters.load(unrunnable(tmp_path / "m.onnx"), runtime="browser", device="cuda")
    with pytest.raises(converters.ConversionError, match="is a safetensors file, but runtime browser runs onnx files"):
        converters.load(SHIPPED, runtime="browser")


def test_the_pins_agree_and_ci_installs_them():
    from bgmv2.converters import web_files
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["dependencies"] == {"onnxruntime-web": web_files.ORT_WEB_VERSION}
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == web_files.ORT_WEB_VERSION
    assert not any("resolved" in entry for entry in lock["packages"].values())  # no download addresses
    assert "node_modules/" in (ROOT / ".gitignore").read_text().split()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"apt-get install -y .*chromium", ci) and "npm ci" in ci
