"""Every deployment runtime x format on the shipped model: does it load, does it give PyTorch's alpha, how fast.

    python benchmarks/deployment.py                      # writes docs/deployment.md
    python benchmarks/deployment.py --size 1280x720 --runs 5 --work /tmp/deploy --out docs/deployment.md

Converts the shipped MobileNetV2 (`weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors`, HD preset:
backbone_scale 0.25, 80,000 sampled pixels) with `converters.convert` (each conversion validated as
`bgmv2 convert` does) into every format, loads each file in each runtime that runs it, and runs all of
them on one realistic composite (`bgmv2.parity_tests.probes.synthetic_probe`: the distribution the model was
trained on, so its alpha is a real matte). Against PyTorch eager fp32 on the same frame it reports
max |d alpha|, the share of 8-bit alpha values that differ, the share of refined 4x4 cells that agree,
and the median ms per frame (after one warm-up run; every runtime on the same number of threads).
A file that fails to convert or load is a row with its error, not a crash. Files are kept in --work
(default: a temporary folder) and reused when present.
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `python benchmarks/...` works
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"

# (label, runtime, file name in --work, convert options, load options)
ROWS = [
    ("PyTorch", "eager fp32 (safetensors)", None, None, {}),
    ("PyTorch", "TorchScript", "m.pt", {}, {}),
    ("PyTorch", "torch.export program (pt2)", "m.pt2", {}, {}),
    ("ONNX Runtime", "ONNX `static`", "m_static.onnx", {"onnx_variant": "static"}, {}),
    ("ONNX Runtime", "ONNX `tensorrt`", "m_tensorrt.onnx", {"onnx_variant": "tensorrt"}, {}),
    ("ONNX Runtime", "ONNX `nonzero`", "m_nonzero.onnx", {"onnx_variant": "nonzero"}, {}),
    ("ONNX Runtime", "ONNX from SavedModel (tf2onnx, NHWC)", "m_tf2onnx.onnx", {"from": "m_savedmodel"}, {}),
    ("OpenVINO", "ONNX `static`, f32 pinned", "m_static.onnx", {"onnx_variant": "static"}, {"runtime": "openvino"}),
    ("OpenVINO", "IR fp32, f32 pinned", "m.xml", {}, {}),
    ("OpenVINO", "IR fp32, bf16 asked", "m.xml", {}, {"precision": "bf16"}),
    ("OpenVINO", "IR fp32, plugin default (unpinned; not what bgmv2 runs)", "m.xml", {}, {"unpinned": True}),
    ("OpenVINO", "IR fp16 weights, f32 pinned", "m_fp16.xml", {"precision": "fp16"}, {}),
    ("OpenVINO", "SavedModel, f32 pinned", "m_savedmodel", {}, {"runtime": "openvino"}),
    ("TensorFlow", "Keras weights (tf.function)", "m.weights.h5", {}, {}),
    ("TensorFlow", "SavedModel", "m_savedmodel", {}, {}),
    ("TFLite", "LiteRT interpreter", "m.tflite", {}, {"interpreter": "litert"}),
    ("TFLite", "tf.lite interpreter", "m.tflite", {}, {"interpreter": "tensorflow"}),
]


def versions() -> Dict[str, str]:
    from importlib import metadata
    found = {}
    for name in ("torch", "onnxruntime", "openvino", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert",
                 "tf2onnx"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def build(work: Path, name: str, options: Dict[str, object], say: Callable[[str], None]) -> str:
    """The file `name` in `work`, converted from the shipped model (or `options["from"]`) unless present."""
    from bgmv2 import converters
    dest = work / name
    if dest.exists():
        return str(dest)
    options = dict(options)
    source = build(work, options.pop("from"), {}, say) if "from" in options else str(SHIPPED)
    started = time.perf_counter()
    converters.convert(source, str(dest), log=None, **options)
    say(f"built {name} in {time.perf_counter() - started:.0f} s")
    return str(dest)


def unpinned_openvino(path: str, threads: int):
    """An IR compiled with the CPU plugin's defaults (bf16 on bf16-capable CPUs): what the issue measured."""
    from bgmv2.converters.openvino_core import core as openvino_core
    from bgmv2.converters.runner import Runner
    from bgmv2.converters.formats import OUTPUTS_REFINE
    core = openvino_core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    by_name = {p.get_any_name(): p for p in compiled.outputs}

    def run(src, bgr):
        result = request.infer({"src": src, "bgr": bgr})
        return [np.array(result[by_name[n]]) for n in OUTPUTS_REFINE]

    runner = Runner(run, "openvino", path, OUTPUTS_REFINE, "NCHW", {}, "fp32", compiled, any_size=True)
    runner.runtime = f"OpenVINO, inference precision {compiled.get_property('INFERENCE_PRECISION_HINT')}"
    return runner


def load(path: str, options: Dict[str, object], threads: int):
    from bgmv2 import converters
    options = dict(options)
    if options.pop("unpinned", False):
        return unpinned_openvino(path, threads)
    if options.get("runtime") == "openvino" or path.endswith((".xml", ".onnx", ".tflite")):
        options["threads"] = threads
    return converters.load(path, **options)


def timed(runner, src, bgr, runs: int):
    runner(src, bgr)  # warm-up (graph optimisation, allocation)
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = runner(src, bgr)
        times.append(time.perf_counter() - started)
    return out, 1000 * statistics.median(times)


def compare(reference: Dict[str, np.ndarray], out: Dict[str, np.ndarray]) -> Dict[str, str]:
    a, b = reference["pha"], out["pha"]
    if a.shape != b.shape:
        return {"d": f"shape {b.shape}", "share": "-", "cells": "-"}
    d = float(np.abs(a - b).max())
    share = float(np.mean(np.round(a * 255) != np.round(b * 255)))
    cells = float(np.mean(reference["ref_sm"] == out["ref_sm"]))
    return {"d": f"{d:.1e}", "share": f"{100 * share:.3f}%", "cells": f"{100 * cells:.2f}%"}


def table(rows: List[Dict[str, str]]) -> str:
    lines = ["| runtime | format / how | loads | max abs d alpha | 8-bit alpha values differing | refined cells agree | ms / frame |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['what']} | {r['loads']} | {r.get('d', '-')} | {r.get('share', '-')} | "
                     f"{r.get('cells', '-')} | {r.get('ms', '-')} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from bgmv2.scripts.arg_types import size_type
    parser.add_argument("--size", type=size_type(4), default=(1280, 720), metavar="WIDTHxHEIGHT",
                        help="frame size, WIDTHxHEIGHT as in every command (default 1280x720)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row, after one warm-up (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    parser.add_argument("--work", help="folder for the converted files (kept; reused when present)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "deployment.md"), help="the Markdown report to write")
    parser.add_argument("--only", help="comma-separated substrings: run only rows whose label contains one")
    args = parser.parse_args(argv)
    width, height = args.size
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(args.threads)
    from bgmv2.scripts.allocator import keep_freed_memory
    keep_freed_memory()
    from bgmv2 import converters
    from bgmv2.converters.probes import synthetic_probe
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(args.work or tempfile.mkdtemp(prefix="bgmv2-deploy-"))
    work.mkdir(parents=True, exist_ok=True)
    probe = synthetic_probe(height, width, 1, seed=15)
    src, bgr = probe.src, probe.bgr
    reference, reference_ms = timed(converters.load(str(SHIPPED)), src, bgr, args.runs)
    rows = []
    for runtime, what, name, convert_options, load_options in ROWS:
        if args.only and not any(k in f"{runtime} {what}" for k in args.only.split(",")):
            continue
        row = {"runtime": runtime, "what": what}
        say(f"{runtime}: {what}")
        if name is None:
            row.update(loads="yes", ms=f"{reference_ms:.0f}", **compare(reference, reference))
            rows.append(row)
            continue
        try:
            path = build(work, name, convert_options, say)
            runner = load(path, load_options, args.threads)
            out, ms = timed(runner, src, bgr, args.runs)
            row.update(loads="yes", ms=f"{ms:.0f}", **compare(reference, out))
            if getattr(runner, "runtime", None):
                row["what"] += f" ({runner.runtime})"
        except Exception as error:  # noqa: BLE001 - a row with its error
            from bgmv2.converters.errors import first_line
            row["loads"] = f"no: {first_line(error, 160)}".replace("|", "/")
        say(f"  -> {row}")
        rows.append(row)
        runner = None
    from benchmarks.pytorch_speed import cpu_name
    loadavg = os.getloadavg()
    command = "python benchmarks/deployment.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# Deployment: every runtime x format on the shipped model

Generated by `{command.strip()}` on {stamp}. Do not edit by hand; rerun the command.

- Model: the shipped MobileNetV2 (`weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors`), HD preset
  (backbone_scale 0.25, `sampling` with 80,000 pixels: 5,000 refined cells), batch 1.
- Input: one realistic composite, {width}x{height} (WIDTHxHEIGHT; `bgmv2.parity_tests.probes.synthetic_probe`, seed 15: soft edges,
  strands, shadow, a shifted and re-exposed background shot).
- Reference: PyTorch eager fp32 on the same frame. "8-bit alpha values differing": share of pixels whose
  alpha rounds to another 8-bit value. "refined cells agree": share of the 4x4-cell map `ref_sm` that is
  equal. ms / frame: median of {args.runs} runs after one warm-up, {args.threads} threads for every runtime.
- Machine: {cpu_name()}, {os.cpu_count()} cores, load average {loadavg[0]:.1f} / {loadavg[1]:.1f} / {loadavg[2]:.1f} at the end.
  The machine was shared with other jobs: timings are indicative only; the accuracy columns are not
  affected.
- Versions: {", ".join(f"{k} {v}" for k, v in versions().items())}, Python {platform.python_version()}.

{table(rows)}

How each runs (`converters.load`, the runner the apps, conversions and `bgmv2 parity` use):
- OpenVINO: the runner pins `INFERENCE_PRECISION_HINT` to f32 (the CPU plugin's default on CPUs with
  AVX-512 BF16 or AMX is bf16); bf16 only when asked (`converters.load(path, precision="bf16")`), and
  refused on a CPU without it. The "plugin default" row compiles the same IR without the hint, as a plain
  `core.compile_model(path, "CPU")` does. ONNX files and SavedModels run in OpenVINO with
  `converters.load(path, runtime="openvino")`.
- TFLite: builtin ops only (no Flex), any frame size, inputs `src`, `bgr` NHWC; LiteRT (`ai-edge-litert`)
  by default, `interpreter="tensorflow"` for `tf.lite.Interpreter`.
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(args.out).with_name(f".partial-{os.getpid()}-{Path(args.out).name}")
    partial.write_text(text)
    os.replace(partial, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
