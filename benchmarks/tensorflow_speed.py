"""CPU speed of MattingRefine in TensorFlow (eager and `tf.function`) next to PyTorch eager, in one run.

    python benchmarks/tensorflow_speed.py
    python benchmarks/tensorflow_speed.py --quick
    python benchmarks/tensorflow_speed.py --write docs/speed-tensorflow.md     # the table in docs/, as a page

Prints the command line and one markdown table: milliseconds per frame (median of the timed calls,
taken round robin after warm-up) for each backbone and size. The models and inputs are those of
`benchmarks/pytorch_speed.py` (seeded weights calibrated on an HD probe, a soft-edged figure over a
textured background); the Keras model gets the PyTorch weights through `load_torch_state_dict`. One
`tf.function` with unknown batch, height and width is traced per backbone and serves every size.
"""
import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `python benchmarks/...` works

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from bgmv2 import tensorflow_impl  # noqa: E402
from benchmarks.pytorch_speed import (at_least, build_model, comma_list, cpu_name, make_pair,  # noqa: E402
                                      parse_with_shared_options, size_list)
from bgmv2.pytorch_impl import BACKBONES  # noqa: E402
from bgmv2.scripts import page  # noqa: E402
from bgmv2.scripts.allocator import keep_freed_memory  # noqa: E402

PATHS = ("pytorch eager", "tf eager", "tf.function")
QUICK = {"backbones": "mobilenetv2", "sizes": "1280x720", "warmup": 1, "iters": 2}
ANY_IMAGE = tf.TensorSpec([None, None, None, 3], tf.float32)


def keras_twin(model: torch.nn.Module, backbone: str, args: argparse.Namespace) -> tensorflow_impl.MattingRefine:
    """The Keras MattingRefine with the same options and weights as the PyTorch `model`."""
    twin = tensorflow_impl.MattingRefine(backbone, backbone_scale=args.backbone_scale,
                                         refine_mode="sampling", refine_sample_pixels=args.sample_pixels)
    tensorflow_impl.load_torch_state_dict(twin, model.state_dict())
    return twin


def time_round_robin(runners: Dict[str, Callable], warmup: int, iters: int) -> Dict[str, List[float]]:
    """Warm every runner up, then call each once per round, so drift in machine speed hits all alike."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: Dict[str, List[float]] = {name: [] for name in runners}
    for _ in range(iters):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def measure(backbone: str, model, twin, graph, size, args) -> dict:
    width, height = size
    src, bgr = make_pair(height, width, args.seed)
    src_tf, bgr_tf = (tf.constant(x.numpy().transpose(0, 2, 3, 1)) for x in (src, bgr))

    def torch_eager():
        with torch.inference_mode():
            return model(src, bgr)
    runners = {"pytorch eager": torch_eager, "tf eager": lambda: twin(src_tf, bgr_tf),
               "tf.function": lambda: graph(src_tf, bgr_tf)}
    reference = torch_eager()
    graph_outputs = graph(src_tf, bgr_tf)
    delta = np.abs(graph_outputs[0].numpy().transpose(0, 3, 1, 2) - reference[0].numpy())
    same_cells = np.array_equal(graph_outputs[5].numpy().transpose(0, 3, 1, 2), reference[5].numpy())
    print(f"  {backbone} {width}x{height}: timing {args.iters} rounds", file=sys.stderr, flush=True)
    times = time_round_robin(runners, args.warmup, args.iters)
    return {"backbone": backbone, "size": f"{width}x{height}",
            "ms": {name: 1e3 * statistics.median(t) for name, t in times.items()},
            "patches": (int(reference[5].count_nonzero()), int(np.count_nonzero(graph_outputs[5].numpy()))),
            "same_cells": same_cells, "delta_max": float(delta.max()), "delta_mean": float(delta.mean())}


def table(rows: List[dict]) -> str:
    header = ["backbone", "size", "PyTorch eager ms", "TF eager ms", "TF tf.function ms", "TF eager / PyTorch",
              "tf.function / PyTorch", "patches (PyTorch / TF)", "same cells", "d pha max", "d pha mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ms = row["ms"]
        cells = [row["backbone"], row["size"], f"{ms['pytorch eager']:.1f}", f"{ms['tf eager']:.1f}",
                 f"{ms['tf.function']:.1f}", f"{ms['tf eager'] / ms['pytorch eager']:.2f}",
                 f"{ms['tf.function'] / ms['pytorch eager']:.2f}", "%d / %d" % row["patches"],
                 "yes" if row["same_cells"] else "no", f"{row['delta_max']:.1e}", f"{row['delta_mean']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_header(argv: List[str], args: argparse.Namespace, load_before: float, kept_memory: bool) -> None:
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
    lines = [
        f"machine: {cpu_name()}, torch {torch.__version__} ({torch.get_num_threads()} threads), tensorflow "
        f"{tf.__version__} + keras {keras.__version__} "
        f"({args.threads} intra-op threads, TF_ENABLE_ONEDNN_OPTS={onednn}); 1-minute load average "
        f"{load_before:.2f} before the run",
        "allocator: " + ("freed memory kept in the process (scripts/allocator.py)" if kept_memory
                         else "glibc defaults"),
        f"ms/frame: median of {args.iters} timed calls per path, taken round robin after {args.warmup} warm-up "
        f"call(s); batch 1, fp32, refine_mode sampling, backbone_scale {args.backbone_scale}, "
        f"refine_sample_pixels {args.sample_pixels}",
        "tf.function: one trace per backbone with input_signature [None, None, None, 3], reused for every size",
        "patches: 4x4 cells refined per frame; same cells: TF's ref_sm equals PyTorch's; d pha: absolute alpha "
        "difference, tf.function vs PyTorch (the random network is chaotic: where the cells differ, alpha "
        "differs by up to 1)",
    ]
    print("command: `" + shlex.join(["python", sys.argv[0], *argv]) + "`\n")
    print("\n".join("- " + line for line in lines) + "\n")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbones", type=comma_list(BACKBONES), default="mobilenetv2,resnet50")
    parser.add_argument("--sizes", type=size_list, default="1280x720,1920x1080", help="WIDTHxHEIGHT list")
    parser.add_argument("--warmup", type=at_least(1), default=2, help="untimed calls per path before timing")
    parser.add_argument("--iters", type=at_least(1), default=5, help="timed calls per path; the median is reported")
    return parse_with_shared_options(parser, argv, QUICK, "torch.set_num_threads and TensorFlow's intra-op threads")


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    kept_memory = False if args.glibc_defaults else keep_freed_memory()
    load_before = os.getloadavg()[0]
    rows = []
    for backbone in args.backbones:
        print(f"  {backbone}: building", file=sys.stderr, flush=True)
        model = build_model(backbone, args.backbone_scale, args.sample_pixels, args.seed)
        twin = keras_twin(model, backbone, args)
        graph = tf.function(lambda src, bgr, twin=twin: twin(src, bgr), input_signature=[ANY_IMAGE, ANY_IMAGE])
        for size in args.sizes:
            rows.append(measure(backbone, model, twin, graph, size, args))
        traces = graph.experimental_get_tracing_count()
        assert traces == 1, f"tf.function traced {traces} times"
    command = shlex.join(["python", "benchmarks/tensorflow_speed.py", *argv])
    with page.recording(args.write, "TensorFlow / Keras 3 speed (CPU)", command):
        print_header(argv, args, load_before, kept_memory)
        print(table(rows))


if __name__ == "__main__":
    main()
