"""`bgmv2 bench`: the model's own throughput and the video pipeline's, measured in one run.

    bgmv2 bench                                   # shipped model, 1280x720, CPU or CUDA
    bgmv2 bench --model pytorch_resnet50.pth --size 1920x1080 --device cuda --precision fp16
    bgmv2 bench --model model.onnx --frames 48 --rounds 5 --sequential
    bgmv2 bench --backend fast                    # eager and the fast path side by side: `fast / eager: ...`
    bgmv2 bench --backend fast --write docs/speed-fast.md   # and keep what it prints as a page

Rows (median over --rounds; each round measures every row back to back, in alternating order, so
load changes hit the rows alike; the pipeline's share is the median of the rounds' ratios):
- model only: the runner on frame pairs already in memory as input tensors (CUDA synchronised
  before the clock stops); fixed work per frame (the same frames, sampling mode refines the same
  number of patches on each);
- video pipeline: `bgmv2 video` end to end on a generated clip of those frames: open, decode, model,
  composite, encode (libx264), close, with decoding and encoding overlapped with the model;
- sequential (--sequential): the same stages one after another on one thread, as upstream's script.
With --backend fast every row is measured for eager (--backend torch, same precision) and for the fast
path in the same rounds, and a line `fast / eager:` gives their ratios (median of the rounds' ratios)
and the fast path's first call (where it compiles, checks and times its candidates) separately.
"""
import argparse

from bgmv2.scripts.arg_types import float_in, int_at_least, int_in
from bgmv2.scripts.media.options import X264_PRESETS, add_model_arguments, size_wxh, OUTPUT_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--size", type=size_wxh, default=(1280, 720), metavar="WxH", help="frame size (default 1280x720)")
    parser.add_argument("--frames", type=int_at_least(1), default=32, help="frames per measurement (default 32)")
    parser.add_argument("--rounds", type=int_at_least(1), default=3,
                        help="measurements per row; the median is shown (default 3)")
    parser.add_argument("--warmup", type=int_at_least(0), default=2, help="model calls before timing (default 2)")
    parser.add_argument("--video", help="benchmark on this video (its first --frames frames) instead of a generated clip")
    parser.add_argument("--bgr", help="background for --video (default: its first frame)")
    parser.add_argument("--output-types", nargs="+", choices=OUTPUT_TYPES, default=["com"], metavar="TYPE",
                        help="what the pipeline writes (default: com)")
    parser.add_argument("--codec", default="libx264", help="video encoder of the pipeline rows (default: libx264)")
    parser.add_argument("--crf", type=int_in(0, 51), default=18, help="x264 quality 0 to 51 (default: 18)")
    parser.add_argument("--preset-x264", dest="x264_preset", default="veryfast", choices=X264_PRESETS, metavar="PRESET")
    parser.add_argument("--encoder-threads", type=int_at_least(0), help="default: 1 with CPU inference, FFmpeg's choice with CUDA")
    parser.add_argument("--sequential", action="store_true", help="add the one-thread pipeline (upstream's way) as a row")
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the video pipeline too (default: on; --no-pipeline: model only)")
    parser.add_argument("--min-ratio", type=float_in(0, 1, low_open=True),
                        help="exit with status 3 if the pipeline's fps is below this fraction of the model's, in "
                             "(0, 1] (e.g. 0.85)")
    parser.add_argument("--write", metavar="PAGE",
                        help="also write the results to this Markdown page (e.g. docs/speed-fast.md), under a header "
                             "naming the command, date, machine and load")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.media.app import run_app
    return run_app(bench_page, args)


def bench_page(args) -> int:
    """`bench`, its output also written to the --write page when it ends without an error."""
    import shlex
    from bgmv2.scripts import page
    title = "`bgmv2 bench --backend fast`: the fast backend against eager" if args.backend == "fast" else \
        "`bgmv2 bench`: the model alone and the video pipeline"
    with page.recording(args.write, title, shlex.join(getattr(args, "command_line", ["bgmv2", "bench"]))):
        return bench(args)


def bench_runner(args):
    """The requested model; without --model the shipped one, or random weights if it is not there."""
    import sys
    from bgmv2.scripts.media.errors import MediaError
    from bgmv2.scripts.media.runner import load_runner, shipped_model_path
    if args.model is None:
        try:
            shipped_model_path()
        except MediaError as error:
            from bgmv2.scripts.media.outputs import temporary_folder
            import torch
            from bgmv2.pytorch_impl import MattingRefine
            print(f"note: {error}\nnote: timing an untrained MattingRefine(mobilenetv2) instead (same work per frame)",
                  file=sys.stderr)
            folder = temporary_folder("bgmv2-bench-")
            args.model = f"{folder}/untrained_mobilenetv2.pth"
            torch.manual_seed(0)
            torch.save(MattingRefine("mobilenetv2").state_dict(), args.model)
    return load_runner(args, frames=args.frames * (args.rounds + 1))


def bench_media(args, folder):
    """(video path, frames in memory, background) for the measurements."""
    import numpy as np
    from bgmv2.scripts.media.decode import VideoReader, read_image, fit_background
    from bgmv2.scripts.media.errors import MediaError
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.synth import synthetic_clip, write_video
    if args.video:
        reader = VideoReader(args.video, "--video")
        frames = []
        for frame in reader:
            frames.append(frame)
            if len(frames) == args.frames:
                break
        reader.close()
        if len(frames) < args.frames:
            raise MediaError(f"--video {args.video} has {len(frames)} frame(s); pass --frames {len(frames)} or less")
        size = (frames[0].shape[1], frames[0].shape[0])
        bgr = fit_background(read_image(args.bgr), size, args.bgr, "--bgr") if args.bgr else frames[0]
        video = f"{folder}/src.mp4"
        write_video(video, frames, fps=reader.fps)
    else:
        width, height = args.size
        frames, bgr = synthetic_clip(args.frames, height, width, seed=0)
        video = f"{folder}/src.mp4"
        write_video(video, frames, fps=25)
    background = f"{folder}/bgr.png"
    write_image(background, np.ascontiguousarray(bgr))
    return video, frames, bgr, background


def time_model(runner, inputs, bgr_input) -> float:
    import time
    import torch
    sync = torch.cuda.synchronize if runner.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for src in inputs:
        runner(src, bgr_input)
    sync()
    return time.perf_counter() - start


def time_pipeline(args, runner, video, background, folder, overlap: bool) -> float:
    import time
    from bgmv2.scripts.media.video import matte_video
    ns = argparse.Namespace(
        src=video, bgr=background, resize=None, video_resize=None, output_dir=f"{folder}/out", output_types=args.output_types,
        com_bg="green", force=True, image_format="png", output_format="video", codec=args.codec, crf=args.crf,
        x264_preset=args.x264_preset, encoder_threads=args.encoder_threads, progress=False, queue_size=4,
        align=False, align_method="orb", device=str(runner.device), overlap=overlap)
    start = time.perf_counter()
    result = matte_video(ns, runner=runner, quiet=True)
    elapsed = time.perf_counter() - start
    assert result["frames"] == args.frames, result
    return elapsed


def machine_text(runner) -> str:
    import os
    import torch
    from .page import machine
    text = (f"{machine()}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    if runner.device.type == "cuda":
        text += f", {torch.cuda.get_device_name(runner.device)}"
    return text


def load_text() -> str:
    import os
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def bench_runners(args):
    """[(label, runner)]: the requested runner alone, or with --backend fast eager (same precision) and fast."""
    import copy
    if args.backend != "fast":
        return [("", bench_runner(args))]
    fast = bench_runner(args)
    eager_args = copy.copy(args)
    eager_args.backend = "torch"
    return [("eager", bench_runner(eager_args)), ("fast", fast)]


def warm_up(runner, inputs, bgr_input, calls: int) -> float:
    """Call the runner `calls` times; returns the first call's seconds (the fast path chooses there)."""
    import time
    import torch
    first = 0.0
    for i in range(calls):
        start = time.perf_counter()
        runner(inputs[i % len(inputs)], bgr_input)
        if runner.device.type == "cuda":
            torch.cuda.synchronize(runner.device)
        if i == 0:
            first = time.perf_counter() - start
    return first


def bench(args) -> int:
    import shutil
    import statistics
    import sys
    from bgmv2.scripts.media.outputs import temporary_folder

    from bgmv2.scripts.media.encode import check_codec
    if args.min_ratio is not None and not args.pipeline:
        from bgmv2.scripts.media.errors import MediaError
        raise MediaError("--min-ratio compares the pipeline with the model; leave out --no-pipeline")
    if args.pipeline or args.sequential:
        check_codec(args.codec)
    runners = bench_runners(args)
    folder = temporary_folder("bgmv2-bench-")
    firsts = {}
    try:
        print(f"preparing {args.frames} frames ...", file=sys.stderr)
        video, frames, bgr, background = bench_media(args, folder)
        height, width = frames[0].shape[:2]
        inputs, bgr_inputs = {}, {}
        for label, runner in runners:
            inputs[label] = [runner.prepare(frame) for frame in frames]
            bgr_inputs[label] = runner.prepare(bgr)
            # the fast runner chooses on its first call and checks the next one against eager: warm past both
            calls = max(args.warmup, 3) if label == "fast" else args.warmup
            firsts[label] = warm_up(runner, inputs[label], bgr_inputs[label], calls)
        before = load_text()
        names = ["model"] + (["pipeline"] if args.pipeline else []) + (["sequential"] if args.sequential else [])
        rows = {(label, name): [] for label, _ in runners for name in names}
        for round_ in range(args.rounds):
            measures = []
            for label, runner in runners:
                measures.append(((label, "model"), lambda r=runner, l=label: time_model(r, inputs[l], bgr_inputs[l])))
                if args.pipeline:
                    measures.append(((label, "pipeline"), lambda r=runner: time_pipeline(args, r, video, background,
                                                                                         folder, True)))
                if args.sequential:
                    measures.append(((label, "sequential"), lambda r=runner: time_pipeline(args, r, video, background,
                                                                                           folder, False)))
            for key, measure in (measures if round_ % 2 == 0 else measures[::-1]):  # ABBA: drift hits all alike
                rows[key].append(measure())
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
                f"{' '.join(filter(None, key))} {args.frames / times[-1]:.2f} fps"
                for key, times in rows.items() if times),
                file=sys.stderr)
        after = load_text()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    labels = {"model": "model only (input tensors in memory)",
              "pipeline": "video pipeline (decode + model + composite + encode, overlapped)",
              "sequential": "sequential pipeline (one thread, as upstream)"}
    main_runner = runners[-1][1]
    precision = args.precision or "the file's own precision"
    print(f"\n{main_runner.description}, {precision}; {width}x{height}, {args.frames} "
          f"frames, median of {args.rounds}; outputs: {' '.join(args.output_types)} ({args.codec})")
    print(f"machine: {machine_text(main_runner)}; {before} before, {after} after")
    fast = main_runner.runner if main_runner.runtime == "fast" else None
    if fast is not None:
        print("fast path ran: " + ", ".join(sorted({f"{name} ({fast.choices[key].precision})"
                                                    for key, name in fast.chosen.items()})))
    print()
    print("| measure | fps | ms/frame | vs model only | rounds (fps) |")
    print("|---|---|---|---|---|")
    for label, _ in runners:
        model_fps = args.frames / statistics.median(rows[(label, "model")])
        for name in names:
            times = rows[(label, name)]
            fps = args.frames / statistics.median(times)
            each = " ".join(f"{args.frames / t:.2f}" for t in times)
            text = f"{label}: {labels[name]}" if label else labels[name]
            print(f"| {text} | {fps:.2f} | {1000 / fps:.1f} | {100 * fps / model_fps:.1f}% | {each} |")
    status = 0
    if args.pipeline:
        for label, _ in runners:
            per_round = [m / p for m, p in zip(rows[(label, "model")], rows[(label, "pipeline")])]
            ratio = statistics.median(per_round)
            print(f"\n{label + ' ' if label else ''}pipeline / model only: {100 * ratio:.1f}% (median of the rounds' "
                  f"ratios; each round measures both back to back: {' '.join(f'{100 * r:.1f}%' for r in per_round)})")
            if args.min_ratio is not None and ratio < args.min_ratio:
                print(f"below --min-ratio {args.min_ratio:.2f}", file=sys.stderr)
                status = 3
    if len(runners) == 2:
        print("\n" + fast_line(rows, names, firsts))
    return status


def fast_line(rows, names, firsts) -> str:
    """`fast / eager: model only 1.62x, ...`: per measure the median of the rounds' ratios (each round
    measures both back to back)."""
    import statistics
    parts = []
    for name in names:
        ratios = [e / f for e, f in zip(rows[("eager", name)], rows[("fast", name)])]
        parts.append(f"{'model only' if name == 'model' else name} {statistics.median(ratios):.2f}x "
                     f"(rounds {' '.join(f'{r:.2f}' for r in ratios)})")
    return (f"fast / eager: {', '.join(parts)}; fast's first call {firsts['fast']:.1f} s (choosing: building, "
            f"checking and timing the candidates, or the cached choice), eager's {firsts['eager']:.2f} s")
