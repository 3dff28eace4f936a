"""Matting in the browser against ONNX Runtime in Python, same machine, same run; writes docs/browser.md.

    python benchmarks/browser_speed.py                     # exports the shipped model, writes docs/browser.md
    python benchmarks/browser_speed.py --model m.onnx --rounds 3 --out /tmp/browser.md

One ONNX file (the shipped MobileNetV2, HD preset, `static` sampling variant, as `bgmv2 convert` writes
it) runs at 640x360 and 1280x720 on one realistic composite (`bgmv2.converters.probes.synthetic_probe`) in:
ONNX Runtime in Python (CPUExecutionProvider, 1 thread and all threads) and onnxruntime-web in headless
Chromium (`converters.load(path, runtime="browser")`: WASM SIMD with 1 thread and with all threads, in
a cross-origin isolated page; WebGPU where the browser offers a GPU adapter). Rounds run round robin
over every configuration, one frame each after a warm-up; the median is reported. "in the page" is the
model's run inside the page (what a web app waits for per frame); "through Python" adds the transfers
of the runtime (raw bytes over 127.0.0.1). Alpha is compared with ONNX Runtime's on the same frame.
The machine's load average is recorded before and after: other jobs slow every row alike, but only
a quiet machine gives figures to quote.
"""
import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python benchmarks/...` works from a checkout

SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
SIZES = ((360, 640), (720, 1280))  # (height, width)
DOC = Path(__file__).with_name("browser_doc.md")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


class Config:
    """One way to run the file: `call(src, bgr)` -> (outputs, ms of the model alone, ms through Python)."""

    def __init__(self, name: str, how: str, runner, threads: Optional[int], in_page: bool):
        self.name, self.how, self.runner, self.threads, self.in_page = name, how, runner, threads, in_page
        self.model_ms: Dict[tuple, List[float]] = {}
        self.call_ms: Dict[tuple, List[float]] = {}
        self.alpha: Dict[tuple, float] = {}

    def call(self, src, bgr):
        started = time.perf_counter()
        out = self.runner(src, bgr)
        wall = (time.perf_counter() - started) * 1000
        return out, (self.runner.model.last_ms if self.in_page else wall), wall


def ort_config(path: str, threads: int) -> Config:
    import onnxruntime
    from bgmv2 import converters
    runner = converters.load(path, threads=threads)
    return Config(f"ONNX Runtime {onnxruntime.__version__}, Python", f"CPU, {threads} thread{'s' * (threads > 1)}",
                  runner, threads, False)


def browser_config(path: str, device: str, threads: Optional[int]) -> Config:
    from bgmv2 import converters
    runner = converters.load(path, runtime="browser", device=device, threads=threads)
    browser, _, rest = runner.engine.partition(", onnxruntime-web ")
    version, _, how = rest.partition(", ")
    used = runner.model.info.get("threads") if device == "wasm" else None
    return Config(f"{browser}, onnxruntime-web {version}", how, runner, used, True)


def export(folder: str, say) -> str:
    from bgmv2.converters import convert
    path = os.path.join(folder, "shipped.onnx")
    say(f"exporting {SHIPPED.name} to ONNX (static variant) ...")
    convert(SHIPPED, path, log=None)
    return path


def table(configs: List[Config]) -> str:
    """One row per configuration and size; the ratio is to ONNX Runtime in Python with the same threads
    (WebGPU: to ONNX Runtime with all threads)."""
    python = {c.threads: c for c in configs if not c.in_page}
    most = python[max(python)]
    lines = ["| runtime | how | size | ms / frame | ms / frame through Python | x ONNX Runtime | max abs d alpha vs ONNX Runtime |",
             "|---|---|---|---|---|---|---|"]
    for size in SIZES:
        for config in configs:
            if size not in config.model_ms:
                continue
            ms = statistics.median(config.model_ms[size])
            base = python.get(config.threads, most)
            ratio = ms / statistics.median(base.model_ms[size])
            through = f"{statistics.median(config.call_ms[size]):.0f}" if config.in_page else "-"
            lines.append(f"| {config.name} | {config.how} | {size[1]}x{size[0]} | {ms:.0f} | {through} | "
                         f"{ratio:.2f} | {config.alpha[size]:.1e} |")
    return "\n".join(lines)


def sample_parity(path: str) -> str:
    """`bgmv2 parity`'s check of the file in the browser on the bundled sample, in one sentence."""
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.parity_tests.probes import picture_probe
    sample = ROOT / "scripts" / "media" / "sample"
    probe = picture_probe(str(sample / "src.jpg"), str(sample / "bgr.jpg"))
    case = run_parity(str(SHIPPED), [CandidateRequest(path, "browser")], [probe], repeat=0).cases[0]
    if case.error:
        return f"ERROR: {case.error}"
    pha = case.metrics.outputs["pha"]
    return (f"{'within' if case.ok else 'OUTSIDE'} the {case.tolerance} rule: alpha max |d| {pha.max_abs:.1e}, mean "
            f"|d| {pha.mean_abs:.1e}, {pha.pixels_8bit} of {pha.pixels:,} 8-bit alpha values differ "
            f"({pha.share_8bit:.4%}); refined cells differ: {case.metrics.cells.flipped} of "
            f"{case.metrics.cells.cells:,} ({case.runtime})")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an ONNX file written by `bgmv2 convert` (default: export the shipped model)")
    parser.add_argument("--rounds", type=int, default=5, help="timed frames per configuration and size (median)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "browser.md"), help="the Markdown page to write")
    args = parser.parse_args(argv)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    from bgmv2.converters import browser_runtime, web_files
    from bgmv2.converters.probes import synthetic_probe
    missing = browser_runtime.available()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    load_before = load_text()
    started = datetime.now(timezone.utc)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bgmv2-browser-speed-") as work:
        path = args.model or export(work, say)
        configs = [ort_config(path, 1), ort_config(path, cores), browser_config(path, "wasm", 1),
                   browser_config(path, "wasm", cores)]
        webgpu_note = webgpu(path, configs, say)
        for height, width in SIZES:
            probe = synthetic_probe(height, width, 1)
            src, bgr = probe.src, probe.bgr
            expected = None
            for config in configs:  # warm-up, and the alpha each gives
                out, _, _ = config.call(src, bgr)
                if config is configs[0]:
                    expected = out["pha"]
                config.alpha[(height, width)] = float(np.abs(out["pha"] - expected).max())
            for round_ in range(args.rounds):
                for config in configs:
                    _, model_ms, call_ms = config.call(src, bgr)
                    config.model_ms.setdefault((height, width), []).append(model_ms)
                    config.call_ms.setdefault((height, width), []).append(call_ms)
                say(f"{width}x{height} round {round_ + 1}/{args.rounds}: " + ", ".join(
                    f"{c.how} {c.model_ms[(height, width)][-1]:.0f}" for c in configs))
        for config in configs:
            if config.in_page:
                config.runner.model.close()
        say("checking the file in the browser on the bundled sample (bgmv2 parity's rule) ...")
        accuracy = sample_parity(path)
    load_after = load_text()
    busy = max(os.getloadavg()[0], float(load_before.split(" / ")[0])) > cores
    load_note = (f" Here the load exceeded the {cores} cores: every row ran slower than on a quiet machine, and the "
                 "all-threads rows most (their threads wait for cores other jobs hold), so they can come out slower "
                 "than one thread." if busy else "")
    import onnxruntime
    command = "python benchmarks/browser_speed.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    template = DOC.read_text()
    template = template.split("\n", 1)[1] if template.startswith("<!--") else template
    page = template.format(
        command=command, date=started.strftime("%Y-%m-%d %H:%M UTC"), cpu=cpu_name(), cores=cores,
        load_before=load_before, load_after=load_after, load_note=load_note, table=table(configs), rounds=args.rounds,
        ort=onnxruntime.__version__, ort_web=web_files.ORT_WEB_VERSION, webgpu=webgpu_note, accuracy=accuracy,
        python=platform.python_version())
    out = Path(args.out)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    partial.write_text(page)
    os.replace(partial, out)
    say(f"wrote {out}")
    return 0


def webgpu(path: str, configs: List[Config], say) -> str:
    """Add a WebGPU configuration where the browser offers a GPU adapter; the sentence for the page."""
    from bgmv2.converters import ConversionError
    try:
        config = browser_config(path, "webgpu", None)
    except ConversionError as error:
        return f"WebGPU: not measured; {error}"
    adapter = config.runner.model.info.get("adapter") or "unknown"
    if "swiftshader" in str(adapter).lower():
        from bgmv2.converters.probes import synthetic_probe
        probe = synthetic_probe(64, 96, 1)
        src, bgr = probe.src, probe.bgr
        config.call(src, bgr)  # compiles the shaders
        _, ms, _ = config.call(src, bgr)
        config.runner.model.close()
        say(f"WebGPU is SwiftShader (software): {ms:.0f} ms at 96x64; not timed at the table's sizes")
        return (f"WebGPU: this machine has no GPU; Chromium's only adapter is SwiftShader ({adapter}), a software "
                f"renderer on the CPU: {ms:.0f} ms for one 96x64 frame after the shaders compiled, so it is not "
                "timed at the table's sizes. On a machine with a GPU, `converters.load(path, runtime=\"browser\", "
                "device=\"webgpu\")` and this script add a WebGPU row.")
    configs.append(config)
    return f"WebGPU: adapter {adapter}."


if __name__ == "__main__":
    sys.exit(main())
