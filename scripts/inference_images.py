"""Upstream-compatible entry point: `python scripts/inference_images.py ...` runs `bgmv2 images ...`.

Upstream's options are accepted as they are (--model-type, --model-backbone, --model-checkpoint,
--model-refine-*, --images-src, --images-bgr, --preprocess-alignment). Differences that matter: --device defaults to
auto (CUDA only where there is a GPU), --model-refine-threshold defaults to the model's 0.1 (upstream's
scripts used 0.7), and existing outputs stop the run unless --force is given (no prompt).
"""
import os
import sys

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bgmv2.scripts.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["images", *sys.argv[1:]]))
