"""`bgmv2 video`: matte a video against a background shot (a picture or a video).

    bgmv2 video --src talk.mp4 --bgr empty_room.jpg --output-dir out/
    bgmv2 video --src walk.mp4 --bgr plate.mp4 -o out/ --output-types com fgr --com-bg beach.mp4 --align

Decoding, inference and encoding run in three threads joined by bounded queues, so the pipeline
runs at nearly the model's own speed. Outputs: OUTPUT_DIR/com.mp4, pha.mp4, err.mp4, ref.mp4 and
fgr.mov (PNG frames with alpha), or with --output-format png|jpg one folder of numbered pictures per
type (fgr: RGBA PNG). Rotation tags are applied (outputs are upright). Nothing exists under its
final name until it is complete: Ctrl-C or SIGTERM leaves finished files and no partial ones.
--skip-existing makes only the output types that are missing (nothing, if all are there).
A truncated or damaged --src (fewer frames decode than the file declares) is an error, and nothing is
written; with --continue-on-error the frames that decode are matted, a warning names the shortfall,
and the exit status is 3.

For batch runners: `matte_video(args)` makes one video's outputs from an options namespace.
"""
import argparse

from bgmv2.scripts.media.options import (add_alignment_arguments, add_model_arguments, add_output_arguments,
                                   size_wxh)

DEFAULT_TYPES = ("com", "pha")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--src", "--video-src", dest="src", required=True, help="the video to matte")
    parser.add_argument("--bgr", "--video-bgr", dest="bgr", required=True,
                        help="the background without the subject: a picture, or a video (frame i for frame i)")
    parser.add_argument("--resize", type=size_wxh, metavar="WIDTHxHEIGHT",
                        help="resize the frames first, e.g. 1280x720")
    parser.add_argument("--video-resize", type=int, nargs=2, metavar=("W", "H"), help=argparse.SUPPRESS)
    add_model_arguments(parser)
    add_output_arguments(parser, DEFAULT_TYPES, video=True)
    add_alignment_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.media.app import run_app
    return run_app(video_status, args)


def video_status(args) -> int:
    """matte_video's exit status: 0, or 3 when --continue-on-error went past a truncated input."""
    from bgmv2.scripts.exits import EXIT_PARTIAL
    return EXIT_PARTIAL if matte_video(args).get("short") else 0


def output_paths(args):
    from pathlib import Path
    from bgmv2.scripts.media.outputs import VIDEO_SUFFIX
    folder = Path(args.output_dir)
    if sequence_format(args) is None:
        return {t: folder / f"{t}{VIDEO_SUFFIX[t]}" for t in args.output_types}
    return {t: folder / t for t in args.output_types}


def sequence_format(args):
    """None for video files, else the picture suffix of the sequences."""
    return {"video": None, "image_sequences": ".png", "png": ".png", "jpg": ".jpg"}[args.output_format]


def open_inputs(args, threads: int):
    """Source reader, background and composite sources, all validated (before the model loads)."""
    from bgmv2.scripts.media import decode
    from bgmv2.scripts.media.composite import parse_colour
    size = tuple(args.video_resize) if getattr(args, "video_resize", None) else args.resize
    if size is not None and min(size) < 1:
        from bgmv2.scripts.media.errors import MediaError
        raise MediaError(f"--resize {size[0]}x{size[1]}: width and height must be positive")
    short = getattr(args, "continue_on_error", False)
    reader = decode.VideoReader(args.src, "--src", threads=threads, size=size, allow_short=short)
    sources = [reader]
    try:
        reader.first_frame()
        background = decode.open_background(args.bgr, "--bgr", allow_video=True, threads=threads, allow_short=short)
        sources.append(background)
        colour = parse_colour(args.com_bg) if "com" in args.output_types else None
        com = None
        if "com" in args.output_types and colour is None:
            com = decode.open_background(args.com_bg, "--com-bg", allow_video=True, threads=threads, allow_short=short)
            sources.append(com)
    except BaseException:
        for source in sources:
            source.close()
        raise
    return reader, background, colour, com


def make_jobs(reader, background, com, aligner=None):
    """Frame pairs (and composite backgrounds) in order, all at the first frame's size."""
    from bgmv2.scripts.media import decode
    from bgmv2.scripts.media.errors import warn
    from bgmv2.scripts.media.matting import Job
    size = reader.frame_size
    warned = False
    for index, src in enumerate(reader):
        if (src.shape[1], src.shape[0]) != size:
            if not warned:
                warn(f"{reader.path} changes frame size at frame {index}; frames are resized to {size[0]}x{size[1]}")
                warned = True
            src = decode.resize(src, size)
        bgr = background.frame(index, size)
        if aligner is not None:
            bgr = aligner(src, bgr)
        yield Job(index, src, bgr, com.frame(index, size) if com is not None else None)


def open_writers(args, paths, fps, size, threads: int):
    from bgmv2.scripts.media.encode import SequenceWriter, VideoWriter
    from bgmv2.scripts.media.outputs import OutputSet
    outputs = OutputSet()
    suffix = sequence_format(args)
    try:
        for kind, path in paths.items():
            if suffix is None:
                outputs.add(VideoWriter(path, fps, size, kind={"com": "rgb", "fgr": "rgba"}.get(kind, "gray"),
                                        codec=args.codec, crf=args.crf, preset=args.x264_preset, threads=threads))
            else:
                outputs.add(SequenceWriter(path, suffix))
    except BaseException:
        outputs.abort()
        raise
    return outputs


def video_batch(args, runner) -> int:
    """Frames per model call: 4 for the fast backend on a GPU (one call of 4 costs little more than one),
    else 1; `args.batch` where a caller sets it."""
    batch = getattr(args, "batch", None)
    if batch:
        return int(batch)
    return 4 if runner.device.type == "cuda" and type(runner).__name__ == "FastRunner" else 1


def matte_video(args, runner=None, quiet: bool = False) -> dict:
    """Run the video app; returns figures (frames, seconds) for callers such as `bgmv2 bench`."""
    import sys
    from bgmv2.scripts.media.align import Aligner
    from bgmv2.scripts.media.composite import Renderer
    from bgmv2.scripts.media.matting import Stages, check_output_types
    from bgmv2.scripts.media.outputs import refuse_existing, refuse_inputs
    from bgmv2.scripts.media.pipeline import Pipeline
    from bgmv2.scripts.media.runner import load_runner, resolve_device

    from bgmv2.scripts.media.encode import check_codec
    from bgmv2.scripts.media.errors import MediaError
    from bgmv2.scripts.media.outputs import check_output_dir, clean_stale

    paths = output_paths(args)
    refuse_inputs(paths.values(), [args.src, args.bgr, getattr(args, "com_bg", None)])
    check_output_dir(args.output_dir)
    clean_stale([args.output_dir])
    if getattr(args, "skip_existing", False):
        if args.force:
            raise MediaError("--force redoes every output, --skip-existing keeps the ones there: give one of them")
        missing = {t: p for t, p in paths.items() if not p.exists()}
        if not missing:
            if not quiet:
                print(f"nothing to do: {', '.join(str(p) for p in paths.values())} exist (--skip-existing)",
                      file=sys.stderr)
            return {"frames": 0, "seconds": 0.0, "paths": [], "short": None}
        paths = missing
    else:
        refuse_existing(paths.values(), args.force)
    if sequence_format(args) is None and any(t != "fgr" for t in paths):
        args.codec = check_codec(getattr(args, "codec", None))
    cpu = resolve_device(args.device).type == "cpu" if runner is None else runner.device.type == "cpu"
    threads = args.encoder_threads if args.encoder_threads is not None else (1 if cpu else 0)
    reader, background, colour, com = open_inputs(args, threads)
    try:
        runner = runner or load_runner(args)
        check_output_types(tuple(paths), runner)
        aligner = Aligner(args.align_method) if args.align else None
        outputs = open_writers(args, paths, reader.fps, reader.frame_size, threads)
        writers = dict(zip(paths, outputs.writers))

        def sink(job, pictures):
            for kind, picture in pictures.items():
                writers[kind].write(picture)

        stages = Stages(runner, Renderer(tuple(paths), colour), sink, batch=video_batch(args, runner))
        pipeline = Pipeline(stages.jobs(make_jobs(reader, background, com, aligner)), stages.infer, stages.consume,
                            total=reader.frame_count, desc="video", queue_size=args.queue_size,
                            progress=args.progress, overlap=getattr(args, "overlap", True), count=stages.count)
        try:
            done = pipeline.run()
            written = outputs.commit()
        except BaseException:
            outputs.abort()
            raise
    finally:
        for source in (reader, background, com):
            if source is not None:
                source.close()
    if not quiet:
        fps = done / pipeline.elapsed if pipeline.elapsed else 0.0
        print(f"{done} frames in {pipeline.elapsed:.1f} s ({fps:.2f} frames/s) -> "
              + ", ".join(str(p) for p in written), file=sys.stderr)
    return {"frames": done, "seconds": pipeline.elapsed, "paths": written, "short": reader.shortfall}
