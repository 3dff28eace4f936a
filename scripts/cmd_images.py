"""`bgmv2 images`: matte a picture or a folder of pictures against a background shot.

    bgmv2 images --src photos/ --bgr empty_room.jpg --output-dir out/
    bgmv2 images --src photos/ --bgr backgrounds/ -o out/ --output-types com fgr --com-bg white

--bgr is one picture for all, or a folder with one background per picture (paired in sorted order).
Outputs go to OUTPUT_DIR/<type>/<name>.png (fgr: RGBA PNG, colour plus alpha), mirroring sub-folders
of --src. Each file is written under a temporary name and renamed when complete; existing outputs
stop the run unless --force is given.
"""
import argparse

from scripts.media.options import add_alignment_arguments, add_model_arguments, add_output_arguments

DEFAULT_TYPES = ("com", "pha", "fgr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--src", "--images-src", dest="src", required=True,
                        help="a picture, or a folder of pictures (searched recursively)")
    parser.add_argument("--bgr", "--images-bgr", dest="bgr", required=True,
                        help="the background without the subject: one picture, or a folder with one per picture")
    add_model_arguments(parser)
    add_output_arguments(parser, DEFAULT_TYPES, video=False)
    add_alignment_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from scripts.media.app import run_app
    return run_app(matte_images, args)


def plan(args):
    """Inputs, backgrounds and output paths, all checked before the model is loaded."""
    from pathlib import Path
    from scripts.media import decode
    from scripts.media.composite import parse_colour
    from scripts.media.errors import MediaError
    from scripts.media.options import OUTPUT_TYPES
    from scripts.media.outputs import picture_suffix, refuse_existing, refuse_inputs

    root, files = decode.list_images(args.src, "--src")
    written = [Path(args.output_dir).resolve() / kind for kind in OUTPUT_TYPES]  # an earlier run's outputs
    files = [f for f in files if not any(folder in Path(f).resolve().parents for folder in written)]
    if not files:
        raise MediaError(f"--src {args.src}: every picture lies in an output folder of --output-dir {args.output_dir}")
    decode.checked_images(files)
    backgrounds = None
    if Path(args.bgr).is_dir():
        _, bgr_files = decode.list_images(args.bgr, "--bgr")
        if len(bgr_files) != len(files):
            raise MediaError(f"--src has {len(files)} picture(s) but --bgr has {len(bgr_files)}: give one background "
                             "for all, or exactly one per picture (paired in sorted order)")
        decode.checked_images(bgr_files)
        backgrounds = bgr_files
    colour = parse_colour(args.com_bg) if "com" in args.output_types else None
    names = decode.relative_names(root, files)
    outputs = []
    for name in names:
        outputs.append({t: Path(args.output_dir) / t / name.with_suffix(picture_suffix(t, args.image_format))
                        for t in args.output_types})
    seen = {}
    for name, paths in zip(names, outputs):
        for path in paths.values():
            if path in seen:
                raise MediaError(f"{seen[path]} and {name} would both be written to {path}; rename one of them")
            seen[path] = name
    refuse_inputs(seen, [*files, *(backgrounds or []), args.bgr, args.com_bg if colour is None else None])
    refuse_existing(seen, args.force)
    return files, backgrounds, colour, outputs


def matte_images(args) -> int:
    import sys
    from scripts.media import decode
    from scripts.media.align import Aligner
    from scripts.media.composite import Renderer
    from scripts.media.encode import write_image
    from scripts.media.matting import Job, Stages, check_output_types
    from scripts.media.pipeline import Pipeline
    from scripts.media.runner import load_runner

    files, backgrounds, colour, outputs = plan(args)
    still = None if backgrounds else decode.open_background(args.bgr, "--bgr", allow_video=False)
    com_picture = None
    if "com" in args.output_types and colour is None:
        com_picture = decode.open_background(args.com_bg, "--com-bg", allow_video=False)
    runner = load_runner(args)
    check_output_types(args.output_types, runner)
    aligner = Aligner(args.align_method) if args.align else None

    def jobs():
        for index, path in enumerate(files):
            src = decode.read_image(path)
            size = (src.shape[1], src.shape[0])
            if backgrounds:
                bgr = decode.fit_background(decode.read_image(backgrounds[index]), size, str(backgrounds[index]), "--bgr")
            else:
                bgr = still.frame(index, size)
            if aligner is not None:
                bgr = aligner(src, bgr)
            com = com_picture.frame(index, size) if com_picture is not None else None
            yield Job(index, src, bgr, com, path)

    def sink(job, pictures):
        for kind, picture in pictures.items():
            write_image(outputs[job.index][kind], picture)

    stages = Stages(runner, Renderer(args.output_types, colour), sink)
    pipeline = Pipeline(stages.jobs(jobs()), stages.infer, stages.consume, total=len(files), desc="images", unit="image",
                        queue_size=args.queue_size, progress=args.progress)
    done = pipeline.run()
    print(f"{done} picture(s) matted in {pipeline.elapsed:.1f} s -> {args.output_dir}/"
          f"{{{','.join(args.output_types)}}}/", file=sys.stderr)
    return 0
