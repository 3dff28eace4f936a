"""ONNX Runtime (CPU) against PyTorch eager for the sampling-mode export, side by side in one run.

    python benchmarks/onnx_speed.py                       # mobilenetv2 at 1280x720 and 1920x1080
    python benchmarks/onnx_speed.py --backbones mobilenetv2,resnet50 --iters 9
    python benchmarks/onnx_speed.py --variants --write docs/speed-onnx.md       # the table in docs/, as a page

Exports each backbone once with `converters` (the exporter `bgmv2 convert` uses: torch.onnx dynamo,
opset 18, dynamic batch/height/width) in the `static` sampling variant (and `tensorrt` with
--variants), then times, round robin, PyTorch eager fp32 and ONNX Runtime under several session
options, reporting the median milliseconds per frame. Weights and inputs are those of
`benchmarks/pytorch_speed.py` (seeded random weights calibrated so the refiner has real work; a
generated composite); `d pha` is the largest alpha difference from eager, `ref` the share of refined
cells that agree. Batch 1, backbone_scale 0.25, 80,000 sampled pixels (5,000 patches).

    python benchmarks/onnx_speed.py --shipped --variant-list static,nonzero,tensorrt --sizes 1280x720 --iters 15

`--shipped`: the shipped model (weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors, trained) on the
realistic composites every conversion is checked on (`bgmv2.converters.probes`), instead of random weights:
how many cells really have any error decides whether `nonzero` (refines only those) beats `static`
(always refines k). Each variant runs with the runner's session options only, interleaved round robin.
"""
import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `python benchmarks/...` works

from benchmarks.pytorch_speed import build_model, cpu_name, make_pair  # noqa: E402
from bgmv2.scripts import page  # noqa: E402
from bgmv2.scripts.allocator import keep_freed_memory  # noqa: E402


def export(model, variant: str, folder: str) -> str:
    from bgmv2.converters import meta
    from bgmv2.converters.onnx_format import write_onnx
    from bgmv2.converters.torch_formats import spec_from_torch_state
    spec = spec_from_torch_state(model.state_dict(), "(benchmark weights)", {}, {})
    path = os.path.join(folder, f"{model.backbone_name}_{variant}.onnx")
    metadata = meta.describe(spec, "onnx", "fp32", "NCHW", None, None, onnx_variant=variant)
    write_onnx(spec, path, metadata, sampling_variant=variant)
    return path


def shipped_model():
    """The shipped trained MobileNetV2 (fp16 file, run in fp32), HD preset knobs."""
    from bgmv2.converters.api import read
    from bgmv2.converters.torch_formats import torch_model
    from bgmv2.weights.registry import load_registry
    spec = read(load_registry().default("mobilenetv2").shipped_path)
    model = torch_model(spec)
    model.backbone_name = "mobilenetv2"
    return model


def probe_tensors(height: int, width: int):
    from bgmv2.converters.probes import synthetic_probe
    probe = synthetic_probe(height, width, 1, seed=2021)
    return torch.from_numpy(probe.src), torch.from_numpy(probe.bgr)


def ort_session(path: str, threads: int, level: str, spinning: bool):
    import onnxruntime as ort
    from bgmv2.converters.onnx_format import session_options
    options = session_options(threads, level)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv2")
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="WIDTHxHEIGHT, comma separated")
    parser.add_argument("--iters", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both runtimes")
    parser.add_argument("--variants", action="store_true", help="also time the tensorrt variant")
    parser.add_argument("--variant-list", default=None,
                        help="variants to export and time, comma separated (static, nonzero, tensorrt)")
    parser.add_argument("--shipped", action="store_true",
                        help="the shipped trained model on the realistic probe composite (not random weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", metavar="PAGE", help="also write what is printed to this Markdown page (e.g. "
                        "docs/speed-onnx.md), under a header naming the command, date, machine and load")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    title = "ONNX sampling variants on the shipped model (CPU)" if args.shipped else "ONNX Runtime speed (CPU)"
    with page.recording(args.write, title, shlex.join(["python", "benchmarks/onnx_speed.py", *argv])):
        return measure(args, argv)


def measure(args: argparse.Namespace, argv) -> int:
    """Export, time round robin and print the table."""
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    import onnxruntime as ort
    print(f"$ python benchmarks/onnx_speed.py {shlex.join(argv)}")
    print(f"{cpu_name()}, {os.cpu_count()} cores, {platform.python_version()}; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}; {args.threads} threads; load average {os.getloadavg()[0]:.2f} at start")
    configs = [("ort all", "all", True), ("ort extended", "extended", True), ("ort basic", "basic", True),
               ("ort all, no spinning", "all", False)]
    print()
    print("| backbone | size | runtime | session options | ms/frame (median) | x eager | d pha | ref agree |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for backbone in (["mobilenetv2"] if args.shipped else args.backbones.split(",")):
            model = shipped_model() if args.shipped else build_model(backbone, 0.25, 80_000, args.seed)
            start = time.perf_counter()
            variants = ["static"] + (["tensorrt"] if args.variants else [])
            if args.variant_list:
                variants = args.variant_list.split(",")
            paths = {variant: export(model, variant, folder) for variant in variants}
            export_s = time.perf_counter() - start
            sessions = []
            for variant, path in paths.items():
                for name, level, spinning in (configs if variant == "static" and not args.shipped else configs[:1]):
                    sessions.append((f"onnxruntime {variant}", name.replace("ort ", "graph optimization ")
                                     + f", {args.threads} intra-op threads",
                                     ort_session(path, args.threads, level, spinning)))
            for size in args.sizes.split(","):
                width, height = (int(v) for v in size.lower().split("x"))
                src, bgr = probe_tensors(height, width) if args.shipped else make_pair(height, width, args.seed + 7)
                feeds = {"src": src.numpy(), "bgr": bgr.numpy()}
                with torch.inference_mode():
                    reference = [o.numpy() for o in model(src, bgr)]
                rows = [("pytorch eager", "fp32, NCHW", lambda: model(src, bgr))]
                rows += [(runtime, options, (lambda s=session: s.run(None, feeds))) for runtime, options, session
                         in sessions]
                checks = []
                for runtime, options, run in rows[1:]:
                    outputs = run()
                    checks.append((float(np.abs(outputs[0] - reference[0]).max()),
                                   float((outputs[5] == reference[5]).mean())))
                times = [[] for _ in rows]
                with torch.inference_mode():
                    for round_ in range(args.warmup + args.iters):
                        for i, (_, _, run) in enumerate(rows):  # round robin: drift hits every row alike
                            begin = time.perf_counter()
                            run()
                            if round_ >= args.warmup:
                                times[i].append(time.perf_counter() - begin)
                if args.shipped:
                    err = torch.nn.functional.interpolate(torch.from_numpy(reference[4]), size=reference[5].shape[-2:],
                                                          mode="bilinear", align_corners=False)
                    print(f"(cells with any error: {int((err > 0).sum())} of {err.numel()}; k = 5000)")
                eager_ms = 1000 * statistics.median(times[0])
                for i, (runtime, options, _) in enumerate(rows):
                    ms = 1000 * statistics.median(times[i])
                    d, agree = ("-", "-") if i == 0 else (f"{checks[i - 1][0]:.1e}", f"{100 * checks[i - 1][1]:.2f}%")
                    print(f"| {backbone} | {width}x{height} | {runtime} | {options} | {ms:.1f} | "
                          f"{ms / eager_ms:.2f} | {d} | {agree} |", flush=True)
            print(f"(export of {backbone}: {export_s:.0f} s for {len(paths)} variant(s))")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
