"""Does the fast backend keep eager's matte on every frame of a video, not only the checked ones?

    python -m benchmarks.fast_frames                          # 60 frames at 320x240 and 1279x719
    python -m benchmarks.fast_frames --frames 60 --sizes 320x240 1279x719 --precision bf16 --write docs/fast-frames.md

Runs a synthetic 60-frame clip (a subject swaying over a textured background, sensor noise per frame)
through the runners `bgmv2 video` uses (`scripts.media.runner.load_runner`: --backend torch and
--backend fast on the shipped model), frame by frame, and judges EVERY fast frame against eager's by
the one acceptance rule (`converters.acceptance`, limits from eager's own float64 error on the first
frame) and by the 8-bit figure (share of alpha values more than 2 levels off; the fast path's limit is
0.5%). The fast runner itself checks only its first frames and every 30th; this measures the rest.
"""
import argparse
import sys

import numpy as np


def parse_size(text: str):
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def app_args(backend: str, precision):
    return argparse.Namespace(model=None, backend=backend, kind=None, backbone=None, preset=None, device="cpu",
                              precision=precision, threads=None, backbone_scale=None, refine_mode=None,
                              refine_sample_pixels=None, refine_threshold=None, refine_prevent_oversampling=None,
                              refine_kernel_size=None)


def measure(height: int, width: int, frames: int, precision, log) -> list:
    """One row per frame: (index, what ran, rule ok, violations, 8-bit share, max |d alpha|)."""
    import torch
    from bgmv2.converters.acceptance import LEVELS
    from bgmv2.converters.agreement import ParityMetrics
    from bgmv2.converters.fast.check import limits_for
    from bgmv2.knobs import defaults
    from bgmv2.scripts.media.runner import load_runner
    from bgmv2.scripts.media.synth import synthetic_clip
    clip, background = synthetic_clip(frames, height, width, seed=7)
    eager = load_runner(app_args("torch", None), announce=False)
    fast = load_runner(app_args("fast", precision), announce=False, frames=frames)
    fast.runner.log = log
    back_eager, back_fast = eager.prepare(background), fast.prepare(background)
    knobs = defaults()
    limits, rows = {}, []
    for index, frame in enumerate(clip):
        want = eager(eager.prepare(frame), back_eager)
        got = fast(fast.prepare(frame), back_fast)
        chosen = next(iter(fast.runner.chosen.values()), "?")
        precision_now = fast.runner.precision
        if precision_now not in limits:
            model = eager.runner.model
            src = eager.prepare(frame)
            limits[precision_now] = limits_for(model, src, back_eager, knobs, precision_now)
        metrics = ParityMetrics()
        metrics.add({k: v.numpy() for k, v in want.items()}, {k: v.numpy() for k, v in got.items()}, knobs,
                    limits[precision_now].band)
        violations = limits[precision_now].violations(metrics)
        pha = metrics.outputs["pha"]
        rows.append((index, chosen, not violations, violations, pha.share_over(LEVELS), pha.max_abs))
    return rows


def table(rows, height, width) -> list:
    lines = [f"### {width}x{height}", "", "| frame | ran | rule | 8-bit alpha > 2 levels off | max |d alpha| |",
             "|---|---|---|---|---|"]
    for index, chosen, ok, violations, share, worst in rows:
        rule = "ok" if ok else "FAIL: " + "; ".join(violations[:2])
        lines.append(f"| {index} | {chosen} | {rule} | {100 * share:.3f}% | {worst:.1e} |")
    failed = sum(1 for r in rows if not r[2] or r[4] > 0.005)
    lines += ["", f"{len(rows) - failed} of {len(rows)} frames within the rule and the 8-bit limit (0.5%).", ""]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sizes", nargs="+", default=["320x240", "1279x719"])
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="restrict the fast path (default: its choice)")
    parser.add_argument("--write", metavar="PAGE", help="also write what is printed to this Markdown page")
    args = parser.parse_args(argv)
    import shlex
    from bgmv2.scripts import page
    command = shlex.join(["python", "-m", "benchmarks.fast_frames", *(argv if argv is not None else sys.argv[1:])])
    with page.recording(args.write, "The fast backend, frame by frame", command):
        choices = []
        print(__doc__.split("\n\n", 2)[2].strip() + "\n")
        for size in args.sizes:
            height, width = parse_size(size)
            rows = measure(height, width, args.frames, args.precision, choices.append)
            print("What the fast path chose: " + choices[-1] + "\n")
            print("\n".join(table(rows, height, width)) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
