"""Fixtures of the browser tests: the shipped model's ONNX export (cached by content between runs),
the app folder `bgmv2 web` writes from it, and one headless Chromium page of the served app.

Every test here skips with `browser_runtime.available()`'s one line (what to install) where Chromium,
Playwright or the npm packages are missing; `.ci/run` installs all three."""
import hashlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
SAMPLE = ROOT / "scripts" / "media" / "sample"


def browser_missing():
    from bgmv2.converters.browser_runtime import available
    return available()


@pytest.fixture(scope="session")
def browser():
    """Skip (with what to install) where the browser runtime cannot run."""
    missing = browser_missing()
    if missing:
        pytest.skip(missing)


def export_key() -> str:
    """What the export depends on: the weights, the exporting and model code, the framework versions."""
    from importlib import metadata
    digest = hashlib.sha256(SHIPPED.read_bytes())
    browser_side = ("browser_runtime.py", "chromium.py", "web_files.py", "web_server.py")  # not the export's
    for folder in ("converters", "pytorch_impl"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name not in browser_side:
                digest.update(path.name.encode() + path.read_bytes())
    for name in ("torch", "onnx", "onnxscript"):
        digest.update(f"{name} {metadata.version(name)}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def shipped_onnx(request, tmp_path_factory) -> Path:
    """The shipped model as ONNX (fp32, static variant) by `converters.convert`: about half a minute,
    so kept in pytest's cache under a key of everything it depends on (CI starts without it)."""
    pytest.importorskip("onnx")
    from bgmv2.converters import convert
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = Path(cache.mkdir("bgmv2-browser")) if cache is not None else tmp_path_factory.mktemp("onnx")
    path = folder / f"shipped-{export_key()}.onnx"
    if not path.exists():
        for old in folder.glob("shipped-*.onnx"):
            old.unlink()
        partial = folder / f"partial-{os.getpid()}.onnx"
        convert(SHIPPED, partial, probe_size=(64, 96), log=None, overwrite=True)
        os.replace(partial, path)
    return path


@pytest.fixture(scope="session")
def app(browser, shipped_onnx, tmp_path_factory) -> Path:
    """`bgmv2 web OUT --model shipped.onnx --precision fp32 --no-check`: the app folder, as users get it."""
    from bgmv2.scripts.cli import main
    out = tmp_path_factory.mktemp("web") / "app"
    assert main(["web", str(out), "--model", str(shipped_onnx), "--precision", "fp32", "--no-check"]) == 0
    return out


@pytest.fixture(scope="session")
def site(app):
    from bgmv2.converters.web_server import serve_folder
    served = serve_folder(str(app)).start()
    yield served
    served.close()


@pytest.fixture(scope="module")
def page(site):
    """The served app in headless Chromium, the model loaded (console errors: `problems(page)`)."""
    from bgmv2.converters import chromium
    browser = chromium.shared()
    opened = browser.open(site.url)
    opened.set_viewport_size({"width": 1400, "height": 1000})
    opened.evaluate("window.bgmv2.ready")
    yield opened
    opened.close()


def problems(page):
    """Console errors, uncaught exceptions and crashes the page has shown so far."""
    from bgmv2.converters import chromium
    return list(chromium.shared().page_problems.get(page, []))
