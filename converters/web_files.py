"""Where the browser side lives: the page (`converters/web/`, package data) and onnxruntime-web's files
(the project's pinned npm dependency, `npm ci` in the repository: node_modules/onnxruntime-web/dist).

The runtime (`browser_runtime`) serves both to headless Chromium; `bgmv2 web` copies both into an app
folder. Nothing comes from a CDN: a missing file is a one-line error naming the command that installs it.
"""
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

from .errors import ConversionError

# The pin, as in package.json and package-lock.json (tests/browser/test_files.py keeps the three equal).
ORT_WEB_VERSION = "1.30.0"
# onnxruntime-web's ES module with the WASM and WebGPU backends, and the WASM build it loads.
ORT_FILES = ("ort.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
PAGE = Path(__file__).resolve().parent / "web"
PAGE_FILES = ("index.html", "bgmv2.js", "app.js", "style.css")
NPM_HINT = "run `npm ci` in the bgmv2-zoo repository (it installs onnxruntime-web, pinned in package.json)"


def page_folder() -> Path:
    """The page's own files (index.html, bgmv2.js, app.js, style.css)."""
    missing = [name for name in PAGE_FILES if not (PAGE / name).is_file()]
    if missing:
        raise ConversionError(f"the web page's files are missing from this install ({', '.join(missing)} in {PAGE}); "
                              "reinstall bgmv2-zoo.")
    return PAGE


def node_modules_candidates() -> List[Path]:
    """Where node_modules may be: $BGMV2_NODE_MODULES alone when set, else the repository root and the
    working folder."""
    if os.environ.get("BGMV2_NODE_MODULES"):
        return [Path(os.environ["BGMV2_NODE_MODULES"])]
    return [PAGE.parent.parent / "node_modules", Path.cwd() / "node_modules"]  # converters/ is at the root


def ort_folder() -> Path:
    """onnxruntime-web's dist folder at the pinned version; ConversionError naming the fix otherwise."""
    problem = ort_problem()
    if problem:
        raise ConversionError(problem)
    return ort_dist()


def ort_dist() -> Optional[Path]:
    for modules in node_modules_candidates():
        dist = modules / "onnxruntime-web" / "dist"
        if dist.is_dir():
            return dist
    return None


def ort_problem() -> Optional[str]:
    """None when onnxruntime-web's files are there at the pinned version, else one line saying what to do."""
    dist = ort_dist()
    if dist is None:
        return f"onnxruntime-web is not installed (npm package): {NPM_HINT}"
    version = installed_version(dist.parent)
    if version != ORT_WEB_VERSION:
        return (f"onnxruntime-web {version} is installed in {dist.parent.parent}, but bgmv2 is tested with "
                f"{ORT_WEB_VERSION}: {NPM_HINT}")
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        return f"onnxruntime-web in {dist.parent} lacks {', '.join(missing)}: {NPM_HINT}"
    return None


def installed_version(package: Path) -> str:
    try:
        with open(package / "package.json") as f:
            return str(json.load(f).get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def site_mounts(model: Optional[str] = None) -> Dict[str, Path]:
    """URL prefix -> file or folder, for serving the page with onnxruntime-web under /ort/ (and a
    model file under /model/NAME)."""
    mounts = {"/": page_folder(), "/ort/": ort_folder()}
    if model is not None:
        mounts["/model/" + os.path.basename(model)] = Path(model)
    return mounts
