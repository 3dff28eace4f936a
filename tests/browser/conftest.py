"""Fixtures of the browser tests: the shipped model's ONNX export (the session's one, tests/exported_files.py),
the app folder `bgmv2 web` writes from it, and one headless Chromium page of the served app.

Every test here skips with `browser_runtime.available()`'s one line (what to install) where Chromium,
Playwright or the npm packages are missing; `.ci/run` installs all three."""
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
