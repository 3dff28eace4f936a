"""`bgmv2 batch` throughput with 1 and 2 (or more) workers on generated clips, as a Markdown table.

    python -m benchmarks.batch_throughput                       # CPU: 1 and 2 workers, 640x360
    python -m benchmarks.batch_throughput --workers 1 2 4 --gpus-per-worker 0.5 --device cuda
    python -m benchmarks.batch_throughput --write docs/speed-batch.md   # the table in docs/, as a page

Each run is a fresh `bgmv2 batch` process (its own local Ray) over the same clips; the table gives
the frames per second once the workers are up (Ray and model start-up excluded, shown apart) and
over the whole run.
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def make_clips(folder: Path, clips: int, frames: int, width: int, height: int) -> None:
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.synth import synthetic_clip, write_video
    (folder / "src").mkdir(parents=True)
    (folder / "bgr").mkdir()
    for i in range(clips):
        clip, bgr = synthetic_clip(frames, height, width, seed=i)
        write_video(folder / "src" / f"clip{i}.mp4", clip, fps=25)
        write_image(folder / "bgr" / f"clip{i}.png", bgr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--segment-frames", type=int, default=48)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument("--write", metavar="PAGE", help="also write the table to this Markdown page (e.g. "
                        "docs/speed-batch.md), under a header naming the command, date, machine and load")
    args = parser.parse_args(argv)
    from bgmv2.scripts import page
    argv = sys.argv[1:] if argv is None else argv
    with page.recording(args.write, "`bgmv2 batch` throughput",
                        shlex.join(["python", "-m", "benchmarks.batch_throughput", *argv])):
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    """Make the clips, run `bgmv2 batch` once per worker count, print the table."""
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bgmv2-batch-bench-") as scratch:
        scratch = Path(scratch)
        make_clips(scratch, args.clips, args.frames, width, height)
        for workers in args.workers:
            out = scratch / f"out-{workers}"
            command = [sys.executable, "-m", "bgmv2.scripts.cli", "batch", "--src", str(scratch / "src"), "--bgr",
                       str(scratch / "bgr"), "-o", str(out), "--workers", str(workers), "--segment-frames",
                       str(args.segment_frames), "--device", args.device, "--gpus-per-worker",
                       str(args.gpus_per_worker), "--cpus-per-worker", str(args.cpus_per_worker), "--no-progress"]
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            summary = json.loads((out / "batch-summary.json").read_text())
            rows.append((workers, summary))
    print(f"{args.clips} clips x {args.frames} frames, {args.size}, segments of {args.segment_frames}, "
          f"--device {args.device}, --cpus-per-worker {args.cpus_per_worker:g}, --gpus-per-worker {args.gpus_per_worker:g}")
    print("| workers | frames | start-up s | frames/s (workers up) | frames/s (whole run) |")
    print("|---|---|---|---|---|")
    for workers, s in rows:
        print(f"| {workers} | {s['frames']} | {s['startup_seconds']:.1f} | {s['working_frames_per_second']:.2f} | "
              f"{s['frames_per_second']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
