"""Every deployment runtime x format on the shipped model: does it load, does it give PyTorch's alpha, how fast.

    python benchmarks/deployment.py --work /tmp/deploy-work     # writes docs/deployment.md when the machine is quiet

Converts the shipped MobileNetV2 (`weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors`, HD preset:
backbone_scale 0.25, 80,000 sampled pixels) with `converters.convert` (each conversion validated as
`bgmv2 convert` does) into every format, loads each file in each runtime that runs it, and runs all of
them on one realistic composite (`bgmv2.converters.probes.synthetic_probe`). Against PyTorch eager
fp32 on the same frame it reports max |d alpha|, the share of 8-bit alpha values that differ and the
share of refined 4x4 cells that agree.

Timing (`interleaved`): every row, PyTorch eager included, is timed once per round, round after
round, so a change in load hits all rows alike; each row's median ms and its median ratio to eager
in the same round. Every runtime gets --threads threads (PyTorch, ONNX Runtime, OpenVINO, TFLite;
TensorFlow intra-op, inter-op 1); the rows marked 1 thread run single-threaded. The machine is
checked before (other processes' CPU use over 5 s, load average), during (CPU used by other
processes, `machine_load.Sampler`) and after the timing (load average); when other processes got more
than --max-others cores during the timing the page is not written (exit 3) unless `--busy flag`, which
writes it marked as disturbed. On a shared machine `nice -n -20` (root) keeps other jobs off the cores
for the minute the timing takes; the page states the niceness it ran at.
A file that fails to convert or load is a row with its error, not a crash. Files are kept in --work
(default: a temporary folder) and reused when present. The third-party converter section comes from
`benchmarks/third_party.py` (its JSON, `--third-party`).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
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

from benchmarks.deployment_page import page  # noqa: E402
from benchmarks.interleaved import interleaved  # noqa: E402
from benchmarks.machine_load import Sampler, load_average, wait_for_quiet  # noqa: E402

SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
THIRD_PARTY = ROOT / "benchmarks" / "third_party.json"
EAGER = None  # the file name of the eager rows: the shipped weights themselves

# (runtime, format / how, file name in --work, convert options, load options, threads: None = --threads)
ROWS = [
    ("PyTorch", "eager fp32 (safetensors)", EAGER, None, {}, None),
    ("PyTorch", "eager fp32 (safetensors)", EAGER, None, {}, 1),
    ("PyTorch", "TorchScript", "m.pt", {}, {}, None),
    ("PyTorch", "torch.export program (pt2)", "m.pt2", {}, {}, None),
    ("ONNX Runtime", "ONNX `static`", "m_static.onnx", {"onnx_variant": "static"}, {}, None),
    ("ONNX Runtime", "ONNX `static`", "m_static.onnx", {"onnx_variant": "static"}, {}, 1),
    ("ONNX Runtime", "ONNX `static`, opset 15", "m_static_15.onnx", {"onnx_variant": "static", "options": {"opset": 15}},
     {}, None),
    ("ONNX Runtime", "ONNX `tensorrt`", "m_tensorrt.onnx", {"onnx_variant": "tensorrt"}, {}, None),
    ("ONNX Runtime", "ONNX `nonzero`", "m_nonzero.onnx", {"onnx_variant": "nonzero"}, {}, None),
    ("ONNX Runtime", "ONNX from SavedModel (tf2onnx, NHWC)", "m_tf2onnx.onnx", {"from": "m_savedmodel"}, {}, None),
    ("OpenVINO", "ONNX `static`, f32 pinned", "m_static.onnx", {"onnx_variant": "static"}, {"runtime": "openvino"},
     None),
    ("OpenVINO", "IR fp32, f32 pinned", "m.xml", {}, {}, None),
    ("OpenVINO", "IR fp32, f32 pinned", "m.xml", {}, {}, 1),
    ("OpenVINO", "IR fp32, bf16 asked", "m.xml", {}, {"precision": "bf16"}, None),
    ("OpenVINO", "IR fp32, plugin default (unpinned; not what bgmv2 runs)", "m.xml", {}, {"unpinned": True}, None),
    ("OpenVINO", "IR fp16 weights, f32 pinned", "m_fp16.xml", {"precision": "fp16"}, {}, None),
    ("OpenVINO", "SavedModel, f32 pinned", "m_savedmodel", {}, {"runtime": "openvino"}, None),
    ("TensorFlow", "Keras weights (tf.function)", "m.weights.h5", {}, {}, None),
    ("TensorFlow", "SavedModel", "m_savedmodel", {}, {}, None),
    ("TFLite", "LiteRT interpreter", "m.tflite", {}, {"interpreter": "litert"}, None),
    ("TFLite", "tf.lite interpreter", "m.tflite", {}, {"interpreter": "tensorflow"}, None),
]
TORCH_FORMATS = (EAGER, "m.pt", "m.pt2")


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

    return Runner(run, "openvino", path, OUTPUTS_REFINE, "NCHW", {}, "fp32", compiled, any_size=True,
                  runtime="openvino",
                  engine=f"OpenVINO, inference precision {compiled.get_property('INFERENCE_PRECISION_HINT')}")


def load(path: str, options: Dict[str, object], threads: int):
    from bgmv2 import converters
    options = dict(options)
    if options.pop("unpinned", False):
        return unpinned_openvino(path, threads)
    if options.get("runtime") == "openvino" or path.endswith((".xml", ".onnx", ".tflite")):
        options["threads"] = threads
    return converters.load(path, **options)


def with_torch_threads(runner, threads: int):
    """`runner` run with PyTorch's intra-op pool at `threads` (restored afterwards)."""
    import torch

    def run(src, bgr):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return runner(src, bgr)
        finally:
            torch.set_num_threads(before)
    return run


def compare(reference: Dict[str, np.ndarray], out: Dict[str, np.ndarray]) -> Dict[str, str]:
    a, b = reference["pha"], out["pha"]
    if a.shape != b.shape:
        return {"d": f"shape {b.shape}", "share": "-", "cells": "-"}
    d = float(np.abs(a - b).max())
    share = float(np.mean(np.round(a * 255) != np.round(b * 255)))
    cells = float(np.mean(reference["ref_sm"] == out["ref_sm"]))
    return {"d": f"{d:.1e}", "share": f"{100 * share:.3f}%", "cells": f"{100 * cells:.2f}%"}


def set_tensorflow_threads(threads: int) -> None:
    try:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except (ImportError, RuntimeError):
        pass  # not installed, or already initialised (its own defaults then)


def prepare_rows(args, work: Path, src, bgr, say) -> List[Dict[str, object]]:
    """Every row built, loaded and run once (its accuracy against eager); `call` for the timing."""
    from bgmv2 import converters
    from bgmv2.converters.errors import first_line
    reference = converters.load(str(SHIPPED))
    expected = reference(src, bgr)
    rows = []
    for runtime, what, name, convert_options, load_options, threads in ROWS:
        threads = threads or args.threads
        if args.only and not any(k in f"{runtime} {what}" for k in args.only.split(",")):
            continue
        row = {"runtime": runtime, "what": what, "threads": threads}
        say(f"{runtime}: {what}, {threads} thread(s)")
        try:
            runner = reference if name is EAGER else load(build(work, name, convert_options, say), load_options,
                                                           threads)
            run = with_torch_threads(runner, threads) if name in TORCH_FORMATS else runner
            row.update(loads="yes", **compare(expected, run(src, bgr)))
            row["call"] = lambda run=run: run(src, bgr)
            if name is not EAGER and getattr(runner, "runtime", None):
                row["what"] += f" ({runner.engine})"
        except Exception as error:  # noqa: BLE001 - a row with its error
            row["loads"] = f"no: {first_line(error, 160)}".replace("|", "/")
        rows.append(row)
    return rows


def listing(work: Path, say) -> Dict[str, Dict[str, List[str]]]:
    """How each API lists the outputs of this run's files (`io_listing`), for the page."""
    from benchmarks import io_listing
    from bgmv2.converters.errors import first_line
    found = {}
    for title, name, how in (("ONNX (`m_static.onnx`) dims", "m_static.onnx", io_listing.onnx_dims),
                             ("ONNX opset 15 (`m_static_15.onnx`) dims", "m_static_15.onnx", io_listing.onnx_dims),
                             ("SavedModel (`m_savedmodel`)", "m_savedmodel", io_listing.savedmodel),
                             ("TFLite (`m.tflite`)", "m.tflite", io_listing.tflite)):
        if (work / name).exists():
            try:
                found[title] = how(str(work / name))
            except Exception as error:  # noqa: BLE001 - a listing that fails is said, not fatal
                found[title] = {"could not be listed": [first_line(error, 160)]}
                say(f"listing {name}: {first_line(error, 160)}")
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from bgmv2.scripts.arg_types import size_type
    parser.add_argument("--size", type=size_type(4), default=(1280, 720), metavar="WIDTHxHEIGHT",
                        help="frame size, WIDTHxHEIGHT as in every command (default 1280x720)")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (every row once per round; default 7)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    parser.add_argument("--work", help="folder for the converted files (kept; reused when present)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "deployment.md"), help="the Markdown page to write")
    parser.add_argument("--only", help="comma-separated substrings: run only rows whose label contains one")
    parser.add_argument("--max-others", type=float, default=0.25,
                        help="cores other processes may get during the timing (default 0.25)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for a quiet machine before timing (default: do not wait)")
    parser.add_argument("--busy", choices=("refuse", "flag"), default="refuse",
                        help="when the machine was busy: refuse to write the page (default) or write it flagged")
    parser.add_argument("--third-party", default=str(THIRD_PARTY),
                        help="results of benchmarks/third_party.py to include (default benchmarks/third_party.json)")
    args = parser.parse_args(argv)
    width, height = args.size
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(args.threads)
    set_tensorflow_threads(args.threads)
    from bgmv2.scripts.allocator import keep_freed_memory
    keep_freed_memory()
    from bgmv2.converters.probes import synthetic_probe
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(args.work or tempfile.mkdtemp(prefix="bgmv2-deploy-"))
    work.mkdir(parents=True, exist_ok=True)
    probe = synthetic_probe(height, width, 1, seed=15)
    rows = prepare_rows(args, work, probe.src, probe.bgr, say)
    timed = [r for r in rows if "call" in r]
    machine = {"load_before": load_average()}
    machine["others_before"] = wait_for_quiet(args.max_others, args.wait, say)
    machine["load_before"] = load_average()
    say(f"timing {len(timed)} rows x {args.runs} rounds, interleaved ...")
    with Sampler() as sampler:
        results = interleaved([r["call"] for r in timed], args.runs, baseline=0)
    machine.update(load_after=load_average(), others_during=sampler.result.others, seconds=sampler.result.seconds)
    for row, result in zip(timed, results):
        row.update(ms=f"{result['ms']:.0f}", ratio=f"{result['ratio']:.2f}", spread=f"{100 * result['spread']:.0f}%")
    machine["niceness"] = os.nice(0)
    # What decides: the CPU other processes got while the rows were timed (before and after are stated).
    busy = [v for v in (machine["others_during"],) if v is not None and v > args.max_others]
    command = "python benchmarks/deployment.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    third_party = json.loads(Path(args.third_party).read_text()) if Path(args.third_party).exists() else None
    text = page(rows, machine, args, command.strip(), busy=bool(busy), versions=versions(),
                python=platform.python_version(), third_party=third_party, listing=listing(work, say),
                stamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if busy and args.busy == "refuse":
        say(f"not written: other processes used {max(busy):.2f} cores (limit {args.max_others}) around the timing. "
            "Run again when the machine is quiet (--wait 600 waits for it), or pass --busy flag to write it marked.")
        return 3
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(args.out).with_name(f".partial-{os.getpid()}-{Path(args.out).name}")
    partial.write_text(text)
    os.replace(partial, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
