"""Upstream-compatible entry point: `python scripts/inference_video.py ...` runs `bgmv2 video ...`.

Upstream's options are accepted as they are (--model-type, --model-backbone, --model-checkpoint,
--model-refine-*, --video-src, --video-bgr, --video-resize,
--video-target-bgr, --output-format image_sequences). Differences that matter: --device defaults to
auto (CUDA only where there is a GPU), --model-refine-threshold defaults to the model's 0.1 (upstream's
scripts used 0.7), and existing outputs stop the run unless --force is given (no prompt).
"""
import os
import sys

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bgmv2.scripts.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["video", *sys.argv[1:]]))
