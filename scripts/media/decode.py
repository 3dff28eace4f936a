"""Reading: images, folders of images, video (PyAV) and backgrounds, as RGB uint8 (H, W, 3) frames.

Every failure a user can cause (missing path, empty folder, a file that is not an image or video, a
video without decodable frames or frame rate) is a `MediaError` naming the file. Video frames come
upright: a rotation tag (display matrix, as phones write) is applied while decoding.
"""
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from .errors import MediaError, warn

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif")


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(path, option: str = "--src") -> Tuple[Path, List[Path]]:
    """(root, sorted image files) for a file or a folder (searched recursively)."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{option} {path}: no such file or folder")
    if path.is_file():
        return path.parent, [path]
    files = sorted((p for p in path.rglob("*") if p.is_file() and is_image_file(p) and not p.name.startswith(".")),
                   key=lambda p: str(p.relative_to(path)))
    if not files:
        raise MediaError(f"{option} {path}: the folder has no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return path, files


def image_size(path) -> Tuple[int, int]:
    """(width, height) from the file header, upright (EXIF orientation applied); MediaError if unreadable."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError(f"{path}: not a readable image ({error})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def read_image(path, option: str = "") -> np.ndarray:
    """(H, W, 3) RGB uint8, EXIF orientation applied; alpha dropped, grey expanded, 16-bit reduced."""
    import cv2
    name = f"{option} {path}" if option else str(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise MediaError(f"{name}: cannot read ({error.strerror or error})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise MediaError(f"{name}: not a readable image (empty, truncated, or not a picture)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize(frame: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """`frame` at (width, height): area averaging when shrinking, bilinear when enlarging."""
    import cv2
    height, width = frame.shape[:2]
    if (width, height) == tuple(size):
        return frame
    shrink = size[0] * size[1] < width * height
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def open_container(path, option: str):
    import av
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{option} {path}: no such file")
    if path.is_dir():
        raise MediaError(f"{option} {path} is a folder; give a video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"{option} {path}: not a readable video ({error})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{option} {path}: the file has no video stream")
    return container


class VideoReader:
    """Frames of a video file, upright, as RGB uint8 arrays; `fps`, `frame_count` (estimate or None).

    `threads`: decoder threads (0 = FFmpeg's choice). `size`: (width, height) to resize every frame to.
    A file that ends early (decoding fails, or fewer frames than the container declares: a truncated
    download or copy) is a MediaError once the frames run out, unless `allow_short`: then a warning,
    and `shortfall` holds (decoded, declared).
    """

    def __init__(self, path, option: str = "--src", threads: int = 0, size: Optional[Tuple[int, int]] = None,
                 allow_short: bool = False):
        self.path, self.option, self.size, self.allow_short = Path(path), option, size, allow_short
        self.shortfall: Optional[Tuple[int, Optional[int]]] = None
        self.container = open_container(path, option)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        if not rate or rate <= 0:
            warn(f"{self.path} does not say its frame rate; assuming 30 frames/s for the outputs")
            rate = Fraction(30)
        self.fps = Fraction(rate).limit_denominator(100_000)
        frames = self.stream.frames
        if not frames and self.stream.duration and self.stream.time_base:
            frames = int(round(float(self.stream.duration * self.stream.time_base) * float(self.fps)))
        if not frames and self.container.duration:
            frames = int(round(self.container.duration / 1_000_000 * float(self.fps)))
        self.frame_count = frames or None
        self._first = None
        self._iterator = self._decode()

    def _decode(self) -> Iterator[np.ndarray]:
        import av
        count = 0
        try:
            for frame in self.container.decode(self.stream):
                array = frame.to_ndarray(format="rgb24")
                turns = int(round((frame.rotation or 0) / 90)) % 4
                if turns:  # rotation is counter-clockwise degrees, as np.rot90 turns
                    array = np.ascontiguousarray(np.rot90(array, turns))
                if self.size is not None:
                    array = resize(array, self.size)
                count += 1
                yield array
        except av.error.FFmpegError as error:
            if count == 0:
                raise MediaError(f"{self.option} {self.path}: cannot decode the video ({error})") from None
            self.ended_early(count, f"decoding failed: {error}")
            return
        if count == 0:
            raise MediaError(f"{self.option} {self.path}: the video has no decodable frames")
        expected = self.frame_count
        if expected and expected - count > max(1, expected // 100):  # (estimates from durations may be 1 off)
            self.ended_early(count, "the file ends early")

    def ended_early(self, count: int, reason: str) -> None:
        """A video that stops before its end: an error, or with allow_short a warning (see the class)."""
        declared = f" of the {self.frame_count} frames the file declares" if self.frame_count else ""
        text = f"{self.option} {self.path}: only {count} frame(s){declared} decode ({reason}): truncated or damaged"
        if not self.allow_short:
            raise MediaError(f"{text}. Nothing was written; re-encode or re-download it, or pass --continue-on-error "
                             f"to matte the {count} frame(s) that decode")
        self.shortfall = (count, self.frame_count)
        warn(f"{text}; matting the {count} that decode (--continue-on-error)")

    def first_frame(self) -> np.ndarray:
        """The first frame (decoded once and still returned by the iteration)."""
        if self._first is None:
            self._first = next(self._iterator)
        return self._first

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._iterator

    @property
    def frame_size(self) -> Tuple[int, int]:
        """(width, height) of the upright frames."""
        height, width = self.first_frame().shape[:2]
        return width, height

    def close(self) -> None:
        self._iterator.close()
        self.container.close()


class StillBackground:
    """One picture for every frame, fitted to each frame size (resized once per size, with a warning)."""

    def __init__(self, image: np.ndarray, name: str, option: str = "--bgr"):
        self.image, self.name, self.option = image, name, option
        self._sized = {}

    def frame(self, index: int, size: Tuple[int, int]) -> np.ndarray:
        if size not in self._sized:
            self._sized[size] = fit_background(self.image, size, self.name, self.option)
        return self._sized[size]

    def close(self) -> None:
        pass


class VideoBackground:
    """A background video read along with the source: frame i for frame i; its last frame once it ends."""

    def __init__(self, reader: VideoReader, option: str = "--bgr"):
        self.reader, self.option = reader, option
        self._frames = iter(reader)
        self._last, self._index, self._warned = None, -1, False
        self._warned_size = set()

    def frame(self, index: int, size: Tuple[int, int]) -> np.ndarray:
        while self._index < index:
            try:
                self._last = next(self._frames)
            except StopIteration:
                if not self._warned:
                    warn(f"{self.option} {self.reader.path} has only {self._index + 1} frames; its last frame is used "
                         "for the rest")
                    self._warned = True
                break
            self._index += 1
        frame = self._last
        if (frame.shape[1], frame.shape[0]) != tuple(size):
            quiet = size in self._warned_size
            self._warned_size.add(size)
            frame = fit_background(frame, size, str(self.reader.path), self.option, quiet=quiet)
        return frame

    def close(self) -> None:
        self.reader.close()


def fit_background(image: np.ndarray, size: Tuple[int, int], name: str, option: str, quiet: bool = False) -> np.ndarray:
    height, width = image.shape[:2]
    if (width, height) == tuple(size):
        return image
    if not quiet:
        aspect = abs(width / height - size[0] / size[1]) > 0.01
        warn(f"{option} {name} is {width}x{height} but the frames are {size[0]}x{size[1]}; resized to match"
             + (" (the aspect ratios differ, so it is stretched: check it was shot from the same place)" if aspect else ""))
    return resize(image, size)


def open_background(path, option: str = "--bgr", allow_video: bool = True, threads: int = 0,
                    allow_short: bool = False):
    """A background source for `path`: a still image, or (allow_video) a video read alongside."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{option} {path}: no such file")
    if path.is_dir():
        raise MediaError(f"{option} {path} is a folder; give one image" + (" or a video" if allow_video else ""))
    if is_video_file(path):
        if not allow_video:
            raise MediaError(f"{option} {path}: a video background only works with `bgmv2 video`")
        return VideoBackground(VideoReader(path, option, threads=threads, allow_short=allow_short), option)
    return StillBackground(read_image(path, option), str(path), option)


def relative_names(root: Path, files: List[Path]) -> List[Path]:
    return [f.relative_to(root) if f != root and root in f.parents else Path(f.name) for f in files]

