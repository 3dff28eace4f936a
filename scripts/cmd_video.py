"""`bgmv2 video`: matte a video against a background shot (a picture or a video).

    bgmv2 video --src talk.mp4 --bgr empty_room.jpg --output-dir out/
    bgmv2 video --src walk.mp4 --bgr plate.mp4 -o out/ --output-types com fgr --com-bg beach.mp4 --align

Decoding, inference and encoding run in three threads joined by bounded queues, so the pipeline
runs at nearly the model's own speed. Outputs: OUTPUT_DIR/com.mp4, pha.mp4, err.mp4, ref.mp4 and
fgr.mov (PNG frames with alpha), or with --output-format png|jpg one folder of numbered pictures per
type (fgr: RGBA PNG). Rotation tags are applied (outputs are upright). Nothing exists under its
final name until it is complete: Ctrl-C or SIGTERM leaves finished files and no partial ones.
--skip-existing makes only the output types that are missing (nothing, if all are there).
A truncated or damaged --src (fewer frames decode than the file declares) is an error, and nothing is
written; with --continue-on-error the frames that decode are matted, a warning names the shortfall,
and the exit status is 3.
"""
import argparse

from bgmv2.scripts.media.options import (add_alignment_arguments, add_model_arguments, add_output_arguments,
                                         size_wxh)
from bgmv2.scripts.media.video import DEFAULT_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--src", "--video-src", dest="src", required=True, help="the video to matte")
    parser.add_argument("--bgr", "--video-bgr", dest="bgr", required=True,
                        help="the background without the subject: a picture, or a video (frame i for frame i)")
    parser.add_argument("--resize", type=size_wxh, metavar="WIDTHxHEIGHT",
                        help="resize the frames first, e.g. 1280x720")
    parser.add_argument("--video-resize", type=int, nargs=2, metavar=("W", "H"), help=argparse.SUPPRESS)
    add_model_arguments(parser)
    add_output_arguments(parser, DEFAULT_TYPES, video=True)
    add_alignment_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bgmv2.scripts.media.app import run_app
    from bgmv2.scripts.media.video import video_status
    return run_app(video_status, args)
