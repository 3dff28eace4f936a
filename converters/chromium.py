"""Headless Chromium driven from Python: the system browser (Debian's `chromium`, or $BGMV2_CHROMIUM)
through Playwright's Python package, which downloads no browser of its own here.

Flags: no sandbox (root in CI), and nothing that reaches the network (no background networking,
component updates, sync, QUIC, first-run pages); each launch gets a new empty profile folder
(Playwright's own temporary --user-data-dir). WASM pages run with --disable-gpu; WebGPU pages with
--enable-unsafe-webgpu instead (Linux Chromium offers WebGPU only so; without a GPU its adapter is
SwiftShader, a software renderer on the CPU, and the runtime says so).

Playwright's sync API belongs to the thread that started it: one Playwright per thread, one browser per
(thread, kind), shared by the runners of that thread, closed when the process ends.
"""
import atexit
import os
import shutil
import threading
from typing import Dict, List, Optional, Tuple

from .errors import ConversionError, first_line

QUIET = ("--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio")
WASM_FLAGS = ("--disable-gpu",)
WEBGPU_FLAGS = ("--enable-unsafe-webgpu",)
INSTALL_CHROMIUM = "apt-get install chromium (Debian/Ubuntu), or set BGMV2_CHROMIUM to a Chromium or Chrome binary"
INSTALL_DRIVER = "pip install 'bgmv2-zoo[web]' (the playwright package; it drives the system Chromium, no browser download)"


def executable() -> Optional[str]:
    """The Chromium binary: $BGMV2_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    named = os.environ.get("BGMV2_CHROMIUM")
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def problems() -> List[str]:
    """What is missing to start Chromium from Python, one phrase each naming the install."""
    found = []
    if executable() is None:
        where = f"BGMV2_CHROMIUM={os.environ['BGMV2_CHROMIUM']} is not an executable file; " if os.environ.get(
            "BGMV2_CHROMIUM") else ""
        found.append(f"Chromium is not installed ({where}{INSTALL_CHROMIUM})")
    import importlib.util
    if importlib.util.find_spec("playwright") is None:
        found.append(f"the Python driver is not installed ({INSTALL_DRIVER})")
    return found


def flags(webgpu: bool) -> List[str]:
    extra = os.environ.get("BGMV2_CHROMIUM_FLAGS", "").split()
    return [*QUIET, *(WEBGPU_FLAGS if webgpu else WASM_FLAGS), *extra]


class Chromium:
    """One headless Chromium (`webgpu`: with WebGPU instead of --disable-gpu); `open(url)` gives a page
    whose console errors, uncaught exceptions and crashes are collected in `page_problems[page]`."""

    def __init__(self, webgpu: bool = False):
        missing = problems()
        if missing:
            raise ConversionError("the browser runtime cannot start: " + "; ".join(missing) + ".")
        self.path = executable()
        self.webgpu = webgpu
        self.thread = threading.get_ident()
        try:
            self.browser = driver().chromium.launch(executable_path=self.path, headless=True, args=flags(webgpu),
                                                    timeout=60_000)
        except Exception as error:  # noqa: BLE001
            raise ConversionError(f"{self.path} did not start headless ({first_line(error, 300)}); check that it runs: "
                                  f"`{self.path} --headless --no-sandbox --version`.") from None
        self.version = self.browser.version
        self.name = "Chrome" if "chrome" in os.path.basename(self.path).lower() else "Chromium"
        self.page_problems: Dict[object, List[str]] = {}

    @property
    def describe(self) -> str:
        return f"{self.name} {self.version}"

    def open(self, url: str):
        page = self.browser.new_page()
        found = self.page_problems.setdefault(page, [])
        page.on("console", lambda message: found.append(f"console {message.type}: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: found.append(f"uncaught: {error}"))
        page.on("crash", lambda _: found.append("the tab crashed (out of memory?)"))
        page.set_default_timeout(120_000)
        page.goto(url, wait_until="load")
        return page

    def close(self) -> None:
        self.browser.close()


_browsers: Dict[Tuple[int, bool], Chromium] = {}
_drivers: Dict[int, object] = {}
_lock = threading.Lock()


def driver():
    """This thread's Playwright (one per thread: a second sync_playwright() in a thread refuses to start)."""
    thread = threading.get_ident()
    with _lock:
        found = _drivers.get(thread)
    if found is None:
        from playwright.sync_api import sync_playwright
        try:
            found = sync_playwright().start()
        except Exception as error:  # noqa: BLE001 - e.g. inside a running asyncio loop (Jupyter)
            raise ConversionError(f"Playwright could not start ({first_line(error)}); its sync API cannot run inside "
                                  "a running asyncio loop (Jupyter): use a script or another thread.") from None
        with _lock:
            _drivers[thread] = found
    return found


def shared(webgpu: bool = False) -> Chromium:
    """This thread's browser of that kind, started on first use."""
    key = (threading.get_ident(), bool(webgpu))
    with _lock:
        browser = _browsers.get(key)
    if browser is None or not browser.browser.is_connected():
        browser = Chromium(webgpu)
        with _lock:
            _browsers[key] = browser
    return browser


@atexit.register
def close_all() -> None:
    """Close this thread's browsers and stop its Playwright (at exit: the main thread's)."""
    here = threading.get_ident()
    with _lock:
        browsers = [b for key, b in _browsers.items() if key[0] == here]
        for key in [key for key in _browsers if key[0] == here]:
            del _browsers[key]
        playwright = _drivers.pop(here, None)
    for browser in browsers:
        try:
            browser.close()
        except Exception:  # noqa: BLE001 - leaving anyway; Playwright ends its browsers with its driver
            pass
    if playwright is not None:
        try:
            playwright.stop()
        except Exception:  # noqa: BLE001
            pass
