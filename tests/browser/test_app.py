"""`bgmv2 web OUT`, served on 127.0.0.1 and opened in headless Chromium: the bundled sample matted
through `window.bgmv2.matte` gives eager's alpha within `bgmv2 parity`'s fp32 rule; the page shows the
composite and offers the PNGs; pictures of different sizes and non-pictures are messages on the page
(nothing in the console); `--serve` prints the address; a half-written OUT never looks complete."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from .conftest import SAMPLE, SHIPPED, problems

pytestmark = pytest.mark.browser


def eager(path, probe):
    """The reference (the shipped weights in PyTorch eager fp32) at the knobs the ONNX file records, its
    fp32 limits on `probe`, and its outputs."""
    from bgmv2 import converters
    from bgmv2.parity_tests.candidates import Reference, recorded_knobs, resolve_knobs
    from bgmv2.converters.acceptance import rule_for
    reference = Reference(str(SHIPPED))
    metadata = {k: v for k, v in converters.info(str(path)).items() if k not in ("file", "format", "content")}
    knobs = resolve_knobs(reference.recorded, recorded_knobs(str(path), "onnx", metadata)[0], {})[0]
    limits = rule_for("fp32").limits(reference.noise(knobs, [probe], "fp32"))
    return knobs, limits, reference.run(knobs, probe)


def sample_probe():
    from bgmv2.parity_tests.probes import picture_probe
    return picture_probe(str(SAMPLE / "src.jpg"), str(SAMPLE / "bgr.jpg"))


def page_outputs(page, src_url, bgr_url):
    """window.bgmv2.matte in the page; the outputs as float32 NCHW arrays (through base64 of the bytes)."""
    found = page.evaluate("""async ([src, bgr]) => {
        const result = await window.bgmv2.matte(src, bgr);
        const encode = (a) => { const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let text = '';
            for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
            return btoa(text); };
        const outputs = {};
        for (const [name, value] of Object.entries(result.outputs)) outputs[name] = [encode(value.data), value.dims];
        return {width: result.width, height: result.height, outputs,
                same: result.pha === result.outputs.pha.data && result.fgr === result.outputs.fgr.data,
                kinds: [result.pha.constructor.name, result.fgr.constructor.name]};
    }""", [src_url, bgr_url])
    import base64
    arrays = {name: np.frombuffer(base64.b64decode(data), np.float32).reshape([1, *dims[1:]])
              for name, (data, dims) in found["outputs"].items()}
    return found, arrays


def test_the_sample_through_the_script_api_gives_eager_alpha_within_the_rule(page, app):
    from bgmv2.converters.agreement import ParityMetrics
    found, got = page_outputs(page, "sample/src.jpg", "sample/bgr.jpg")
    assert (found["width"], found["height"]) == (640, 360)
    assert found["same"] and found["kinds"] == ["Float32Array", "Float32Array"]
    assert list(got) == ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
    probe = sample_probe()  # PIL's decoding of the JPEGs, which Chromium's equals (checked by the test below)
    knobs, limits, expected = eager(app / "model.onnx", probe)
    metrics = ParityMetrics()
    metrics.add(expected, got, knobs, limits.band)
    assert limits.violations(metrics) == []
    pha = metrics.outputs["pha"]
    print(f"\nsample 640x360 in the page vs eager: pha max |d| {pha.max_abs:.2e}, 8-bit differs {pha.share_8bit:.4%}")
    assert pha.max_abs < 1e-4
    assert problems(page) == []


def test_chromium_decodes_the_sample_as_pil_does(page):
    decoded = page.evaluate("""async () => {
        const m = await import('./bgmv2.js');
        const out = [];
        for (const name of ['src', 'bgr']) {
            const bitmap = await m.picture(`sample/${name}.jpg`, name);
            const data = m.pixels(bitmap, bitmap.width, bitmap.height);
            let sum = 0; for (let i = 0; i < data.length; i++) sum += Math.round(data[i] * 255) * ((i % 251) + 1);
            out.push(sum);
        }
        return out;
    }""")
    probe = sample_probe()
    for name, value in zip(("src", "bgr"), decoded):
        levels = np.rint(getattr(probe, name)[0] * 255).astype(np.int64).ravel()
        assert value == int((levels * (np.arange(levels.size) % 251 + 1)).sum()), name


def test_the_page_shows_the_composite_and_offers_the_pngs(page, tmp_path):
    page.set_input_files("#src", str(SAMPLE / "src.jpg"))
    page.set_input_files("#bgr", str(SAMPLE / "bgr.jpg"))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)")
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#message")
    assert page.is_hidden("#message") and page.is_visible("#composite")
    assert "onnxruntime-web 1.30.0, WASM SIMD" in page.inner_text("#engine")
    shot = np.asarray(Image.open(io.BytesIO(page.locator("#composite").screenshot())).convert("RGB")).astype(np.int64)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    # what the composite must show: the page's own alpha and foreground over the default green (#00b140)
    with page.expect_download() as alpha_download:
        page.click("#download-alpha")
    with page.expect_download() as composite_download:
        page.click("#download-composite")
    alpha_png = np.asarray(Image.open(alpha_download.value.path()).convert("L")).astype(np.float64) / 255
    composite_png = np.asarray(Image.open(composite_download.value.path()).convert("RGB")).astype(np.int64)
    assert alpha_download.value.suggested_filename == "alpha.png" and alpha_png.shape == (360, 640)
    src = np.asarray(Image.open(SAMPLE / "src.jpg").convert("RGB")).astype(np.int64)
    green = np.array([0x00, 0xb1, 0x40])
    background = alpha_png < 0.01
    subject = alpha_png > 0.99
    assert 0.05 < subject.mean() < 0.6 and background.mean() > 0.3  # a subject on a background
    assert np.abs(composite_png[background] - green).max() <= 3  # the background replaced by the colour
    assert np.abs(composite_png[subject] - src[subject]).mean() < 12  # the subject kept (its foreground)
    shown = np.asarray(Image.fromarray(composite_png.astype(np.uint8)).resize(shot.shape[1::-1], Image.BILINEAR))
    assert np.abs(shot - shown.astype(np.int64)).mean() < 4  # the screenshot is that composite
    assert problems(page) == []


def test_sizes_that_differ_and_non_pictures_are_messages_on_the_page(page, tmp_path):
    small = tmp_path / "small.png"
    Image.open(SAMPLE / "bgr.jpg").resize((320, 180)).save(small)
    page.set_input_files("#src", str(SAMPLE / "src.jpg"))
    page.set_input_files("#bgr", str(small))
    page.wait_for_function("document.body.dataset.state === 'error'")
    message = page.inner_text("#message")
    assert "photo is 640x360 but the background plate is 320x180" in message and "same size" in message
    assert page.is_hidden("#results")
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    page.set_input_files("#bgr", str(text))
    page.wait_for_function("document.getElementById('message').textContent.includes('notes.txt')")
    assert "(notes.txt) is not a picture this browser can read" in page.inner_text("#message")
    rejected = page.evaluate("""async () => {
        const canvas = new OffscreenCanvas(320, 180);
        canvas.getContext('2d').fillRect(0, 0, 320, 180);
        const small = await canvas.convertToBlob();
        return window.bgmv2.matte('sample/src.jpg', small).then(() => 'resolved', (e) => e.name + ': ' + e.message);
    }""")
    assert rejected.startswith("MatteError: The photo is 640x360 but the background plate is 320x180")
    assert problems(page) == []  # every problem was a message, nothing reached the console


def test_the_app_folder_is_self_contained(app):
    from bgmv2.converters import web_files
    settings = json.loads((app / "bgmv2-app.json").read_text())
    assert [m["file"] for m in settings["models"]] == ["model.onnx"]
    assert settings["onnxruntime_web"] == web_files.ORT_WEB_VERSION
    assert settings["models"][0]["bytes"] == (app / "model.onnx").stat().st_size
    for name in web_files.ORT_FILES:
        assert (app / "ort" / name).read_bytes() == (web_files.ort_folder() / name).read_bytes()
    for name in web_files.PAGE_FILES:
        text = (app / name).read_text()
        addresses = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}\b", text)  # hosts named in the page's code
        assert addresses == [] and "cdn" not in text.lower(), (name, addresses)
    assert sorted(p.name for p in app.iterdir()) == sorted(
        ["README.md", "app.js", "bgmv2-app.json", "bgmv2.js", "index.html", "model.onnx", "ort", "sample", "style.css"])


def test_serve_prints_the_address_and_sends_the_isolation_headers(app):
    process = subprocess.Popen([sys.executable, "-m", "bgmv2.scripts.cli", "web", str(app), "--serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {app} at http://127.0.0.1:"), line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b'src="app.js"' in response.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "../../etc/passwd", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_out_is_complete_or_absent(tmp_path, shipped_onnx, monkeypatch, capsys):
    from bgmv2.scripts import web_app
    from bgmv2.scripts.cli import main
    out = tmp_path / "app"

    def broken(folder):
        (folder / "index.html").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(web_app, "copy_page", broken)
    with pytest.raises(OSError):
        web_app.build(out, str(shipped_onnx), ["fp32"], check=False, log=None)
    assert os.listdir(tmp_path) == []  # no OUT, no OUT.partial-PID
    monkeypatch.undo()
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["web", str(out), "--model", str(shipped_onnx), "--no-check"]) == 1
    assert "exists and is not a bgmv2 web app" in capsys.readouterr().err
    assert main(["web", str(out), "--serve"]) == 1
    assert "is not a bgmv2 web app" in capsys.readouterr().err and (out / "mine.txt").exists()


@pytest.mark.slow
def test_the_webcam_captures_a_plate_and_a_photo(site, monkeypatch):
    """Chromium's fake camera (a moving test pattern): start it, capture the plate, capture a photo."""
    from bgmv2.converters import chromium
    monkeypatch.setenv("BGMV2_CHROMIUM_FLAGS", "--use-fake-device-for-media-stream --use-fake-ui-for-media-stream")
    browser = chromium.Chromium()
    try:
        page = browser.open(site.url)
        page.evaluate("window.bgmv2.ready")
        page.click("#webcam")
        page.wait_for_function("!document.getElementById('capture-plate').disabled")
        page.click("#capture-plate")
        page.click("#capture-photo")
        page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)")
        assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#message")
        size = page.evaluate("[document.getElementById('composite').width, document.getElementById('composite').height]")
        assert size[0] > 0 and size[1] > 0
        assert browser.page_problems[page] == []
    finally:
        browser.close()
