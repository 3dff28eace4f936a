"""Command-line arguments shared by `bgmv2 images|video|webcam|bench|demo` (no heavy imports here).

Our names come first; upstream's `inference_*.py` names are accepted as aliases (`--images-src`,
`--video-src`, `--model-checkpoint`, `--model-refine-threshold`, `--preprocess-alignment`,
`--video-target-bgr`, ...), so upstream command lines keep working. Model knobs default to None,
meaning "the model's own default" (e.g. `refine_threshold` 0.1, not upstream scripts' 0.7).
"""
import argparse

from bgmv2.scripts.arg_types import int_at_least, int_in, size_type
from bgmv2.scripts.knob_options import knob_type

OUTPUT_TYPES = ("com", "pha", "fgr", "err", "ref")
BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
REFINE_MODES = ("full", "sampling", "thresholding")
PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnxruntime", "tensorflow", "pt2", "converters", "fast")
PRESETS = {"hd": {"backbone_scale": 0.25, "refine_sample_pixels": 80_000},
           "4k": {"backbone_scale": 0.125, "refine_sample_pixels": 320_000}}
KNOBS = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold",
         "refine_prevent_oversampling", "refine_kernel_size")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
size_wxh = size_type()  # WIDTHxHEIGHT, the one size order of every command (scripts.arg_types)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "--model-checkpoint", dest="model", metavar="FILE_OR_NAME",
                       help="weights in any supported format (.pth, .safetensors, TorchScript, ONNX, ...) or a zoo "
                            "name (`bgmv2 weights list`); default: the model this project ships")
    group.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="runtime: torch (PyTorch files here, on --device in --precision), onnxruntime (ONNX), "
                            "tensorflow (Keras weights, SavedModel), pt2 (torch.export), converters (any format "
                            "through the converters' runners), fast (PyTorch weights: the fastest way here that "
                            "gives eager's matte, chosen, checked and cached on first use; --precision fp32 lets it "
                            "pick bf16/fp16); "
                            "default auto: torch for PyTorch files, else the file's own")
    group.add_argument("--model-type", "--kind", dest="kind",
                       choices=("mattingrefine", "mattingbase", "refine", "base"),
                       help="base runs the base network alone (default: from the file)")
    group.add_argument("--backbone", "--model-backbone", dest="backbone", choices=BACKBONES,
                       help="check the file holds this backbone (default: read from the file)")
    group.add_argument("--preset", choices=tuple(PRESETS), help="hd: scale 0.25, 80,000 pixels; 4k: 0.125, 320,000")
    group.add_argument("--backbone-scale", "--model-backbone-scale", dest="backbone_scale", type=knob_type("backbone_scale"),
                       help="resolution the backbone sees, in (0, 0.5] (default: the model's, 0.25)")
    group.add_argument("--refine-mode", "--model-refine-mode", dest="refine_mode", type=knob_type("refine_mode"),
                       metavar="{" + ",".join(REFINE_MODES) + "}",
                       help="default: the model's, sampling")
    group.add_argument("--refine-sample-pixels", "--model-refine-sample-pixels", dest="refine_sample_pixels",
                       type=knob_type("refine_sample_pixels"),
                       help="pixels refined in sampling mode, at least 16 (default: the model's, 80,000)")
    group.add_argument("--refine-threshold", "--model-refine-threshold", dest="refine_threshold",
                       type=knob_type("refine_threshold"),
                       help="error threshold in thresholding mode, in [0, 1] or -1 for every cell (default: the model's, 0.1)")
    group.add_argument("--refine-kernel-size", "--model-refine-kernel-size", dest="refine_kernel_size",
                       type=knob_type("refine_kernel_size"), metavar="{1,3}",
                       help="checked against the file (default: read from the file)")
    group.add_argument("--refine-prevent-oversampling", dest="refine_prevent_oversampling",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="skip cells of zero error in sampling mode (default: the model's, on)")
    group.add_argument("--device", default="auto",
                       help="cpu, cuda, cuda:1, ... (default: auto = cuda when PyTorch sees a GPU, else cpu)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="weights and inputs in this precision (fp16/bf16 run on CPU too)")
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
