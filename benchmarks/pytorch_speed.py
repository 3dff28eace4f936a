"""CPU speed of MattingRefine: milliseconds per frame for each execution path, measured side by side.

    python benchmarks/pytorch_speed.py --quick
    python benchmarks/pytorch_speed.py --backbones mobilenetv2,resnet50
    python benchmarks/pytorch_speed.py --write docs/speed-pytorch.md      # the table in docs/, as a page

Prints the command line, the machine's matmul rates and one markdown table. Weights are random but
seeded, with BatchNorm statistics recorded on an HD probe so activations stay in range; the input
is a generated soft-edged figure over a textured background, with a slightly different background shot.
"""
import argparse
import copy
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `python benchmarks/...` works

from benchmarks.flops import count_flops  # noqa: E402
from bgmv2.scripts import page  # noqa: E402
from bgmv2.scripts.allocator import keep_freed_memory  # noqa: E402
from bgmv2.pytorch_impl import BACKBONES, CROP_METHODS, REPLACE_METHODS, MattingRefine, script_model  # noqa: E402

PATHS = ("eager", "torchscript", "channels_last", "bf16-autocast", "compile", "compile-bf16", "variants")
BF16_PATHS = ("bf16-autocast", "compile-bf16")
# Warm-up calls a path needs beyond the usual: the profiling executor optimises after two runs.
MIN_WARMUP = {"torchscript": 3}
CALIBRATION_SIZE = (720, 1280)  # height, width of the BatchNorm probe
ERROR_CHANNEL = 4  # of the decoder's output: alpha, foreground (3), error, hidden (32)
QUICK = {"backbones": "mobilenetv2", "sizes": "1280x720", "paths": "eager,torchscript", "warmup": 1, "iters": 2}

Outputs = Tuple[torch.Tensor, ...]
Runner = Callable[[], Outputs]


# ---------------------------------------------------------------- inputs and weights

def smooth_noise(gen: torch.Generator, channels: int, height: int, width: int, cells: int) -> torch.Tensor:
    """Uniform noise on a grid `cells` wide, bicubically upsampled: blotches about width / cells across."""
    rows = max(2, cells * height // width)
    coarse = torch.rand(1, channels, rows, cells, generator=gen)
    return F.interpolate(coarse, (height, width), mode="bicubic", align_corners=False)


def texture(gen: torch.Generator, channels: int, height: int, width: int) -> torch.Tensor:
    """Three octaves of smooth noise, in [0, 1]."""
    octaves = [(4, 0.5), (16, 0.3), (64, 0.2)]
    return sum(amp * smooth_noise(gen, channels, height, width, cells) for cells, amp in octaves).clamp(0, 1)


def figure_alpha(gen: torch.Generator, height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W) soft-edged head and shoulders, its outline made ragged (hair-like) by noise."""
    y = torch.linspace(0, 1, height).view(-1, 1)
    x = torch.linspace(0, 1, width).view(1, -1) * (width / height)
    cx = 0.5 * width / height
    head = 1 - (((x - cx) / 0.13) ** 2 + ((y - 0.35) / 0.17) ** 2).sqrt()
    body = 1 - (((x - cx) / 0.35) ** 2 + ((y - 1.05) / 0.45) ** 2).sqrt()
    inside = torch.maximum(head, body).view(1, 1, height, width)
    inside = inside + 0.08 * (smooth_noise(gen, 1, height, width, 96) - 0.5)
    return (inside * height / 30).clamp(0, 1)  # soft edge ~5 px wide at the head, ~13 px at the shoulders


def make_pair(height: int, width: int, seed: int, batch: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """(src, bgr), each (batch, 3, H, W) in [0, 1]: a composite and a shifted, re-exposed background shot."""
    gen = torch.Generator().manual_seed(seed)
    srcs, bgrs = [], []
    for _ in range(batch):
        background = texture(gen, 3, height, width + 2)
        foreground = (torch.rand(1, 3, 1, 1, generator=gen) * 0.6 + 0.2
                      + 0.3 * (texture(gen, 3, height, width) - 0.5)).clamp(0, 1)
        alpha = figure_alpha(gen, height, width)
        src = alpha * foreground + (1 - alpha) * background[..., 1:-1]
        gain = 1 + 0.04 * (torch.rand(1, 3, 1, 1, generator=gen) - 0.5)
        bgr = background[..., 2:] * gain  # one-pixel shift, slightly different exposure
        srcs.append(src + 0.01 * torch.randn(src.shape, generator=gen))
        bgrs.append(bgr + 0.01 * torch.randn(bgr.shape, generator=gen))
    return torch.cat(srcs).clamp(0, 1), torch.cat(bgrs).clamp(0, 1)


def record_batchnorm(model: MattingRefine, src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
    """Set every BatchNorm's statistics to those of one train-mode pass; return the decoder's output."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one pass, exactly that batch's statistics
    outputs = []
    hook = model.decoder.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    model.train()
    with torch.no_grad():
        model(src, bgr)
    hook.remove()
    return outputs[0]


def build_model(backbone: str, backbone_scale: float, sample_pixels: int, seed: int) -> MattingRefine:
    """Seeded random weights, calibrated on a 1280x720 probe so activations stay in range.

    BatchNorm statistics come from a train-mode pass. The decoder's last bias is then shifted so its
    output channels average 0 on the probe, except the error channel, which averages two standard
    deviations above 0: with arbitrary signs the error can be <= 0 almost everywhere and the refiner
    (which drops zero-error cells) would have nothing to do; this way most cells have some error, as
    with trained weights, and the refiner takes its full quota even where bf16 rounding moves the
    (chaotic, random) network's outputs. A second pass records the refiner's statistics for the
    shifted outputs.
    """
    torch.manual_seed(seed)
    model = MattingRefine(backbone, backbone_scale=backbone_scale, refine_mode="sampling",
                          refine_sample_pixels=sample_pixels)
    # HD, not a small crop: at the backbone's quarter scale a 256x256 probe leaves ASPP 4x4 maps,
    # whose statistics do not carry over. Batch 2: ASPP's pooled branch has 1x1 maps.
    probe = make_pair(*CALIBRATION_SIZE, seed + 1, batch=2)
    decoded = record_batchnorm(model, *probe)
    target = torch.zeros(decoded.size(1))
    target[ERROR_CHANNEL] = 2 * decoded[:, ERROR_CHANNEL].std()
    with torch.no_grad():
        model.decoder.conv4.bias += target - decoded.mean(dim=(0, 2, 3))
    record_batchnorm(model, *probe)
    return model.eval()


# ---------------------------------------------------------------- machine

def matmul_rate(dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Best-of-`repeats` GFLOP/s of an n x n by n x n matmul (2 n^3 FLOPs)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def bf16_unsupported() -> Optional[str]:
    """Why bf16 would not run natively here, or None where it does."""
    if not torch.backends.mkldnn.is_available():
        return "oneDNN (mkldnn) is not available in this torch build"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16"
    return None


def allocator_env() -> Dict[str, str]:
    """Environment variables that change how memory is allocated, and so the timings."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "LD_PRELOAD")}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------- execution paths

def autocast_bf16(run: Runner) -> Runner:
    def wrapped() -> Outputs:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run()
    return wrapped


def prepare_eager(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    return (lambda: model(src, bgr)), ""


def prepare_torchscript(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    """Frozen + optimize_for_inference where that runs; plain scripted otherwise."""
    scripted = script_model(copy.deepcopy(model))
    try:
        optimized = torch.jit.optimize_for_inference(torch.jit.freeze(scripted))
        with torch.inference_mode():
            optimized(src, bgr)
        return (lambda: optimized(src, bgr)), "frozen + optimize_for_inference"
    except Exception as error:  # noqa: BLE001 - any failure means: time the plain scripted module
        return (lambda: scripted(src, bgr)), f"plain scripted (freeze failed: {error_text(error)})"


def prepare_channels_last(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    src = src.contiguous(memory_format=torch.channels_last)
    bgr = bgr.contiguous(memory_format=torch.channels_last)
    return (lambda: model(src, bgr)), ""


def prepare_bf16_autocast(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    run, _ = prepare_channels_last(model, src, bgr)
    return autocast_bf16(run), "channels_last"


def compiled_static(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """torch.compile of the static-shape sampling path (no `nonzero`, no graph break), weights frozen."""
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True  # constant-fold BatchNorm into the convs, prepack oneDNN weights
    model = copy.deepcopy(model)
    model.refiner.static_shapes = True
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model)


def prepare_compile(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    compiled = compiled_static(model)
    return (lambda: compiled(src, bgr)), "static shapes, frozen"


def prepare_compile_bf16(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
    compiled = compiled_static(model, channels_last=True)
    src = src.contiguous(memory_format=torch.channels_last)
    bgr = bgr.contiguous(memory_format=torch.channels_last)
    return autocast_bf16(lambda: compiled(src, bgr)), "static shapes, frozen, channels_last"


def prepare_variant(crop: str, replace: str) -> Callable:
    """Eager fp32 with the refiner's patch crop and replace methods set."""
    def prepare(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> Tuple[Runner, str]:
        model = copy.deepcopy(model)
        model.refiner.patch_crop_method = crop
        model.refiner.patch_replace_method = replace
        return prepare_eager(model, src, bgr)
    return prepare


PREPARE = {"eager": prepare_eager, "torchscript": prepare_torchscript,
           "channels_last": prepare_channels_last, "bf16-autocast": prepare_bf16_autocast,
           "compile": prepare_compile, "compile-bf16": prepare_compile_bf16}


def path_rows(paths: List[str], with_variants: bool) -> List[Tuple[str, Callable]]:
    """(row name, prepare function) for the requested paths, variants last."""
    rows = [(path, PREPARE[path]) for path in paths if path != "variants"]
    if with_variants:
        rows += [(f"eager {crop}+{replace}", prepare_variant(crop, replace))
                 for crop in CROP_METHODS for replace in REPLACE_METHODS]
    return rows


# ---------------------------------------------------------------- measuring

@dataclass
class Row:
    backbone: str
    size: str
    path: str
    flops: int
    run: Optional[Runner] = field(default=None, repr=False)
    times: List[float] = field(default_factory=list)
    faults: List[int] = field(default_factory=list)
    patches: Optional[int] = None
    delta_max: Optional[float] = None
    delta_mean: Optional[float] = None
    note: str = ""

    def fail(self, error: Exception) -> None:
        self.run, self.times, self.note = None, [], f"failed: {error_text(error)}"


def error_text(error: Exception, limit: int = 160) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def prepare_row(row: Row, prepare: Callable, model: nn.Module, src: torch.Tensor, bgr: torch.Tensor,
                reference: Outputs, warmup: int) -> None:
    """Build the path and warm it up; record its refined patches and alpha difference from eager fp32."""
    try:
        run, row.note = prepare(model, src, bgr)
        with torch.inference_mode():
            start = time.perf_counter()
            outputs = run()
            first = time.perf_counter() - start
            for _ in range(max(warmup, MIN_WARMUP.get(row.path, 1)) - 1):
                run()
    except Exception as error:  # noqa: BLE001 - a failing path is reported in the table, not fatal
        row.fail(error)
        return
    row.run = run
    if row.path.startswith("compile"):
        row.note = ", ".join(filter(None, [row.note, f"first call {first:.0f} s"]))
    row.patches = int(outputs[5].count_nonzero())  # not .sum(): under autocast ref is bf16, its sum rounds
    delta = (outputs[0].float() - reference[0]).abs()
    row.delta_max, row.delta_mean = float(delta.max()), float(delta.mean())


def minor_faults() -> int:
    """Page faults of this process so far that mapped fresh memory (no disk read)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_rows(rows: List[Row], iters: int) -> None:
    """Round robin: each timed round calls every path once, so drift in machine speed hits all alike."""
    with torch.inference_mode():
        for _ in range(iters):
            for row in rows:
                if row.run is None:
                    continue
                try:
                    faults = minor_faults()
                    start = time.perf_counter()
                    row.run()
                    row.times.append(time.perf_counter() - start)
                    row.faults.append(minor_faults() - faults)
                except Exception as error:  # noqa: BLE001
                    row.fail(error)


def run_size(backbone: str, model: MattingRefine, size: Tuple[int, int], args: argparse.Namespace,
             skip_bf16: Optional[str]) -> List[Row]:
    """All requested paths for one backbone and size, timed side by side."""
    width, height = size
    src, bgr = make_pair(height, width, args.seed)
    flops = count_flops(model, src, bgr)
    with torch.inference_mode():
        reference = model(src, bgr)
    torch._dynamo.reset()  # compiled code from earlier sizes would only use up the recompile limit
    with_variants = "variants" in args.paths and (args.variants_all_backbones or backbone == "mobilenetv2")
    rows = []
    for name, prepare in path_rows(args.paths, with_variants):
        row = Row(backbone, f"{width}x{height}", name, flops)
        print(f"  {backbone} {row.size} {name}: preparing", file=sys.stderr, flush=True)
        if name in BF16_PATHS and skip_bf16:
            row.note = f"skipped: {skip_bf16}"
        else:
            prepare_row(row, prepare, model, src, bgr, reference, args.warmup)
        rows.append(row)
    print(f"  {backbone} {width}x{height}: timing {args.iters} rounds", file=sys.stderr, flush=True)
    time_rows(rows, args.iters)
    for row in rows:
        row.run = None  # free compiled and copied models before the next size
    return rows


# ---------------------------------------------------------------- report

def fmt(value: Optional[float], spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(rows: List[Row], fp32_rate: float, bf16_rate: Optional[float]) -> str:
    header = ["backbone", "size", "path", "ms/frame", "min ms", "faults/frame", "patches", "GFLOP", "floor ms",
              "x floor", "x bf16 floor", "d pha max", "d pha mean", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ms = 1e3 * statistics.median(row.times) if row.times else None
        floor = 1e3 * row.flops / (fp32_rate * 1e9)
        bf16_ratio = None
        if ms is not None and bf16_rate and row.path in BF16_PATHS:
            bf16_ratio = ms / (1e3 * row.flops / (bf16_rate * 1e9))
        cells = [row.backbone, row.size, row.path, fmt(ms, ".1f"),
                 fmt(1e3 * min(row.times) if row.times else None, ".1f"),
                 fmt(int(statistics.median(row.faults)) if row.faults else None, "d"),
                 fmt(row.patches, "d"), f"{row.flops / 1e9:.2f}", f"{floor:.1f}",
                 fmt(ms / floor if ms is not None else None, ".2f"), fmt(bf16_ratio, ".2f"),
                 fmt(row.delta_max, ".1e"), fmt(row.delta_mean, ".1e"), row.note.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_header(argv: List[str], args: argparse.Namespace, fp32_rate: float, bf16_rate: Optional[float],
                 skip_bf16: Optional[str], load_before: float) -> None:
    n = args.matmul_size
    bf16 = f"{bf16_rate:.1f} GFLOP/s" if bf16_rate else f"skipped: {skip_bf16}"
    lines = [
        f"machine: torch {torch.__version__}, {cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), "
        f"{torch.get_num_threads()} threads; 1-minute load average {load_before:.2f} before the run",
        "allocator settings: " + (" ".join(f"{k}={v}" for k, v in allocator_env().items()) or "no environment variables")
        + ("; freed memory kept in the process (scripts/allocator.py)" if getattr(args, "kept_memory", False)
           else "; glibc defaults (--glibc-defaults)"),
        f"fp32 matmul ({n}x{n}, best of 10): {fp32_rate:.1f} GFLOP/s",
        f"bf16 matmul ({n}x{n}, best of 10): {bf16}",
        f"ms/frame: median of {args.iters} timed calls per path, taken round robin (each round calls every "
        f"path once) after {args.warmup} warm-up call(s) (torchscript at least 3); batch 1, backbone_scale "
        f"{args.backbone_scale}, refine_sample_pixels {args.sample_pixels}",
        "faults/frame: minor page faults per call (median), i.e. memory the allocator handed back to "
        "the OS and had to map again; patches: 4x4 cells the refiner recomputed per frame; GFLOP: convolutions and matmuls actually "
        "executed (eager fp32, 2 FLOPs per multiply-add)",
        "floor ms: GFLOP at the fp32 matmul rate; x floor: ms/frame over it; x bf16 floor: ms/frame over "
        "GFLOP at the bf16 matmul rate",
        "compile rows: the first call includes compilation (short where Inductor's on-disk cache "
        "already has the kernels)",
        "d pha: absolute alpha difference from eager fp32. The random network is chaotic (a 0.4 % input "
        "perturbation changes alpha by tens of percent in fp32 too), so for bf16 rows it says nothing "
        "about accuracy with trained weights",
    ]
    print("command: `" + shlex.join(["python", sys.argv[0], *argv]) + "`\n")
    print("\n".join("- " + line for line in lines) + "\n")


# ---------------------------------------------------------------- command line

def comma_list(choices) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{','.join(bad) or text!r}: choose from {','.join(choices)}")
        return items
    return parse


def size_list(text: str) -> List[Tuple[int, int]]:
    try:
        sizes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 2 or s[0] % 4 or s[1] % 4 or min(s) <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT,... with both divisible by 4")
    return sizes


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum}")
        return value
    return parse


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbones", type=comma_list(BACKBONES), default=",".join(BACKBONES))
    parser.add_argument("--sizes", type=size_list, default="1920x1080,1280x720", help="WIDTHxHEIGHT list")
    parser.add_argument("--paths", type=comma_list(PATHS), default=",".join(PATHS),
                        help="'variants': eager fp32 with every patch crop x replace method")
    parser.add_argument("--variants-all-backbones", action="store_true",
                        help="run the crop/replace variants for every backbone, not only mobilenetv2")
    parser.add_argument("--warmup", type=at_least(1), default=2,
                        help="untimed calls per path before timing (torchscript gets at least 3)")
    parser.add_argument("--iters", type=at_least(1), default=5, help="timed calls; the median is reported")
    parser.add_argument("--matmul-size", type=at_least(1), default=2048, help="n of the n x n matmul rate probe")
    return parse_with_shared_options(parser, argv, QUICK, "torch.set_num_threads")


def parse_with_shared_options(parser: argparse.ArgumentParser, argv: Optional[List[str]], quick: Dict[str, object],
                              threads_help: str) -> argparse.Namespace:
    """Add the options every speed benchmark here takes (threads, model knobs, seed, allocator,
    --quick) and parse; --quick swaps in `quick` as defaults, so explicit options still win."""
    parser.add_argument("--threads", type=at_least(1), default=len(os.sched_getaffinity(0)), help=threads_help)
    parser.add_argument("--backbone-scale", type=float, default=0.25)
    parser.add_argument("--sample-pixels", type=at_least(1), default=80_000, help="refine_sample_pixels")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and inputs")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is (by default freed memory is kept in the process, "
                             "see scripts/allocator.py, as the bgmv2 apps do)")
    parser.add_argument("--write", metavar="PAGE", help="also write what is printed to this Markdown page "
                        "(docs/speed-pytorch.md, docs/speed-tensorflow.md), under a header naming the command, date, machine and load")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: " + ", ".join(f"{k} {v}" for k, v in quick.items())
                        + " (explicit options still win)")
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.glibc_defaults:
        args.kept_memory = keep_freed_memory()
    load_before = os.getloadavg()[0]
    skip_bf16 = bf16_unsupported()
    fp32_rate = matmul_rate(torch.float32, args.matmul_size)
    bf16_rate = None if skip_bf16 else matmul_rate(torch.bfloat16, args.matmul_size)
    rows: List[Row] = []
    for backbone in args.backbones:
        model = build_model(backbone, args.backbone_scale, args.sample_pixels, args.seed)
        for size in args.sizes:
            rows += run_size(backbone, model, size, args, skip_bf16)
    with page.recording(args.write, "PyTorch speed (CPU)", shlex.join(["python", "benchmarks/pytorch_speed.py", *argv])):
        print_header(argv, args, fp32_rate, bf16_rate, skip_bf16, load_before)
        print(table(rows, fp32_rate, bf16_rate))


if __name__ == "__main__":
    main()
