"""`bgmv2 batch`: matte many pictures and videos on Ray (local by default, or a cluster), resumably.

    bgmv2 batch --src shoot/ --bgr plates/ -o out/                    # paired by relative path
    bgmv2 batch --src shoot/ --bgr empty_room.jpg -o out/ --workers 4  # one background for all
    bgmv2 batch --manifest jobs.jsonl -o /shared/out --address 10.0.0.5:6379 --gpus-per-worker 1

A manifest has one JSON object a line: {"src": "a.mp4", "bgr": "a_bg.png", "name": "a"} (name
optional; relative paths are relative to the manifest). Pictures and videos may be mixed. Each
item's outputs go to OUTPUT_DIR/<name>/ as `bgmv2 images` / `bgmv2 video` write them (com.png or
com.mp4, pha..., fgr...). Long videos are cut into --segment-frames segments matted in parallel and
joined in order, frame for frame what `bgmv2 video` writes. A ledger (batch-ledger.jsonl) records
what is done: a rerun makes only what is missing or stale. A failed item does not stop the others;
failures are listed at the end (exit status 3). Needs Ray: pip install 'bgmv2-zoo[ray]'.
"""
import argparse

from bgmv2.scripts.media.options import add_alignment_arguments, add_model_arguments, add_output_arguments, size_wxh

INSTALL = "pip install 'bgmv2-zoo[ray]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--manifest", help="JSON lines, one item each: src, bgr and optionally name")
    inputs.add_argument("--src", help="a folder of pictures and videos (searched recursively), or one file")
    inputs.add_argument("--bgr", help="a folder with the background of each input at the same relative path "
                                      "(any picture or video suffix), or one picture for all")
    inputs.add_argument("--resize", type=size_wxh, metavar="WxH", help="videos: resize the frames first")
    add_model_arguments(parser)
    add_output_arguments(parser, ("com", "pha"), video=True)
    parser.set_defaults(output_types=None, video_resize=None)  # per input: `bgmv2 images`' default for pictures, `video`'s for videos
    for action in parser._actions:  # the shared flags, as they work here
        if action.dest == "output_types":
            action.help = action.help.split("; default")[0] + "; default: com pha fgr for pictures, com pha for videos"
        elif action.dest == "force":
            action.help = ("make every item again, replacing its outputs (without it: up-to-date items are skipped, "
                           "and outputs no batch here wrote are not replaced: that item fails)")
    add_alignment_arguments(parser)
    ray_group = parser.add_argument_group("Ray")
    ray_group.add_argument("--address", help="a Ray cluster to join: HOST:PORT of its head (`ray start --head --port "
                                             "PORT`; token authentication included: see docs/batch.md), "
                                             "ray://HOST:10001 or auto; default: start Ray here, in this process")
    ray_group.add_argument("--workers", type=int, help="worker actors, one model each (default: the GPUs, or the "
                                                       "CPUs / --cpus-per-worker)")
    ray_group.add_argument("--cpus-per-worker", type=float, default=1.0,
                           help="CPUs each worker reserves; its inference threads when it runs on the CPU (default: 1)")
    ray_group.add_argument("--gpus-per-worker", type=float,
                           help="GPUs each worker reserves, e.g. 1 or 0.5 (default: 1 where the cluster has GPUs, else 0)")
    ray_group.add_argument("--segment-frames", type=int, default=300,
                           help="videos longer than this are split into segments of this many frames (default: 300)")
    ray_group.add_argument("--batch-size", type=int, default=8, help="pictures per task (default: 8)")
    ray_group.add_argument("--object-store-mb", type=int, default=256,
                           help="local Ray's object store in MB (only paths and small results travel; default: 256)")
    ray_group.add_argument("--connect-timeout", type=float, default=5.0,
                           help="seconds to reach --address and hear from its head before giving up (default: 5)")
    ray_group.add_argument("--start-timeout", type=float, default=300.0,
                           help="seconds to wait for the workers to load the model (default: 300)")
    ray_group.add_argument("--progress-interval", type=float, default=5.0, help=argparse.SUPPRESS)


# (option, the least value, whether the least is allowed, the largest, unit): finite numbers only
NUMBERS = (("cpus_per_worker", 0, False, 1024, ""), ("gpus_per_worker", 0, True, 64, ""),
           ("connect_timeout", 0, False, 3600, " seconds"), ("start_timeout", 0, False, 86400, " seconds"),
           ("progress_interval", 0, False, 3600, " seconds"))


def check(args: argparse.Namespace) -> None:
    import math
    from bgmv2.scripts.media.errors import MediaError
    for name in ("workers", "segment_frames", "batch_size", "object_store_mb"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise MediaError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name, low, low_allowed, high, unit in NUMBERS:
        value = getattr(args, name)
        if value is None:
            continue
        if not math.isfinite(value) or not (low <= value if low_allowed else low < value) or value > high:
            bound = "at least" if low_allowed else "above"
            raise MediaError(f"--{name.replace('_', '-')} {value:g}: give a number {bound} {low:g} and at most "
                             f"{high:g}{unit}")
    if args.address is not None:
        from bgmv2.scripts.batch.address import parse
        parse(args.address)


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import sys
    if importlib.util.find_spec("ray") is None:
        print(f"error: `bgmv2 batch` needs Ray, which is not installed: {INSTALL}", file=sys.stderr)
        return 1
    from bgmv2.scripts.media.app import run_app

    def main(args):
        check(args)
        from bgmv2.scripts.batch.driver import run_batch
        return run_batch(args)
    return run_app(main, args)
