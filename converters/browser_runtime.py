"""The `browser` runtime: an ONNX file run by onnxruntime-web inside headless Chromium, driven from Python.

    runner = converters.load("m.onnx", runtime="browser")                   # WASM, SIMD, all threads
    runner = converters.load("m.onnx", runtime="browser", threads=1)        # WASM, one thread
    runner = converters.load("m.onnx", runtime="browser", device="webgpu")  # WebGPU where offered
    runner(src, bgr)["pha"]; runner.engine  # 'Chromium 156.0..., onnxruntime-web 1.30.0, wasm SIMD, 2 threads'

The runner opens the app's own page (`converters/web/`, the code `bgmv2 web` ships) on a local server
(`web_server.Site`, 127.0.0.1, cross-origin isolated so WASM threads work) with the model under
/model/, and calls its `window.bgmv2.runBlobs`: inputs and outputs travel as raw bytes through the
server (a 1280x720 frame is 11 MB of float32), never as base64 or JSON. What the browser refuses
(an operator it lacks, a model too large for the backend) is a ConversionError carrying the
browser's own message, which `bgmv2 parity` shows as an ERROR row.
"""
import os
import threading
import urllib.parse
import uuid
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .errors import ConversionError, first_line
from .runner import Runner

NAME = "browser"
DESCRIPTION = "onnxruntime-web in headless Chromium (WASM with SIMD and threads, or WebGPU), driven from Python"
RUNS = ("onnx",)
DEVICES = ("wasm", "webgpu")
DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
          "uint8": np.uint8, "bool": np.uint8}


def available() -> Optional[str]:
    """None when the runtime can run here, else one line naming what to install."""
    from . import chromium, web_files
    missing = chromium.problems()
    npm = web_files.ort_problem()
    if npm:
        missing.append(npm)
    if not missing:
        return None
    return "the browser runtime needs: " + "; ".join(missing)


def page_error(error: Exception) -> str:
    """The page's own message from a Playwright error ('Error: MatteError: ...' and a JS stack)."""
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    for prefix in ("Page.evaluate: ", "Error: ", "MatteError: ", "Error: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line


_site = {}


def shared_site():
    """The runtime's one local server (one origin for every page, so Chromium compiles onnxruntime-web's
    WASM once and reuses it); each model is mounted under its own /model/ID/ folder."""
    from . import web_files
    from .web_server import Site
    if "site" not in _site:
        _site["site"] = Site(web_files.site_mounts(), blobs=True).start()
    return _site["site"]


class BrowserModel:
    """One model loaded in one page: `run(src, bgr)` -> outputs in the model's order (`last_ms`: the
    milliseconds of that run of the model in the page, without the transfers); `info` what the page
    reports; `close()`."""

    def __init__(self, path: str, device: str = "wasm", threads: Optional[int] = None):
        from . import chromium
        self.path, self.device = path, device
        self.browser = chromium.shared(webgpu=device == "webgpu")
        self.thread = threading.get_ident()
        self.site = shared_site()
        folder = f"/model/{uuid.uuid4().hex[:12]}/"
        self.mounted = folder + os.path.basename(path)
        self.site.mount(self.mounted, Path(path))
        settings = {"model": folder + urllib.parse.quote(os.path.basename(path)), "backend": device}
        if threads:
            settings["threads"] = int(threads)
        query = urllib.parse.urlencode(settings)
        try:
            self.page = self.browser.open(self.site.url + "index.html?" + query)
            self.info: Dict[str, object] = self.page.evaluate("window.bgmv2.ready")
        except Exception as error:  # noqa: BLE001 - the page's reason, in one line
            self.close()
            raise ConversionError(f"{path}: the browser cannot load it: {self.reason(error)}") from None
        self.last_ms: Optional[float] = None

    def reason(self, error: Exception) -> str:
        noted = [p for p in self.browser.page_problems.get(getattr(self, "page", None), []) if "crashed" in p]
        return noted[0] if noted else page_error(error)

    @property
    def engine(self) -> str:
        info = self.info
        if info["backend"] == "webgpu":
            how = f"WebGPU ({info.get('adapter') or 'unknown adapter'})"
            if "swiftshader" in str(info.get("adapter", "")).lower():
                how += ", software rendering on the CPU"
        else:
            threads = int(info.get("threads") or 1)
            how = f"wasm SIMD, {threads} thread{'s' if threads != 1 else ''}"
            if not info.get("isolated"):
                how += " (page not cross-origin isolated)"
        return f"{self.browser.describe}, onnxruntime-web {info['ort']}, {how}"

    def check_thread(self) -> None:
        if threading.get_ident() != self.thread:
            raise ConversionError("a browser runner runs in the thread that loaded it (Playwright's sync API); load "
                                  "one runner per thread.")

    def run(self, src: np.ndarray, bgr: np.ndarray):
        self.check_thread()
        dtype = np.float16 if self.info.get("inputType") == "float16" else np.float32
        key = uuid.uuid4().hex
        blobs, prefix = self.site.blobs, self.site.blob_prefix
        blobs[f"{key}-src"] = np.ascontiguousarray(src, dtype).tobytes()
        blobs[f"{key}-bgr"] = np.ascontiguousarray(bgr, dtype).tobytes()
        request = {"src": prefix + f"{key}-src", "bgr": prefix + f"{key}-bgr", "dims": list(src.shape),
                   "out": prefix + f"{key}-out-"}
        try:
            answer = self.page.evaluate("request => window.bgmv2.runBlobs(request)", request)
            outputs = []
            for item in answer["outputs"]:
                data = blobs.pop(f"{key}-out-{item['name']}")
                array = np.frombuffer(data, DTYPES.get(item["type"], np.float32)).reshape(item["dims"])
                outputs.append(array.astype(np.float32))
        except ConversionError:
            raise
        except Exception as error:  # noqa: BLE001 - the page's reason, in one line
            raise ConversionError(f"{self.path} in the browser ({self.engine}): {self.reason(error)}") from None
        finally:
            for name in [n for n in list(blobs) if n.startswith(key)]:
                blobs.pop(name, None)
        self.last_ms = float(answer["ms"])
        return outputs

    def problems(self):
        """Console errors, uncaught exceptions and crashes the page has shown so far."""
        return list(self.browser.page_problems.get(getattr(self, "page", None), []))

    def close(self) -> None:
        page = getattr(self, "page", None)
        if page is not None and threading.get_ident() == self.thread:
            try:
                page.close()
            except Exception:  # noqa: BLE001 - closing a crashed page
                pass
            self.browser.page_problems.pop(page, None)
            self.page = None
        self.site.unmount(self.mounted)


def device_of(device: Optional[str]) -> str:
    if device in (None, "auto", "cpu", "wasm"):
        return "wasm"
    if device == "webgpu":
        return "webgpu"
    raise ConversionError(f"device {device!r} for the browser runtime; choose wasm (the CPU, default) or webgpu.")


def load_other(path, fmt: str, knobs: Optional[Dict[str, object]] = None, device: Optional[str] = None,
               precision: Optional[str] = None, threads: Optional[int] = None, **_) -> Runner:
    """Run an ONNX file in onnxruntime-web in headless Chromium (`device` wasm or webgpu; `threads` for
    WASM, default all cores). The file computes in its own precision (fp32, or fp16 if written so)."""
    path = os.fspath(path)
    if fmt not in RUNS:
        raise ConversionError(f"the browser runtime runs ONNX files, not {fmt}; convert it first "
                              "(`bgmv2 convert FILE model.onnx`).")
    if knobs:
        raise ConversionError(f"{path}: the knobs of an ONNX model are fixed when it is exported ({', '.join(knobs)} "
                              "asked); convert it again with them.")
    device = device_of(device)
    problem = available()
    if problem:
        raise ConversionError(problem + ".")
    from . import onnx_format
    metadata = onnx_format.info(path)
    layout = metadata.get("layout") if metadata.get("layout") in ("NCHW", "NHWC") else "NCHW"
    try:
        model = BrowserModel(path, device, threads)
    except ConversionError:
        raise
    except Exception as error:  # noqa: BLE001
        raise ConversionError(f"{path}: the browser runtime failed to start ({first_line(error)}).") from None
    used = "fp16" if model.info.get("inputType") == "float16" else metadata.get("precision", "fp32")
    if precision not in (None, used):
        model.close()
        raise ConversionError(f"{path} computes in {used} in the browser ({precision} asked); convert a {precision} file "
                              f"(`bgmv2 convert --precision {precision} ...`).")

    def run(src, bgr):
        if layout == "NHWC":
            src, bgr = src.transpose(0, 2, 3, 1), bgr.transpose(0, 2, 3, 1)
        return model.run(src, bgr)

    return Runner(run, "onnx", path, model.info["outputs"], layout, metadata, used, model,
                  any_size=metadata.get("frame_sizes") == "any", device=device, runtime=NAME, engine=model.engine)
