"""`bgmv2 webcam`: live matting from a webcam, on CPU or CUDA.

    bgmv2 webcam                                  # shipped model, first camera
    bgmv2 webcam --device cuda --resolution 1280x720 --com-bg beach.jpg
    bgmv2 webcam --virtual-camera --no-window --bgr empty_room.png   # feed video-call apps

Step out of view and press B to capture the background; the window then shows the composite.
Keys: B recapture the background, O next view (composite, alpha, foreground, error, refined regions,
camera), F frame rate on/off, Q or Esc quit. --virtual-camera sends the view to a virtual camera
(needs pyvirtualcam and a driver) for video calls. The window needs OpenCV with GUI support
(opencv-python, not opencv-python-headless).
"""
import argparse

from bgmv2.scripts.arg_types import SizeAction

from bgmv2.scripts.media.options import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--device-id", "--camera", dest="device_id", type=int, default=0, help="camera index (default 0)")
    parser.add_argument("--resolution", action=SizeAction,
                        help="ask the camera for this size, e.g. 1280x720 (upstream's `1280 720` is read too)")
    parser.add_argument("--bgr", help="use this background picture instead of capturing one")
    parser.add_argument("--com-bg", default="green", help="composite onto a colour (green, white, #rrggbb, R,G,B) or a picture")
    parser.add_argument("--view", choices=("com", "pha", "fgr", "err", "ref", "src"), default="com", help="view at start")
    parser.add_argument("--hide-fps", action="store_true", help="do not show the frame rate")
    parser.add_argument("--mirror", action="store_true", help="flip the camera left to right, like a mirror")
    parser.add_argument("--virtual-camera", action="store_true", help="also send the view to a virtual camera (pyvirtualcam)")
    parser.add_argument("--no-window", action="store_true", help="no window (with --virtual-camera); quit with Ctrl-C")
    parser.add_argument("--capture-after", type=float, metavar="SECONDS",
                        help="capture the background automatically this long after start (default with --no-window: 5)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.media.app import run_app
    return run_app(webcam, args)


def webcam(args, camera=None, window=None, virtual_camera=None, max_frames=None) -> int:
    """The app; `camera`, `window` and `virtual_camera` replace the real ones in tests."""
    import sys
    from bgmv2.scripts.media import decode
    from bgmv2.scripts.media.composite import parse_colour
    from bgmv2.scripts.media.errors import MediaError
    from bgmv2.scripts.media.runner import load_runner
    from bgmv2.scripts.media import webcam as live

    if args.no_window and not args.virtual_camera and window is None:
        raise MediaError("--no-window shows nothing: add --virtual-camera, or leave --no-window out")
    colour = parse_colour(args.com_bg)
    com_picture = decode.read_image(args.com_bg) if colour is None else None
    background = decode.read_image(args.bgr) if args.bgr else None
    runner = load_runner(args)
    owned = []
    try:
        if camera is None:
            camera = live.LatestFrame(live.open_camera(args.device_id, args.resolution))
            owned.append(camera.release)
        ok, first = camera.read()
        if not ok or first is None:
            raise MediaError(f"camera {args.device_id} opened but gave no picture")
        height, width = first.shape[:2]
        if background is not None:
            background = decode.fit_background(background, (width, height), args.bgr, "--bgr")
            if args.mirror:  # the camera's frames are flipped before matting: flip the shot of its room too
                background = background[:, ::-1].copy()
        if window is None:
            window = live.NoWindow() if args.no_window else live.OpenCVWindow()
            owned.append(window.close)
        if virtual_camera is None and args.virtual_camera:
            virtual_camera = live.open_virtual_camera(width, height)
            owned.append(virtual_camera.close)
        capture_after = args.capture_after
        if capture_after is None and args.no_window and background is None:
            capture_after = 5.0
            print("capturing the background in 5 s: step out of view", file=sys.stderr)
        app = live.WebcamApp(camera, runner, window, colour=colour or (120, 255, 155), com_picture=com_picture,
                             virtual_camera=virtual_camera, show_fps=not args.hide_fps, mirror=args.mirror,
                             background=background, view=args.view, capture_after=capture_after)
        if not args.no_window:
            print(live.HELP, file=sys.stderr)
        frames = app.run(max_frames)
    finally:
        for close in reversed(owned):
            try:
                close()
            except Exception:
                pass
    print(f"{frames} frames, {app.backgrounds_captured} background capture(s)", file=sys.stderr)
    return 0
