"""GPU check of the fast backend: fps of eager and fast side by side, the targets, and the matte check.

    python benchmarks/gpu_check.py                 # logs to $OUT (if set) and stdout
    python benchmarks/gpu_check.py --quick         # fewer frames, no 4K, no pipeline

Measures, on the first CUDA device (eager = the apps' TorchRunner in the same precision):
- MobileNetV2 (the shipped model) HD 1920x1080 fp16, batch 1 and batch 8 (targets: >= 600 and
  >= 1500 frames/s for fast);
- MobileNetV2 4K 3840x2160 fp16 (preset 4k): fast / eager >= 3;
- ResNet-50 HD fp16 (seeded random weights with recorded BatchNorm statistics; no download): fast / eager >= 3;
- `bgmv2 bench --backend fast --device cuda --size 1920x1080`: video pipeline >= 85% of model only.
Each fast row says what the fast path chose and how its matte compared with eager's (the choice line).
Exit status 0 when every target is met, 1 otherwise.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `python benchmarks/...` works

import torch  # noqa: E402

OUT = Path(os.environ.get("OUT") or ".")
LINES = []


def log(text: str = "") -> None:
    print(text, flush=True)
    LINES.append(text)
    if os.environ.get("OUT"):
        (OUT / "gpu_check.md").write_text("\n".join(LINES) + "\n")


def fps(runner, src, bgr, calls: int, blocks: int = 5) -> float:
    """Frames per second: median over `blocks` timed blocks of `calls` calls (CUDA synchronised)."""
    per_block = []
    for _ in range(blocks):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            runner(src, bgr)
        torch.cuda.synchronize()
        per_block.append(time.perf_counter() - start)
    return src.shape[0] * calls / statistics.median(per_block)


def inputs(runner, width, height, batch, seed=0):
    from bgmv2.scripts.media.synth import synthetic_clip
    frames, bgr = synthetic_clip(max(batch, 2), height, width, seed=seed)
    src = torch.cat([runner.prepare(f) for f in frames[:batch]])
    back = runner.prepare(bgr)
    return src, back.expand(batch, *back.shape[1:]).contiguous()


def compare(name, model_factory, width, height, batch, calls, knobs, target=None, target_fps=None):
    from bgmv2.converters.fast import fast_runner
    from bgmv2.converters.torch_formats import torch_runner
    from bgmv2.scripts.media.runner import FrameRunner
    device = torch.device("cuda")
    model = model_factory()
    choice_lines = []
    fast = FrameRunner(fast_runner(model, device, "fp16", log=choice_lines.append, frames=10_000))
    half = model_factory().to(memory_format=torch.channels_last)
    eager = FrameRunner(torch_runner(half, "model", "(eager)", {}, "fp16", "cuda:0"))
    src, bgr = inputs(fast, width, height, batch)
    start = time.perf_counter()
    for _ in range(3):  # choose (capture, check, time), then the checked frames
        fast(src, bgr)
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    eager_src, eager_bgr = src.half(), bgr.half()
    for _ in range(3):
        eager(eager_src, eager_bgr)
    rows = {"eager": [], "fast": []}
    for round_ in range(3):  # alternate, median
        order = [("eager", eager, eager_src, eager_bgr), ("fast", fast, src, bgr)]
        for label, runner, s, b in (order if round_ % 2 == 0 else order[::-1]):
            rows[label].append(fps(runner, s, b, calls))
    e, f = statistics.median(rows["eager"]), statistics.median(rows["fast"])
    ok = (target is None or f / e >= target) and (target_fps is None or f >= target_fps)
    goal = " and ".join(filter(None, [f"fast / eager >= {target}" if target else "",
                                      f"fast >= {target_fps} fps" if target_fps else ""]))
    log(f"| {name} | {width}x{height} | {batch} | {e:.1f} | {f:.1f} | {f / e:.2f} | {goal} | "
        f"{'MET' if ok else 'NOT MET'} | {first:.1f} |")
    for line in choice_lines:
        log(f"|  | choice: {line.replace('|', '/')} | | | | | | | |")
    return ok


def shipped():
    from bgmv2.pytorch_impl import load_model
    from bgmv2.scripts.media.runner import shipped_model_path
    return lambda **knobs: load_model(shipped_model_path(), **knobs).eval()


def resnet50():
    from benchmarks.pytorch_speed import build_model
    model = build_model("resnet50", 0.25, 80_000, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def make():
        from bgmv2.pytorch_impl import MattingRefine
        fresh = MattingRefine("resnet50")
        fresh.load_state_dict(state)
        return fresh.eval()
    return make


def pipeline_check(frames: int):
    command = [sys.executable, "-m", "bgmv2.scripts.cli", "bench", "--backend", "fast", "--device", "cuda", "--precision",
               "fp16", "--size", "1920x1080", "--frames", str(frames), "--rounds", "3"]
    result = subprocess.run(command, capture_output=True, text=True)
    (OUT / "bench_1080p.txt").write_text(result.stdout + "\n--- stderr ---\n" + result.stderr[-20000:]) \
        if os.environ.get("OUT") else None
    log("\n`" + " ".join(command[1:]) + "`\n")
    log(result.stdout.strip() or result.stderr[-3000:])
    ratio = None
    for line in result.stdout.splitlines():
        if line.startswith("fast pipeline / model only:"):
            ratio = float(line.split(":")[1].split("%")[0]) / 100
    ok = ratio is not None and ratio >= 0.85
    log(f"\npipeline >= 85% of model only: {'MET' if ok else 'NOT MET'} ({ratio})")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    if os.environ.get("OUT"):
        OUT.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("BGMV2_HOME", str(OUT / "bgmv2_home"))
    log(f"# gpu_check: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}\n")
    log("| model | size | batch | eager fps | fast fps | fast / eager | target | | first calls s |")
    log("|---|---|---|---|---|---|---|---|---|")
    mobilenet = shipped()
    calls = 10 if args.quick else 50
    results = [
        compare("mobilenetv2 fp16", mobilenet, 1920, 1080, 1, calls, {}, target_fps=600),
        compare("mobilenetv2 fp16", mobilenet, 1920, 1080, 8, max(2, calls // 8), {}, target_fps=1500),
    ]
    if not args.quick:
        results.append(compare("mobilenetv2 fp16 4k", lambda: mobilenet(backbone_scale=0.125,
                                                                          refine_sample_pixels=320_000),
                               3840, 2160, 1, calls // 2, {}, target=3))
    results.append(compare("resnet50 fp16", resnet50(), 1920, 1080, 1, calls, {}, target=3))
    if not args.quick:
        results.append(pipeline_check(64))
    log(f"\nall targets met: {all(results)}")
    if os.environ.get("OUT"):
        (OUT / "gpu_check.json").write_text(json.dumps({"met": results}))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
