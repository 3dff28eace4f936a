"""`bgmv2 images`: matte a picture or a folder of pictures against a background shot.

    bgmv2 images --src photos/ --bgr empty_room.jpg --output-dir out/
    bgmv2 images --src photos/ --bgr backgrounds/ -o out/ --output-types com fgr --com-bg white

--bgr is one picture for all, or a folder with one background per picture (paired in sorted order).
Outputs go to OUTPUT_DIR/<type>/<name>.png (fgr: RGBA PNG, colour plus alpha), mirroring sub-folders
of --src. Each file is written under a temporary name and renamed when complete, in input order as
each picture completes; existing outputs stop the run unless --force (redo them) or --skip-existing
(make only the missing ones: resumes a stopped run) is given. A picture that fails stops the run with
the count written so far, unless --continue-on-error: then the others are made, the failures are
listed at the end and the exit status is 3.
"""
import argparse

from bgmv2.scripts.media.options import add_alignment_arguments, add_model_arguments, add_output_arguments
from bgmv2.scripts.media.pictures import DEFAULT_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--src", "--images-src", dest="src", required=True,
                        help="a picture, or a folder of pictures (searched recursively)")
    parser.add_argument("--bgr", "--images-bgr", dest="bgr", required=True,
                        help="the background without the subject: one picture, or a folder with one per picture")
    add_model_arguments(parser)
    add_output_arguments(parser, DEFAULT_TYPES, video=False)
    add_alignment_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.media.app import run_app
    from bgmv2.scripts.media.pictures import matte_images
    return run_app(matte_images, args)
