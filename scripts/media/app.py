"""How every matting app starts and ends: allocator setting, clear errors, Ctrl-C, exit status."""
import sys
from typing import Callable

from .errors import MediaError

from bgmv2.scripts.exits import EXIT_ERROR, EXIT_INTERRUPTED, interrupted_message, interrupted_status  # noqa: F401
# optional packages the apps import when they need them -> the extra that installs them
EXTRA_OF_MODULE = {"cv2": "video", "av": "video", "PIL": "video", "tqdm": "video", "onnx": "onnx",
                   "onnxruntime": "onnx", "tensorflow": "tf-cpu", "keras": "tf-cpu"}


def passive_openmp() -> None:
    """Make OpenMP threads sleep at barriers instead of spinning (unless the user chose otherwise).

    The apps run decoding and encoding threads beside PyTorch's OpenMP team, and users run them beside
    other programs (a video call, a training job). With libgomp's default spinning, a team member
    that loses its core stalls every parallel region: measured on 2 shared cores at 1280x720, 2 to 6 s
    per frame spinning against 0.6 to 1.0 s passive. Takes effect only before torch is imported (the
    `bgmv2` command imports it after this).
    """
    import os
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_app(main: Callable, args) -> int:
    """Run `main(args)`; a MediaError prints `error: ...` (status 1), Ctrl-C prints what was kept (130;
    SIGTERM 143)."""
    from bgmv2.scripts.allocator import keep_freed_memory
    passive_openmp()
    keep_freed_memory()
    try:
        return main(args) or 0
    except MediaError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        if top not in EXTRA_OF_MODULE:
            raise
        print(f"error: this command needs the `{top}` package, which is not installed: "
              f"pip install 'bgmv2-zoo[{EXTRA_OF_MODULE[top]}]'", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (scripts.exits.Terminated)
        print(interrupted_message(error), file=sys.stderr)
        return interrupted_status(error)
