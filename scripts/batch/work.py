"""The work of one batch item, without Ray: pictures, video segments, and joining a video's segments.

A worker holds one `Matter` (one model, loaded once). Pictures are matted one by one and written
like `bgmv2 images` writes them. A video is cut into segments of frames; each segment is decoded
from the source, matted, and rendered exactly as `bgmv2 video` does (its own input, job and stage
code), and its 8-bit pictures are stored losslessly as raw frames, one file per output type. The
driver then feeds the segments, in order, to the same writers `bgmv2 video` opens (`join_video`), so
a batch's video files equal `bgmv2 video`'s on the same clip with the same options (and --threads):
the same 8-bit frames into the same encoder settings, so the same frame count, timestamps and
decoded pixels. (Not always the same bytes: x264 through PyAV here writes a few differing bytes
that decode to the same pixels even run to run of `bgmv2 video`, measured.)
"""
import argparse
import itertools
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

CHANNELS = {"com": 3, "fgr": 4}  # the rest are one channel (grey)
CRASH_ENV = "BGMV2_BATCH_CRASH"  # tests: "NAME=MARKER": a worker dies on item NAME once (MARKER absent); "NAME": always


def item_args(args: argparse.Namespace, src, bgr, output_dir, types) -> argparse.Namespace:
    """The command's options for one item, as `bgmv2 images` / `bgmv2 video` would see them."""
    item = argparse.Namespace(**vars(args))
    item.src, item.bgr, item.output_dir, item.output_types = str(src), str(bgr), str(output_dir), list(types)
    return item


def image_outputs(args, output_dir, types) -> Dict[str, Path]:
    from bgmv2.scripts.media.outputs import picture_suffix
    return {t: Path(output_dir) / f"{t}{picture_suffix(t, args.image_format)}" for t in types}


def video_outputs(args, output_dir, types) -> Dict[str, Path]:
    from bgmv2.scripts.media.video import output_paths
    return output_paths(item_args(args, "", "", output_dir, types))


def codec_threads(args, cpu: bool) -> int:
    """Decoder and encoder threads as `bgmv2 video` chooses them (so the encoded bytes match)."""
    return args.encoder_threads if args.encoder_threads is not None else (1 if cpu else 0)


def maybe_crash(name: str) -> None:
    """Fault injection for the tests (worker death mid-item); inert unless BGMV2_BATCH_CRASH is set."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, marker = spec.partition("=")
    if target != name or (marker and os.path.exists(marker)):
        return
    if marker:
        Path(marker).write_text(str(os.getpid()))
    os._exit(1)


def error_text(error: BaseException) -> str:
    from bgmv2.scripts.media.errors import MediaError
    if isinstance(error, MediaError):
        return str(error)
    return f"{type(error).__name__}: {error}".splitlines()[0]


class Matter:
    """One model on one worker; mattes pictures and video segments for the batch."""

    def __init__(self, args: argparse.Namespace):
        from bgmv2.scripts.media.app import passive_openmp
        passive_openmp()
        from bgmv2.scripts.allocator import keep_freed_memory
        keep_freed_memory()
        from bgmv2.scripts.media.composite import parse_colour
        from bgmv2.scripts.media.runner import load_runner
        self.args = args
        self.runner = load_runner(args, announce=False)
        self.cpu = self.runner.device.type == "cpu"
        self.colour = parse_colour(args.com_bg)
        self._com_picture = None

    @property
    def description(self) -> str:
        return f"{self.runner.description} on {self.runner.device}"

    def aligner(self):
        from bgmv2.scripts.media.align import Aligner
        return Aligner(self.args.align_method) if self.args.align else None

    # -- pictures -----------------------------------------------------------------------------
    def com_picture(self):
        from bgmv2.scripts.media import decode
        if self._com_picture is None:
            self._com_picture = decode.open_background(self.args.com_bg, "--com-bg", allow_video=False)
        return self._com_picture

    def images(self, items: List[dict]) -> List[dict]:
        """Each item: {name, src, bgr, outputs: {type: path}}; one result per item, never raising."""
        results = []
        for item in items:
            start = time.perf_counter()
            try:
                maybe_crash(item["name"])
                self.image(item)
                results.append({"name": item["name"], "ok": True, "frames": 1,
                                "seconds": time.perf_counter() - start})
            except Exception as error:  # noqa: BLE001 - one item's failure is reported, the batch goes on
                results.append({"name": item["name"], "ok": False, "error": error_text(error), "frames": 0,
                                "seconds": time.perf_counter() - start})
        return results

    def image(self, item: dict) -> None:
        from bgmv2.scripts.media import decode
        from bgmv2.scripts.media.composite import Renderer
        from bgmv2.scripts.media.encode import write_image
        from bgmv2.scripts.media.matting import Job, Stages, check_output_types
        outputs = {t: Path(p) for t, p in item["outputs"].items()}
        check_output_types(list(outputs), self.runner)
        src = decode.read_image(item["src"], "src")
        size = (src.shape[1], src.shape[0])
        bgr = decode.fit_background(decode.read_image(item["bgr"], "bgr"), size, str(item["bgr"]), "bgr")
        aligner = self.aligner()
        if aligner is not None:
            bgr = aligner(src, bgr)
        com = self.com_picture().frame(0, size) if "com" in outputs and self.colour is None else None
        written = []

        def sink(job, pictures):
            for kind, picture in pictures.items():
                write_image(outputs[kind], picture)  # atomic: temporary name, then renamed
                written.append(kind)

        stages = Stages(self.runner, Renderer(list(outputs), self.colour), sink)
        stages.consume(stages.infer(Job(0, src, bgr, com, item["src"])))

    # -- video segments -----------------------------------------------------------------------
    def segment(self, task: dict) -> dict:
        """Frames [start, stop) of a video (stop None: to the end) matted into raw 8-bit chunk files.

        task: {name, src, bgr, index, start, stop, folder, types}. Returns the frame count, the
        video's frame size and rate, and the chunk files; a failure comes back as {ok: False, error}.
        """
        begin = time.perf_counter()
        try:
            maybe_crash(task["name"])
            result = self._segment(task)
        except Exception as error:  # noqa: BLE001
            return {"name": task["name"], "index": task["index"], "ok": False, "error": error_text(error),
                    "frames": 0, "seconds": time.perf_counter() - begin}
        result.update(name=task["name"], index=task["index"], ok=True, seconds=time.perf_counter() - begin)
        return result

    def _segment(self, task: dict) -> dict:
        from bgmv2.scripts.media.video import make_jobs, open_inputs
        from bgmv2.scripts.media.composite import Renderer
        from bgmv2.scripts.media.matting import Stages, check_output_types
        from bgmv2.scripts.media.encode import remove, temporary_name
        from bgmv2.scripts.media.pipeline import Pipeline
        types = list(task["types"])
        check_output_types(types, self.runner)
        args = item_args(self.args, task["src"], task["bgr"], task["folder"], types)
        reader, background, colour, com = open_inputs(args, codec_threads(self.args, self.cpu))
        folder = Path(task["folder"])
        folder.mkdir(parents=True, exist_ok=True)
        finals = {t: folder / f"{task['index']:05d}.{t}.u8" for t in types}
        files = {t: open(temporary_name(path), "wb") for t, path in finals.items()}
        try:
            size, fps = reader.frame_size, reader.fps  # of frame 0: `bgmv2 video` sizes every frame to it
            jobs = itertools.islice(make_jobs(reader, background, com), task["start"], task["stop"])
            aligner = self.aligner()
            if aligner is not None:
                jobs = (aligned(job, aligner) for job in jobs)

            def sink(job, pictures):
                for kind, picture in pictures.items():
                    files[kind].write(np.ascontiguousarray(picture).tobytes())

            stages = Stages(self.runner, Renderer(types, colour), sink)
            pipeline = Pipeline(stages.jobs(jobs), stages.infer, stages.consume, progress=False,
                                queue_size=self.args.queue_size)
            frames = pipeline.run()
            for kind, f in files.items():
                f.close()
                os.replace(temporary_name(finals[kind]), finals[kind])
        except BaseException:
            for kind, f in files.items():
                f.close()
                remove(temporary_name(finals[kind]))
            raise
        finally:
            for source in (reader, background, com):
                if source is not None:
                    source.close()
        return {"frames": frames, "size": list(size), "fps": [fps.numerator, fps.denominator],
                "files": {t: str(p) for t, p in finals.items()}}


def aligned(job, aligner):
    job.bgr = aligner(job.src, job.bgr)
    return job


def join_video(args: argparse.Namespace, outputs: Dict[str, Path], segments: List[dict], cpu: bool,
               should_stop=lambda: False) -> int:
    """Write a video's outputs from its segments' chunks, in order, with `bgmv2 video`'s writers.

    Every output is written under a temporary name and renamed when complete; `should_stop()` true
    (Ctrl-C in the driver) aborts them. Returns the frame count.
    """
    from fractions import Fraction
    from bgmv2.scripts.media.video import open_writers
    from bgmv2.scripts.media.errors import MediaError
    first = segments[0]
    width, height = first["size"]
    fps = Fraction(*first["fps"])
    writers = open_writers(args, outputs, fps, (width, height), codec_threads(args, cpu))
    by_type = dict(zip(outputs, writers.writers))
    frames = 0
    shapes = {kind: (height, width) + ((CHANNELS[kind],) if kind in CHANNELS else ()) for kind in by_type}
    try:
        for segment in segments:
            if segment["size"] != first["size"]:
                raise MediaError(f"segment {segment['index']} has frames of {segment['size']}, not {first['size']}")
            files = {kind: open(segment["files"][kind], "rb") for kind in by_type}
            try:
                for kind, f in files.items():
                    expected = int(np.prod(shapes[kind])) * segment["frames"]
                    if os.fstat(f.fileno()).st_size != expected:
                        raise MediaError(f"{f.name}: holds {os.fstat(f.fileno()).st_size} bytes, expected {expected}")
                for _ in range(segment["frames"]):  # frame by frame, every type, as `bgmv2 video` writes
                    if should_stop():
                        raise KeyboardInterrupt
                    for kind, writer in by_type.items():
                        frame = np.empty(shapes[kind], np.uint8)
                        if files[kind].readinto(memoryview(frame).cast("B")) != frame.nbytes:
                            raise MediaError(f"{files[kind].name}: ends early")
                        writer.write(frame)
            finally:
                for f in files.values():
                    f.close()
            frames += segment["frames"]
        if frames == 0:
            raise MediaError("the video has no decodable frames")
        writers.commit()
    except BaseException:
        writers.abort()
        raise
    return frames


def plan_segments(frame_count: Optional[int], segment_frames: int) -> List[tuple]:
    """(start, stop) frame ranges; the last is open (stop None), so a short frame-count estimate loses nothing."""
    if not frame_count or segment_frames <= 0 or frame_count <= segment_frames:
        return [(0, None)]
    starts = list(range(0, frame_count, segment_frames))
    return [(s, s + segment_frames) for s in starts[:-1]] + [(starts[-1], None)]
