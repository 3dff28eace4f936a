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

from .errors import MediaError, disk_error, warn

MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def temporary_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.partial-{os.getpid()}")


def remove(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except (FileNotFoundError, NotADirectoryError):
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


def write_bytes(path: Path, data: bytes) -> None:
    """The one place pictures reach the disk (tests replace it to simulate a full disk)."""
    with open(path, "wb") as f:
        f.write(data)


def make_folder(path: Path) -> None:
    """`path` and its parents; a file in the way or an unwritable disk is a one-line error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(error, path) from None


def write_image(path, array: np.ndarray) -> None:
    """One picture to `path` (type from its suffix), atomically (`bgmv2.atomic`)."""
    from bgmv2 import atomic
    path = Path(path)
    data = encode_image(array, path.suffix.lower())
    make_folder(path.parent)
    try:
        with atomic.writing(path, make_folder=False) as temporary:
            write_bytes(temporary, data)
    except OSError as error:
        raise disk_error(error, path) from None


def codec_available(name: str) -> bool:
    import av
    return name in av.codec.codecs_available


def check_codec(name: Optional[str]) -> str:
    """The video encoder to use: `name` if this FFmpeg build can encode video with it (else a
    MediaError listing some that it can); None means libx264, or mpeg4 (with a warning) without it."""
    import av
    if name is None:
        if codec_available("libx264"):
            return "libx264"
        warn("this FFmpeg build has no libx264; encoding with mpeg4 (pass --codec to choose)")
        return "mpeg4"
    try:
        codec = av.codec.Codec(name, "w")
        ok = codec.type == "video"
    except Exception:  # av raises its own error types (UnknownCodecError, ValueError) by version
        ok = False
    if not ok:
        common = [c for c in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "mpeg4", "h264_nvenc")
                  if codec_available(c)]
        raise MediaError(f"--codec {name}: not a video encoder of this FFmpeg build; try one of "
                         f"{', '.join(common)} (or --output-format png)")
    return name


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
        make_folder(self.path.parent)
        muxer = MUXERS.get(self.path.suffix.lower())
        if muxer is None:
            raise MediaError(f"{self.path}: unknown video container {self.path.suffix!r}; use .mp4, .mov or .mkv")
        width, height = size
        options = {}
        if kind == "rgba":
            codec, pix_fmt = "png", "rgba"
        else:
            codec = check_codec(codec)
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
        try:
            self.container = av.open(str(self.temporary), "w", format=muxer)
        except OSError as error:  # (PyAV's FFmpeg errors for files are OSErrors too)
            raise disk_error(error, self.path) from None
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
        import errno
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            return disk_error(error, self.path)  # (an encoder that cannot start says EPERM/EINVAL: not the disk)
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
        make_folder(self.temporary)

    def write(self, array: np.ndarray) -> None:
        ext = ".png" if array.ndim == 3 and array.shape[2] == 4 else self.ext
        try:
            write_bytes(self.temporary / f"{self.count:06d}{ext}", encode_image(array, ext))
        except OSError as error:
            raise disk_error(error, self.path) from None
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
