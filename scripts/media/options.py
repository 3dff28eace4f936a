"""Command-line arguments shared by `bgmv2 images|video|webcam|bench|demo` (no heavy imports here).

Our names come first; upstream's `inference_*.py` names are accepted as aliases (`--images-src`,
`--video-src`, `--model-checkpoint`, `--model-refine-threshold`, `--preprocess-alignment`,
`--video-target-bgr`, ...), so upstream command lines keep working. Model knobs default to None,
meaning "the model's own default" (e.g. `refine_threshold` 0.1, not upstream scripts' 0.7).
"""
import argparse

from bgmv2.scripts.arg_types import int_at_least, int_in, size_type
from bgmv2.knobs import FILE_KNOBS
from bgmv2.scripts.knob_options import add_knob_flags

OUTPUT_TYPES = ("com", "pha", "fgr", "err", "ref")
BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
PRECISIONS = ("fp32", "fp16", "bf16")
OLDER_BACKENDS = ("pt2", "converters")  # accepted for earlier command lines: torch, and the file's own
PRESETS = {"hd": {"backbone_scale": 0.25, "refine_sample_pixels": 80_000},
           "4k": {"backbone_scale": 0.125, "refine_sample_pixels": 320_000}}
KNOBS = (*FILE_KNOBS, "refine_kernel_size")  # the flags of the apps: the table's file knobs and the kernel size


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
size_wxh = size_type()  # WIDTHxHEIGHT, the one size order of every command (scripts.arg_types)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "--model-checkpoint", dest="model", metavar="FILE_OR_NAME",
                       help="weights in any supported format (.pth, .safetensors, TorchScript, ONNX, ...) or a zoo "
                            "name (`bgmv2 weights list`); default: the model this project ships")
    from bgmv2.converters import formats
    own = {}
    for name, module in formats.registry().items():
        own.setdefault(module.RUNTIMES[0], []).append(name)
    group.add_argument("--backend", choices=("auto", *formats.runtime_names(), *OLDER_BACKENDS), default="auto",
                       metavar="RUNTIME",
                       help="how to run the model: auto (default: the file's own runtime: "
                            + "; ".join(f"{runtime} for {', '.join(names)}" for runtime, names in own.items())
                            + ") or one of " + ", ".join(formats.runtime_names()) + ". "
                            + " ".join(f"{name}: {module.DESCRIPTION}." for name, module
                                       in formats.runtime_modules().items() if name not in own))
    group.add_argument("--model-type", "--kind", dest="kind",
                       choices=("mattingrefine", "mattingbase", "refine", "base"),
                       help="base runs the base network alone (default: from the file)")
    group.add_argument("--backbone", "--model-backbone", dest="backbone", choices=BACKBONES,
                       help="check the file holds this backbone (default: read from the file)")
    group.add_argument("--preset", choices=tuple(PRESETS), help="hd: scale 0.25, 80,000 pixels; 4k: 0.125, 320,000")
    add_knob_flags(group, KNOBS, upstream_aliases=True)
    group.add_argument("--device", default="auto",
                       help="cpu, cuda, cuda:1, ... (default: auto = cuda when PyTorch sees a GPU, else cpu)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="compute in this precision where the runtime can (PyTorch: fp16/bf16 on CPU too; fast: "
                            "restricts its choice); default: the file's own (PyTorch weights: fp32)")
    group.add_argument("--threads", type=int_at_least(1), help="CPU threads for inference (default: PyTorch's)")


def model_knobs(args: argparse.Namespace) -> dict:
    """The knobs the user set (preset first, explicit values over it), checked by the one knob rule
    (scripts.knob_options.check_knob_values; a MediaError names the bad one); absent ones keep the model's."""
    from bgmv2.scripts.knob_options import check_knob_values
    from .errors import MediaError
    knobs = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    for name in KNOBS:
        value = getattr(args, name, None)
        if value is not None:
            knobs[name] = value
    try:
        return check_knob_values(knobs)
    except ValueError as error:
        raise MediaError(str(error)) from None


def add_output_arguments(parser: argparse.ArgumentParser, default_types, video: bool) -> None:
    group = parser.add_argument_group("outputs")
    group.add_argument("--output-dir", "-o", required=True, help="folder for the outputs (created if missing)")
    group.add_argument("--output-types", nargs="+", choices=OUTPUT_TYPES, default=list(default_types),
                       metavar="TYPE",
                       help="any of com (composite), pha (alpha), fgr (foreground; PNG with alpha), err (error "
                            f"map), ref (refined regions); default: {' '.join(default_types)}")
    group.add_argument("--com-bg", "--video-target-bgr", "--target-bgr", dest="com_bg", default="green",
                       help="what com composites onto: a colour (green = upstream's 120,255,155, white, black, "
                            "blue, gray, #rrggbb or R,G,B), an image" + (" or a video" if video else "")
                            + " (default: green)")
    group.add_argument("--force", action="store_true",
                       help="overwrite outputs that exist (without it, nothing is written if any exists)")
    group.add_argument("--skip-existing", action="store_true",
                       help="make only the outputs that are missing (resume a stopped or partly failed run)")
    group.add_argument("--continue-on-error", action="store_true",
                       help="go on past " + ("a damaged or truncated input: keep what decodes, say what was lost"
                                             if video else "pictures that fail: list them at the end")
                            + " and exit with status 3 (default: stop at the first)")
    group.add_argument("--image-format", choices=("png", "jpg"), default="png",
                       help="file type of com, pha, err and ref pictures (fgr is always PNG with alpha)")
    if video:
        group.add_argument("--output-format", choices=("video", "png", "jpg", "image_sequences"), default="video",
                           help="video files (com.mp4, pha.mp4, ...; fgr.mov keeps alpha) or image sequences "
                                "(one folder per type; image_sequences = png)")
        group.add_argument("--codec", help="video encoder for mp4 outputs, any of this FFmpeg build's "
                                            "(default: libx264)")
        group.add_argument("--crf", type=int_in(0, 51), default=18,
                           help="x264 quality 0 to 51, lower is better (default: 18)")
        group.add_argument("--preset-x264", dest="x264_preset", default="veryfast", choices=X264_PRESETS,
                           metavar="PRESET",
                           help="x264 speed preset: " + ", ".join(X264_PRESETS) + " (default: veryfast)")
        group.add_argument("--encoder-threads", type=int_at_least(0),
                           help="threads per video encoder (default: 1 with CPU inference, which owns the cores; "
                                "FFmpeg's choice with CUDA)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="progress bar on stderr (default: on)")
    group.add_argument("--queue-size", type=int_at_least(1), default=4, help=argparse.SUPPRESS)
    group.add_argument("--num-workers", type=int, help=argparse.SUPPRESS)  # upstream's; decoding is threaded here


def add_alignment_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("background alignment")
    group.add_argument("--align", "--preprocess-alignment", dest="align", action="store_true",
                       help="warp the background onto each frame (features + RANSAC homography), for hand-held shots")
    group.add_argument("--align-method", choices=("orb", "sift", "akaze"), default="orb",
                       help="feature detector for --align (default: orb)")
