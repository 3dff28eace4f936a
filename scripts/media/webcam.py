"""The webcam app's loop, with camera, window and virtual camera passed in (so it runs headless in tests).

States: until a background is captured the window shows the camera with instructions; afterwards
it shows the chosen view of the matte. Keys:

    b      capture the background (step out of view first); press again to recapture
    o/tab  next view: composite, alpha, foreground, error, refined regions, camera
    f      show or hide the frame rate
    q/esc  quit

A camera is any object with OpenCV's `read() -> (ok, BGR frame)`; a window is any object with
`show(rgb) -> key code or -1`; a virtual camera is any object with `send(rgb)` (pyvirtualcam's).
"""
import threading
import time
from collections import deque
from typing import Optional, Sequence

import numpy as np

from .composite import Renderer, available, checkerboard, over
from .errors import MediaError

KEY_QUIT = (ord("q"), ord("Q"), 27)
KEY_BACKGROUND = (ord("b"), ord("B"))
KEY_VIEW = (ord("o"), ord("O"), 9)
KEY_FPS = (ord("f"), ord("F"))
VIEWS = ("com", "pha", "fgr", "err", "ref", "src")
HELP = "B: capture background   O: next view   F: fps   Q: quit"


def put_text(picture: np.ndarray, lines: Sequence[str], corner=(8, 8)) -> np.ndarray:
    import cv2
    picture = np.ascontiguousarray(picture)
    scale = max(0.45, picture.shape[0] / 900)
    y = corner[1]
    for line in lines:
        (w, h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(picture, (corner[0] - 4, y - 4), (corner[0] + w + 4, y + h + base + 2), (0, 0, 0), -1)
        cv2.putText(picture, line, (corner[0], y + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += h + base + 10
    return picture


class WebcamApp:
    def __init__(self, camera, runner, window, colour=(120, 255, 155), com_picture: Optional[np.ndarray] = None,
                 virtual_camera=None, show_fps: bool = True, mirror: bool = False, background: Optional[np.ndarray] = None,
                 view: str = "com", capture_after: Optional[float] = None, clock=time.perf_counter):
        self.camera, self.runner, self.window, self.virtual_camera = camera, runner, window, virtual_camera
        self.views = [v for v in VIEWS if v == "src" or available(v, runner.outputs)]
        if view not in self.views:
            raise MediaError(f"view {view!r} is not available with this model; choose one of {', '.join(self.views)}")
        self.view = view
        self.renderer = Renderer(tuple(v for v in self.views if v != "src"), colour)
        self.com_picture, self.show_fps, self.mirror = com_picture, show_fps, mirror
        self.capture_after, self.clock = capture_after, clock
        self.background, self.background_input = None, None
        self.backgrounds_captured = 0
        self.frames, self.failures = 0, 0
        self.times = deque(maxlen=30)
        self.started = clock()
        if background is not None:
            self.set_background(background)

    def set_background(self, frame: np.ndarray, captured: bool = True) -> None:
        self.background = np.array(frame, copy=True)
        self.background_input = self.runner.prepare(self.background)
        self.backgrounds_captured += captured

    def read(self) -> np.ndarray:
        import cv2
        ok, frame = self.camera.read()
        if not ok or frame is None:
            self.failures += 1
            if self.failures >= 30:
                raise MediaError("the camera stopped delivering frames (unplugged, or in use by another program?)")
            return None
        self.failures = 0
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(frame[:, ::-1]) if self.mirror else frame

    def picture(self, frame: np.ndarray) -> np.ndarray:
        """What the window shows for `frame` in the current state and view."""
        if self.background is None or self.view == "src":
            return frame
        if self.background.shape != frame.shape:  # the camera changed resolution
            from .decode import resize
            self.set_background(resize(self.background, (frame.shape[1], frame.shape[0])), captured=False)
        outputs = self.runner(self.runner.prepare(frame), self.background_input)
        com = None
        if self.com_picture is not None:
            from .decode import fit_background
            com = fit_background(self.com_picture, (frame.shape[1], frame.shape[0]), "--com-bg", "--com-bg", quiet=True)
            self.com_picture = com
        pictures = self.renderer(outputs, com)
        picture = pictures[self.view]
        if picture.ndim == 2:
            return np.repeat(picture[..., None], 3, axis=2)
        if picture.shape[2] == 4:
            return over(picture, checkerboard(*picture.shape[:2]))
        return picture

    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def step(self) -> bool:
        """One frame: read, matte, show, handle the key. False when the user quits."""
        frame = self.read()
        if frame is None:
            return True
        if self.background is None and self.capture_after is not None and self.clock() - self.started >= self.capture_after:
            self.set_background(frame)
        shown = self.picture(frame)
        self.times.append(self.clock())
        self.frames += 1
        lines = []
        if self.background is None:
            lines = ["Step out of view, then press B to capture the background", HELP]
        elif self.show_fps:
            lines = [f"{self.fps():.1f} fps  view: {self.view}"]
        if self.virtual_camera is not None and self.background is not None:
            self.virtual_camera.send(np.ascontiguousarray(shown))
        key = self.window.show(put_text(shown, lines) if lines else shown)
        return self.handle_key(key, frame)

    def handle_key(self, key: int, frame: np.ndarray) -> bool:
        if key is None or key < 0:
            return True
        if key in KEY_QUIT:
            return False
        if key in KEY_BACKGROUND:
            self.set_background(frame)
        elif key in KEY_VIEW:
            self.view = self.views[(self.views.index(self.view) + 1) % len(self.views)]
        elif key in KEY_FPS:
            self.show_fps = not self.show_fps
        return True

    def run(self, max_frames: Optional[int] = None) -> int:
        while max_frames is None or self.frames < max_frames:
            if not self.step():
                break
        return self.frames


class OpenCVWindow:
    """cv2.imshow with a key poll; a clear error where OpenCV has no GUI (the headless wheel)."""

    def __init__(self, title: str = "bgmv2 webcam"):
        import cv2
        self.cv2, self.title = cv2, title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise MediaError("this OpenCV cannot open windows (opencv-python-headless is installed): "
                             "pip install opencv-python for the window, or use --virtual-camera with --no-window") from None

    def show(self, picture: np.ndarray) -> int:
        cv2 = self.cv2
        cv2.imshow(self.title, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1)
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:  # closed with the mouse
            return 27
        return key & 0xFF if key >= 0 else -1

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)


class NoWindow:
    """For --no-window: nothing shown, no keys (quit with Ctrl-C)."""

    def show(self, picture: np.ndarray) -> int:
        return -1

    def close(self) -> None:
        pass


class LatestFrame:
    """Reads the camera on a thread and hands out only the newest frame, so a slow model never shows
    stale, buffered frames (the camera keeps its own pace)."""

    def __init__(self, camera):
        self.camera = camera
        self.frame = None
        self.lock = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self.loop, name="bgmv2-camera", daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while self.running:
            ok, frame = self.camera.read()
            with self.lock:
                if ok:
                    self.frame = frame
                self.lock.notify_all()
            if not ok:
                time.sleep(0.01)

    def read(self):
        """The newest frame not handed out yet (waiting up to 2 s for one)."""
        with self.lock:
            if self.frame is None:
                self.lock.wait_for(lambda: self.frame is not None, timeout=2.0)
            frame, self.frame = self.frame, None
        return frame is not None, frame

    def release(self) -> None:
        self.running = False
        self.thread.join(timeout=2.0)
        release = getattr(self.camera, "release", None)
        if release:
            release()


def open_camera(device_id: int, resolution=None):
    import cv2
    camera = cv2.VideoCapture(device_id)
    if not camera.isOpened():
        raise MediaError(f"could not open camera {device_id} (none connected, or in use by another program); "
                         "try --device-id 1")
    if resolution:
        camera.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
        camera.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
    return camera


def open_virtual_camera(width: int, height: int, fps: float = 30):
    try:
        import pyvirtualcam
    except ImportError:
        raise MediaError("--virtual-camera needs pyvirtualcam (pip install pyvirtualcam) and a virtual camera "
                         "driver (v4l2loopback on Linux, OBS on Windows and macOS)") from None
    try:
        return pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except RuntimeError as error:
        raise MediaError(f"could not start the virtual camera: {error}") from None
