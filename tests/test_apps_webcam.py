"""The webcam app without a camera: a fake camera, window (scripted keys) and virtual camera."""

import cv2
import numpy as np
import pytest
import torch

from bgmv2.pytorch_impl import MattingRefine
from bgmv2.scripts.cli import build_parser
from bgmv2.scripts.cmd_webcam import webcam
from bgmv2.scripts.media.errors import MediaError
from bgmv2.scripts.media.synth import synthetic_clip
from bgmv2.scripts.media.webcam import LatestFrame, WebcamApp


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("webcam") / "refine.pth"
    torch.manual_seed(0)
    torch.save(MattingRefine("mobilenetv2").state_dict(), path)
    return path


class FakeCamera:
    """The empty room for 3 frames, then a subject; BGR frames as OpenCV delivers them."""

    def __init__(self, frames=40, height=36, width=52):
        clip, bgr = synthetic_clip(4, height, width, seed=7)
        self.frames = [bgr] * 3 + clip * frames
        self.index = 0
        self.released = False

    def read(self):
        if self.index >= len(self.frames):
            return False, None
        frame = self.frames[self.index]
        self.index += 1
        return True, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)

    def release(self):
        self.released = True


class FakeWindow:
    """Presses `keys[i]` after showing frame i; records what it showed."""

    def __init__(self, keys):
        self.keys, self.shown = keys, []

    def show(self, picture):
        self.shown.append(picture.copy())
        return self.keys.get(len(self.shown) - 1, -1)

    def close(self):
        pass


class FakeVirtualCamera:
    def __init__(self):
        self.sent = []

    def send(self, frame):
        self.sent.append(frame.shape)

    def close(self):
        pass


def webcam_args(model, *extra):
    return build_parser().parse_args(["webcam", "--model", str(model), "--device", "cpu", "--threads", "1", *extra])


def test_capture_background_switch_views_recapture_and_quit(model, capsys):
    camera, virtual = FakeCamera(), FakeVirtualCamera()
    keys = {2: ord("b"), 4: ord("o"), 5: ord("o"), 6: ord("f"), 7: ord("b"), 9: ord("q")}
    window = FakeWindow(keys)
    assert webcam(webcam_args(model), camera=camera, window=window, virtual_camera=virtual) == 0
    # camera frame 0 went to sizing; frames 1-10 were shown; q after the 10th
    assert len(window.shown) == 10 and all(p.shape == (36, 52, 3) and p.dtype == np.uint8 for p in window.shown)
    assert "2 background capture(s)" in capsys.readouterr().err
    assert len(virtual.sent) == 7 and virtual.sent[0] == (36, 52, 3)  # sent once a background exists


def test_views_cycle_in_order(model):
    from bgmv2.scripts.media.runner import load_runner
    runner = load_runner(webcam_args(model), announce=False)
    window = FakeWindow({0: ord("b"), 1: 9, 2: 9, 3: 9, 4: 9, 5: 9, 6: 9})
    app = WebcamApp(FakeCamera(), runner, window, show_fps=False)
    views = []
    for _ in range(8):
        app.step()
        views.append(app.view)
    assert views == ["com", "pha", "fgr", "err", "ref", "src", "com", "com"]
    assert app.backgrounds_captured == 1
    # before the background exists the window shows the camera (with instructions), after: the matte
    assert not np.array_equal(window.shown[1], window.shown[0])


def test_given_background_and_automatic_capture(model, tmp_path):
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.runner import load_runner
    camera = FakeCamera()
    write_image(tmp_path / "room.png", cv2.cvtColor(camera.read()[1], cv2.COLOR_BGR2RGB))
    window = FakeWindow({3: ord("q")})
    assert webcam(webcam_args(model, "--bgr", str(tmp_path / "room.png"), "--com-bg", "white", "--mirror"),
                  camera=FakeCamera(), window=window) == 0
    assert len(window.shown) == 4
    runner = load_runner(webcam_args(model), announce=False)
    ticks = iter(range(100))
    app = WebcamApp(FakeCamera(), runner, FakeWindow({}), capture_after=2, clock=lambda: next(ticks))
    app.run(max_frames=4)
    assert app.background is not None and app.backgrounds_captured == 1


def test_errors_without_camera_window_or_frames(model):
    args = webcam_args(model, "--no-window")
    with pytest.raises(MediaError, match="--no-window shows nothing"):
        webcam(args)

    class Dead:
        def read(self):
            return False, None
    with pytest.raises(MediaError, match="gave no picture"):
        webcam(webcam_args(model), camera=Dead(), window=FakeWindow({}))

    class Dying(FakeCamera):
        def read(self):
            return (True, super().read()[1]) if self.index < 2 else (False, None)
    from bgmv2.scripts.media.runner import load_runner
    app = WebcamApp(Dying(), load_runner(webcam_args(model), announce=False), FakeWindow({}))
    with pytest.raises(MediaError, match="stopped delivering frames"):
        app.run()


def test_headless_opencv_and_missing_pyvirtualcam_are_clear():
    from bgmv2.scripts.media import webcam as live
    try:
        window = live.OpenCVWindow()
        window.close()
    except MediaError as error:
        assert "opencv-python-headless" in str(error)
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        with pytest.raises(MediaError, match="pip install pyvirtualcam"):
            live.open_virtual_camera(64, 48)


def test_latest_frame_drops_stale_frames():
    camera = FakeCamera(frames=5)
    latest = LatestFrame(camera)
    ok, frame = latest.read()
    assert ok and frame.shape == (36, 52, 3)
    latest.release()
    assert camera.released
