"""The video path: one video's outputs from an options namespace (`matte_video`), for `bgmv2 video`,
`bgmv2 bench` and `bgmv2 batch` alike: inputs opened, frames matted in the overlapped pipeline,
outputs written under temporary names and committed together.
"""
DEFAULT_TYPES = ("com", "pha")


def video_status(args) -> int:
    """matte_video's exit status: 0, or 3 when --continue-on-error went past a truncated input."""
    from bgmv2.scripts.exits import EXIT_PARTIAL
    return EXIT_PARTIAL if matte_video(args).get("short") else 0


def output_paths(args):
    from pathlib import Path
    from .outputs import VIDEO_SUFFIX
    folder = Path(args.output_dir)
    if sequence_format(args) is None:
        return {t: folder / f"{t}{VIDEO_SUFFIX[t]}" for t in args.output_types}
    return {t: folder / t for t in args.output_types}


def sequence_format(args):
    """None for video files, else the picture suffix of the sequences."""
    return {"video": None, "image_sequences": ".png", "png": ".png", "jpg": ".jpg"}[args.output_format]


def open_inputs(args, threads: int):
    """Source reader, background and composite sources, all validated (before the model loads)."""
    from . import decode
    from .composite import parse_colour
    size = tuple(args.video_resize) if getattr(args, "video_resize", None) else args.resize
    if size is not None and min(size) < 1:
        from .errors import MediaError
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
    from . import decode
    from .errors import warn
    from .matting import Job
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
    from .encode import SequenceWriter, VideoWriter
    from .outputs import OutputSet
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
    return 4 if runner.device.type == "cuda" and runner.runtime == "fast" else 1


def matte_video(args, runner=None, quiet: bool = False) -> dict:
    """Run the video app; returns figures (frames, seconds) for callers such as `bgmv2 bench`."""
    import sys
    from .align import Aligner
    from .composite import Renderer
    from .matting import Stages, check_output_types
    from .outputs import refuse_existing, refuse_inputs
    from .pipeline import Pipeline
    from .runner import inference_on_cpu, load_runner

    from .encode import check_codec
    from .errors import MediaError
    from .outputs import check_output_dir, clean_stale

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
    cpu = inference_on_cpu(args) if runner is None else runner.device.type == "cpu"
    threads = args.encoder_threads if args.encoder_threads is not None else (1 if cpu else 0)
    reader, background, colour, com = open_inputs(args, threads)
    try:
        runner = runner or load_runner(args, frames=reader.frame_count)
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
