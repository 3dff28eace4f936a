"""The static web app `bgmv2 web OUT` writes: matting in the browser with onnxruntime-web.

OUT holds index.html, app.js, bgmv2.js, style.css (the page, `bgmv2.converters.web_files`), ort/
(onnxruntime-web's files from the project's pinned npm dependency), model.onnx (fp32) and, where it
passes parity at fp16, model_fp16.onnx, sample/ (the bundled sample pair), bgmv2-app.json (which
models there are, and how each was checked) and README.md (how to serve it).

OUT is built as OUT.partial-PID beside it and renamed when complete (an earlier OUT is set aside as
OUT.replaced-PID during the swap), so a folder named OUT is always a whole app.
"""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

SAMPLE = Path(__file__).resolve().parent / "media" / "sample"
CONFIG = "bgmv2-app.json"
README = """# Background Matting V2 in the browser

Written by `bgmv2 web` ({source}). Serve this folder over HTTP and open it in a browser:

    bgmv2 web {folder} --serve

Any static server works; send these two headers so that the page is cross-origin isolated and
onnxruntime-web can use every core (without them it runs on one thread):

    Cross-Origin-Opener-Policy: same-origin
    Cross-Origin-Embedder-Policy: require-corp

Opening index.html as a file (file://) does not work: browsers refuse modules and WASM from files.
Models: {models}.
"""


class WebAppError(ValueError):
    """A web app that cannot be written as asked; the message says why and what to do."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_app(folder) -> bool:
    """Whether `folder` is an app `bgmv2 web` wrote (its settings and page are there)."""
    folder = Path(folder)
    return (folder / CONFIG).is_file() and (folder / "index.html").is_file()


def write_models(source: str, folder: Path, precisions, say: Callable[[str], None]) -> List[Dict[str, str]]:
    """model.onnx (fp32) and model_fp16.onnx from `source`, each validated by `convert`; an ONNX
    source written with the PyTorch exporter is copied as it is."""
    from bgmv2 import converters
    from bgmv2.converters import ConversionError
    fmt = converters.detect(source)
    models = []
    if fmt == "onnx":
        found = converters.info(source)
        if found.get("layout") == "NHWC":
            raise WebAppError(f"{source} takes NHWC input (tf2onnx); the page feeds NCHW: convert the weights with the "
                              "PyTorch exporter (`bgmv2 convert WEIGHTS model.onnx`) and pass that file.")
        precision = found.get("precision", "fp32")
        name = "model.onnx" if precision == "fp32" else f"model_{precision}.onnx"
        shutil.copyfile(source, folder / name)
        say(f"model:   {name} ({precision}), copied from {source}")
        models.append({"file": name, "precision": precision})
        precisions = [p for p in precisions if p != precision]
    for precision in precisions:
        name = "model.onnx" if precision == "fp32" else f"model_{precision}.onnx"
        say(f"model:   {name} ({precision}) from {source}")
        try:
            converters.convert(source, folder / name, "onnx", precision=precision, log=lambda text: say("  " + text))
        except ConversionError as error:
            if precision == "fp32":
                raise WebAppError(str(error)) from None
            say(f"note:    no {precision} model: {error}")
            continue
        models.append({"file": name, "precision": precision})
    if not models:
        raise WebAppError(f"no model could be written from {source}")
    return models


def browser_check(reference: str, folder: Path, models: List[Dict[str, str]], say) -> List[Dict[str, str]]:
    """Each model run in headless Chromium on the bundled sample, against `reference` in PyTorch eager
    by `bgmv2 parity`'s rule for its precision; a failing fp16 model is dropped, a failing fp32 one is
    an error. Skipped (noted in the app's settings) where the browser runtime is not installed."""
    from bgmv2.converters import browser_runtime
    missing = browser_runtime.available()
    if missing:
        say(f"note:    not checked in a browser: {missing}")
        for model in models:
            model["browser_check"] = f"not run: {missing}"
        return models
    from bgmv2.parity_tests.candidates import ParityError, Reference
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.parity_tests.probes import picture_probe
    probe = picture_probe(str(SAMPLE / "src.jpg"), str(SAMPLE / "bgr.jpg"))
    try:
        truth = Reference(reference)
    except ParityError as error:
        say(f"note:    not checked in a browser: no reference weights ({error})")
        for model in models:
            model["browser_check"] = "not run: no reference weights"
        return models
    kept = []
    for model in models:
        path = str(folder / model["file"])
        report = run_parity(reference, [CandidateRequest(path, "browser", model["file"])], [probe], repeat=0,
                            reference=truth)
        case = report.cases[0]
        pha = case.metrics.outputs.get("pha")
        figures = f"alpha max |d| {pha.max_abs:.1e}, 8-bit differs {pha.share_8bit:.3%}" if pha else "no alpha"
        verdict = f"{case.verdict} ({case.tolerance} rule) on {probe.describe()} in {case.runtime or 'the browser'}: {figures}"
        if case.error or not case.ok:
            why = case.error or "; ".join(case.violations)
            if model["precision"] == "fp32":
                raise WebAppError(f"{model['file']} does not give eager's alpha in the browser ({why}); nothing was written.")
            say(f"note:    {model['file']} dropped: {verdict}: {why}")
            os.remove(path)
            continue
        say(f"check:   {model['file']}: {verdict}")
        model["browser_check"] = verdict
        kept.append(model)
    return kept


def copy_page(folder: Path) -> None:
    from bgmv2.converters import web_files
    page, ort = web_files.page_folder(), web_files.ort_folder()
    for name in web_files.PAGE_FILES:
        shutil.copyfile(page / name, folder / name)
    (folder / "ort").mkdir()
    for name in web_files.ORT_FILES:
        shutil.copyfile(ort / name, folder / "ort" / name)
    (folder / "sample").mkdir()
    for name in ("src.jpg", "bgr.jpg"):
        shutil.copyfile(SAMPLE / name, folder / "sample" / name)


def build(out, model: Optional[str] = None, precisions=("fp32", "fp16"), check: bool = True, force: bool = False,
          log: Optional[Callable[[str], None]] = print) -> Path:
    """Write the app folder `out` (see the module docstring); returns its path."""
    from bgmv2.converters import ConversionError, web_files
    from bgmv2.converters.resolve import resolve_model
    from bgmv2.scripts.media.outputs import clean_stale
    say = log or (lambda text: None)
    given = os.fspath(out)
    out = Path(os.path.abspath(given))
    if out.exists() and not is_app(out):
        raise WebAppError(f"{given} exists and is not a bgmv2 web app; choose another OUT (--force replaces app "
                          "folders only).")
    if out.exists() and not force:
        raise WebAppError(f"{given} exists (a bgmv2 web app); pass --force to write it again, or --serve to serve it.")
    if not out.parent.is_dir():
        raise WebAppError(f"{out.parent}: no such folder for OUT; create it first.")
    problem = web_files.ort_problem()
    if problem:
        raise WebAppError(problem)
    try:
        source = resolve_model(model)
    except ConversionError as error:
        raise WebAppError(str(error)) from None
    clean_stale([out.parent])
    work = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        models = write_models(source, work, list(precisions), say)
        if check:
            models = browser_check(source, work, models, say)
        for entry in models:
            path = work / entry["file"]
            entry.update(bytes=path.stat().st_size, sha256=file_sha256(path))
        copy_page(work)
        settings = {"made_by": "bgmv2 web", "source": os.path.basename(source), "models": models,
                    "onnxruntime_web": web_files.ORT_WEB_VERSION, "sample": {"src": "sample/src.jpg",
                                                                             "bgr": "sample/bgr.jpg"}}
        (work / "README.md").write_text(README.format(source=os.path.basename(source), folder=out.name, models=", ".join(
            f"{m['file']} ({m['precision']})" for m in models)))
        (work / CONFIG).write_text(json.dumps(settings, indent=2) + "\n")
        swap(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"done:    {given} (serve it: bgmv2 web {given} --serve)")
    return out


def swap(work: Path, out: Path) -> None:
    """Put the finished folder at `out`, replacing an earlier app (set aside first, removed after)."""
    aside = out.with_name(f"{out.name}.replaced-{os.getpid()}")
    if out.exists():
        os.replace(out, aside)
    os.replace(work, out)
    shutil.rmtree(aside, ignore_errors=True)


def serve(out, port: int = 8000, log=print) -> int:
    """Serve the app folder on 127.0.0.1:`port` until Ctrl-C (0 when stopped so)."""
    from bgmv2.converters.web_server import serve_folder
    folder = Path(os.path.abspath(os.fspath(out)))
    if not is_app(folder):
        raise WebAppError(f"{folder} is not a bgmv2 web app (no {CONFIG}); write it first: bgmv2 web {out}")
    try:
        site = serve_folder(str(folder), port)
    except OSError as error:
        raise WebAppError(f"cannot listen on 127.0.0.1:{port} ({error.strerror or error}); pass --port 0 for any free "
                          "port, or another number.") from None
    log(f"serving {folder} at {site.url} (cross-origin isolated: WASM threads on); Ctrl-C stops it")
    sys.stdout.flush()
    try:
        site.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        site.close()
    return 0
