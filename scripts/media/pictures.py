"""The picture path: pictures matted against background shots, for `bgmv2 images`, `bgmv2 demo` and
`bgmv2 batch` alike. `plan(args)` gives the `ImageItem`s, `open_context(args, plan)` the model and
backgrounds, `matte_image(item, context)` makes one item's outputs, `matte_images(args)` a whole run.
"""
DEFAULT_TYPES = ("com", "pha", "fgr")


class ImageItem:
    """One picture to matte: its file, its own background (a --bgr folder) or None for the shared
    one, and the outputs to make (type -> file; with --skip-existing only the missing ones)."""
    __slots__ = ("index", "src", "bgr", "outputs")

    def __init__(self, index: int, src, bgr, outputs: dict):
        self.index, self.src, self.bgr, self.outputs = index, src, bgr, outputs

    def __repr__(self):
        return f"ImageItem({self.index}, {str(self.src)!r}, outputs={sorted(self.outputs)})"


class ImagePlan:
    """What a run makes: the items, the pictures failed before any work (path, reason), the
    composite colour (or None for a picture), and how many pictures already had every output."""

    def __init__(self, items, failures, colour, done_before: int):
        self.items, self.failures, self.colour, self.done_before = items, failures, colour, done_before


def plan(args) -> ImagePlan:
    """Inputs, backgrounds and output paths, all checked before the model is loaded."""
    from pathlib import Path
    from . import decode
    from .composite import parse_colour
    from .errors import MediaError
    from .options import OUTPUT_TYPES
    from .outputs import (check_output_dir, clean_stale, picture_suffix, refuse_existing,
                                       refuse_inputs)

    skip, keep_going = getattr(args, "skip_existing", False), getattr(args, "continue_on_error", False)
    if skip and args.force:
        raise MediaError("--force redoes every output, --skip-existing keeps the ones there: give one of them")
    root, files = decode.list_images(args.src, "--src")
    written = [Path(args.output_dir).resolve() / kind for kind in OUTPUT_TYPES]  # an earlier run's outputs
    files = [f for f in files if not any(folder in Path(f).resolve().parents for folder in written)]
    if not files:
        raise MediaError(f"--src {args.src}: every picture lies in an output folder of --output-dir {args.output_dir}")
    check_output_dir(args.output_dir)
    backgrounds = None
    if Path(args.bgr).is_dir():
        _, bgr_files = decode.list_images(args.bgr, "--bgr")
        if len(bgr_files) != len(files):
            raise MediaError(f"--src has {len(files)} picture(s) but --bgr has {len(bgr_files)}: give one background "
                             "for all, or exactly one per picture (paired in sorted order)")
        backgrounds = bgr_files
    colour = parse_colour(args.com_bg) if "com" in args.output_types else None
    names = decode.relative_names(root, files)
    outputs = [{t: Path(args.output_dir) / t / name.with_suffix(picture_suffix(t, args.image_format))
                for t in args.output_types} for name in names]
    seen = {}
    for name, paths in zip(names, outputs):
        for path in paths.values():
            if path in seen:
                raise MediaError(f"{seen[path]} and {name} would both be written to {path}; rename one of them")
            seen[path] = name
    refuse_inputs(seen, [*files, *(backgrounds or []), args.bgr, args.com_bg if colour is None else None])
    clean_stale([Path(args.output_dir) / t for t in args.output_types], recursive=True)
    if skip:
        outputs = [{t: p for t, p in paths.items() if not p.exists()} for paths in outputs]
    else:
        refuse_existing(seen, args.force)
    items, failures, done_before = [], [], 0
    for index, (path, paths) in enumerate(zip(files, outputs)):
        if not paths:
            done_before += 1
            continue
        bgr = backgrounds[index] if backgrounds else None
        try:  # headers only (fast): a bad file stops the run before the model loads
            decode.image_size(path)
            if bgr is not None:
                decode.image_size(bgr)
        except MediaError as error:
            if not keep_going:
                raise MediaError(f"{error}; nothing was written (--continue-on-error makes the other pictures)") \
                    from None
            failures.append((path, str(error)))
            continue
        items.append(ImageItem(index, path, bgr, paths))
    return ImagePlan(items, failures, colour, done_before)


class ImageContext:
    """What every item needs: the runner, the renderer, the shared background, the composite picture
    and the aligner (None without --align)."""

    def __init__(self, runner, renderer, still, com_picture, aligner):
        self.runner, self.renderer, self.aligner = runner, renderer, aligner
        self.still, self.com_picture = still, com_picture


def open_context(args, image_plan: ImagePlan, runner=None) -> ImageContext:
    """Backgrounds read, the model loaded (unless `runner` is given) and checked against the types."""
    from . import decode
    from .align import Aligner
    from .composite import Renderer
    from .matting import check_output_types
    from .runner import load_runner
    shared = not any(item.bgr is not None for item in image_plan.items)
    still = decode.open_background(args.bgr, "--bgr", allow_video=False) if shared else None
    com_picture = None
    if "com" in args.output_types and image_plan.colour is None:
        com_picture = decode.open_background(args.com_bg, "--com-bg", allow_video=False)
    runner = runner or load_runner(args, frames=len(image_plan.items))
    check_output_types(args.output_types, runner)
    aligner = Aligner(args.align_method) if args.align else None
    return ImageContext(runner, Renderer(args.output_types, image_plan.colour), still, com_picture, aligner)


def read_item(item: ImageItem, context: ImageContext):
    """The item's picture and background (fitted to it), as a pipeline Job."""
    from . import decode
    from .matting import Job
    src = decode.read_image(item.src)
    size = (src.shape[1], src.shape[0])
    if item.bgr is not None:
        bgr = decode.fit_background(decode.read_image(item.bgr), size, str(item.bgr), "--bgr")
    else:
        bgr = context.still.frame(item.index, size)
    if context.aligner is not None:
        bgr = context.aligner(src, bgr)
    com = context.com_picture.frame(item.index, size) if context.com_picture is not None else None
    return Job(item.index, src, bgr, com, item)


def write_item(item: ImageItem, pictures: dict) -> list:
    """The item's outputs, each written atomically; returns their paths."""
    from .encode import write_image
    for kind, path in item.outputs.items():
        write_image(path, pictures[kind])
    return list(item.outputs.values())


def matte_image(item: ImageItem, context: ImageContext) -> list:
    """One item start to end on this thread (read, infer, render, write); returns the files written."""
    from .matting import Stages
    made = {}
    stages = Stages(context.runner, context.renderer, lambda job, pictures: made.update(pictures))
    stages.consume(stages.infer(read_item(item, context)))
    return write_item(item, made)


def matte_images(args) -> int:
    import sys
    from .errors import DiskError, MediaError
    from .matting import Stages
    from .pipeline import Pipeline

    keep_going = getattr(args, "continue_on_error", False)
    image_plan = plan(args)
    failures = list(image_plan.failures)
    if not image_plan.items:
        if failures:
            return report_failures(failures, 0, args)
        print(f"nothing to do: all {image_plan.done_before} picture(s) have their outputs (--skip-existing)",
              file=sys.stderr)
        return 0
    context = open_context(args, image_plan)
    written = []

    # A picture that fails travels down the pipeline as a Failure, so it is reported in input order,
    # after every picture before it was written (the count in the message is exact, never a race).
    def jobs():
        for item in image_plan.items:
            try:
                yield stages.prepare(read_item(item, context))
            except MediaError as error:
                yield Failure(item, error)

    def infer(job):
        if isinstance(job, Failure):
            return job
        try:
            return stages.infer(job)
        except MediaError as error:
            return Failure(job.name, error)

    def consume(result):
        if isinstance(result, Failure):
            if not keep_going or isinstance(result.error, DiskError):
                raise result.error
            failures.append((result.item.src, str(result.error)))
        else:
            stages.consume(result)

    def sink(job, pictures):
        try:
            write_item(job.name, pictures)
        except DiskError:
            raise
        except MediaError as error:
            if not keep_going:
                raise
            failures.append((job.name.src, str(error)))
            return
        written.append(job.name)

    stages = Stages(context.runner, context.renderer, sink)
    pipeline = Pipeline(jobs(), infer, consume, total=len(image_plan.items), desc="images",
                        unit="image", queue_size=args.queue_size, progress=args.progress)
    try:
        pipeline.run()
    except MediaError as error:
        if written:
            raise type(error)(f"{error}. {len(written)} of {len(image_plan.items)} picture(s) were written before it; "
                              "rerun with --skip-existing to make the rest"
                              + ("" if isinstance(error, DiskError) else ", --continue-on-error to go past bad ones")) \
                from None
        raise
    print(f"{len(written)} picture(s) matted in {pipeline.elapsed:.1f} s -> {args.output_dir}/"
          f"{{{','.join(args.output_types)}}}/"
          + (f" ({image_plan.done_before} had their outputs already)" if image_plan.done_before else ""),
          file=sys.stderr)
    return report_failures(failures, len(written), args) if failures else 0


class Failure:
    """An item that failed on the way (reading or inference), carried to the writer in order."""
    __slots__ = ("item", "error")

    def __init__(self, item: ImageItem, error: Exception):
        self.item, self.error = item, error


def report_failures(failures, written: int, args) -> int:
    """The failed pictures, one line each, and exit status 3 (partly done)."""
    import sys
    from bgmv2.scripts.exits import EXIT_PARTIAL
    print(f"error: {len(failures)} picture(s) failed ({written} made); fix them and rerun with --skip-existing "
          "to make only those:", file=sys.stderr)
    for path, reason in failures:
        text = reason if str(path) in reason else f"{path}: {reason}"
        print(f"  {text}", file=sys.stderr)
    return EXIT_PARTIAL
