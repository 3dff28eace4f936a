"""Writing: video files (PyAV), single images and image sequences, always atomically.

Every writer works under a temporary name beside its destination (`com.mp4.partial-<pid>`, a
`pha.partial-<pid>` folder) and takes the real name only in `close()`; `abort()` removes what it
wrote. So an interrupted or failed run leaves finished files and never a truncated one, and an
existing output (overwritten with --force) stays intact until its replacement is complete.

Arrays are uint8: (H, W, 3) RGB, (H, W) grey, or (H, W, 4) RGBA (foreground with alpha).
"""
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .errors import MediaError

MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def temporary_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.partial-{os.getpid()}")


def remove(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def encode_image(array: np.ndarray, ext: str, jpeg_quality: int = 95) -> bytes:
    import cv2
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(ext, array, params)
    if not ok:
        raise MediaError(f"could not encode a {array.shape} picture as {ext}")
    return data.tobytes()


def write_image(path, array: np.ndarray) -> None:
    """One picture to `path` (type from its suffix), atomically."""
    path = Path(path)
    data = encode_image(array, path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise


def codec_available(name: str) -> bool:
    import av
    return name in av.codec.codecs_available


class VideoWriter:
    """A video file written frame by frame. `kind`: 'rgb', 'gray' or 'rgba' (alpha: PNG frames in .mov).

    Odd sizes work: H.264 then uses 4:4:4 chroma (4:2:0 needs even sizes). `threads`: encoder threads
    (0 = FFmpeg's choice).
    """

    def __init__(self, path, fps: Fraction, size: Tuple[int, int], kind: str = "rgb", codec: str = "libx264",
                 crf: int = 18, preset: str = "veryfast", threads: int = 0):
        import av
        self.path, self.kind, self.count = Path(path), kind, 0
        self.temporary = temporary_name(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        muxer = MUXERS.get(self.path.suffix.lower())
        if muxer is None:
            raise MediaError(f"{self.path}: unknown video container {self.path.suffix!r}; use .mp4, .mov or .mkv")
        width, height = size
        options = {}
        if kind == "rgba":
            codec, pix_fmt = "png", "rgba"
        else:
            if not codec_available(codec):
                fallback = "libx264" if codec_available("libx264") else "mpeg4"
                if fallback == codec or not codec_available(fallback):
                    raise MediaError(f"the video encoder {codec!r} is not in this FFmpeg build")
                codec = fallback
            even = width % 2 == 0 and height % 2 == 0
            if codec == "libx264":
                pix_fmt = "yuv420p" if even else "yuv444p"
                options = {"crf": str(crf), "preset": preset}
            else:
                pix_fmt = "yuv420p"
                if not even:
                    raise MediaError(f"{codec} cannot encode an odd frame size {width}x{height}; use --codec libx264 "
                                     "or --output-format png")
        self.format = {"rgb": "rgb24", "gray": "gray", "rgba": "rgba"}[kind]
        self.container = av.open(str(self.temporary), "w", format=muxer)
        try:
            self.stream = self.container.add_stream(codec, rate=fps, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
            self.stream.codec_context.thread_count = threads
            self.stream.codec_context.time_base = Fraction(1) / fps
        except BaseException:
            self.abort()
            raise

    def write(self, array: np.ndarray) -> None:
        import av
        frame = av.VideoFrame.from_ndarray(array, format=self.format)
        frame.pts = self.count
        self.count += 1
        try:
            self.container.mux(self.stream.encode(frame))
        except (av.error.FFmpegError, OSError) as error:
            raise self.failure(error) from None

    def close(self) -> None:
        import av
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            os.replace(self.temporary, self.path)
        except (av.error.FFmpegError, OSError) as error:
            self.abort()
            raise self.failure(error) from None
        except BaseException:
            self.abort()
            raise

    def failure(self, error: Exception) -> MediaError:
        """The encoder's or the disk's error as a MediaError naming the output and what to change."""
        return MediaError(f"{self.path}: writing the video failed ({error}); check the disk space and the encoder "
                          "options (--codec, --preset-x264, --crf)")

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass
        remove(self.temporary)


class SequenceWriter:
    """Numbered pictures (000000.png, ...) in a folder that takes its name when complete.

    `close()` with an existing destination (--force) swaps the new folder in and only then removes
    the old one.
    """

    def __init__(self, folder, ext: str = ".png", start: int = 0):
        self.path, self.ext, self.count = Path(folder), ext, start
        self.temporary = temporary_name(self.path)
        remove(self.temporary)
        self.temporary.mkdir(parents=True)

    def write(self, array: np.ndarray) -> None:
        ext = ".png" if array.ndim == 3 and array.shape[2] == 4 else self.ext
        with open(self.temporary / f"{self.count:06d}{ext}", "wb") as f:
            f.write(encode_image(array, ext))
        self.count += 1

    def close(self) -> None:
        old: Optional[Path] = None
        if self.path.exists():
            old = self.path.with_name(f"{self.path.name}.replaced-{os.getpid()}")
            os.replace(self.path, old)
        try:
            os.replace(self.temporary, self.path)
        except OSError as error:
            if old is not None:
                os.replace(old, self.path)  # the earlier output comes back
            raise MediaError(f"{self.path}: cannot put the finished pictures in place ({error})") from None
        if old is not None:
            remove(old)

    def abort(self) -> None:
        remove(self.temporary)
