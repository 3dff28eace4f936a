"""Command-line arguments shared by `bgmv2 images|video|webcam|bench|demo` (no heavy imports here).

Our names come first; upstream's `inference_*.py` names are accepted as aliases (`--images-src`,
`--video-src`, `--model-checkpoint`, `--model-refine-threshold`, `--preprocess-alignment`,
`--video-target-bgr`, ...), so upstream command lines keep working. Model knobs default to None,
meaning "the model's own default" (e.g. `refine_threshold` 0.1, not upstream scripts' 0.7).
"""
import argparse

OUTPUT_TYPES = ("com", "pha", "fgr", "err", "ref")
BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
REFINE_MODES = ("full", "sampling", "thresholding")
PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnxruntime", "tensorflow", "pt2", "converters", "fast")
PRESETS = {"hd": {"backbone_scale": 0.25, "refine_sample_pixels": 80_000},
           "4k": {"backbone_scale": 0.125, "refine_sample_pixels": 320_000}}
KNOBS = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold",
         "refine_prevent_oversampling", "refine_kernel_size")


def size_wxh(text: str):
    """'1280x720' -> (1280, 720) as (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return width, height


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
    group.add_argument("--backbone-scale", "--model-backbone-scale", dest="backbone_scale", type=float,
                       help="resolution the backbone sees, in (0, 0.5] (default: the model's, 0.25)")
    group.add_argument("--refine-mode", "--model-refine-mode", dest="refine_mode", choices=REFINE_MODES,
                       help="default: the model's, sampling")
    group.add_argument("--refine-sample-pixels", "--model-refine-sample-pixels", dest="refine_sample_pixels",
                       type=int, help="pixels refined in sampling mode (default: the model's, 80,000)")
    group.add_argument("--refine-threshold", "--model-refine-threshold", dest="refine_threshold", type=float,
                       help="error threshold in thresholding mode (default: the model's, 0.1)")
    group.add_argument("--refine-kernel-size", "--model-refine-kernel-size", dest="refine_kernel_size", type=int,
                       choices=(1, 3), help="checked against the file (default: read from the file)")
    group.add_argument("--refine-prevent-oversampling", dest="refine_prevent_oversampling",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="skip cells of zero error in sampling mode (default: the model's, on)")
    group.add_argument("--device", default="auto",
                       help="cpu, cuda, cuda:1, ... (default: auto = cuda when PyTorch sees a GPU, else cpu)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="weights and inputs in this precision (fp16/bf16 run on CPU too)")
    group.add_argument("--threads", type=int, help="CPU threads for inference (default: PyTorch's)")


def model_knobs(args: argparse.Namespace) -> dict:
    """The knobs the user set (preset first, explicit values over it); absent ones keep the model's."""
    knobs = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    for name in KNOBS:
        value = getattr(args, name, None)
        if value is not None:
            knobs[name] = value
    return knobs


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
    group.add_argument("--image-format", choices=("png", "jpg"), default="png",
                       help="file type of com, pha, err and ref pictures (fgr is always PNG with alpha)")
    if video:
        group.add_argument("--output-format", choices=("video", "png", "jpg", "image_sequences"), default="video",
                           help="video files (com.mp4, pha.mp4, ...; fgr.mov keeps alpha) or image sequences "
                                "(one folder per type; image_sequences = png)")
        group.add_argument("--codec", default="libx264", help="video encoder for mp4 outputs (default: libx264)")
        group.add_argument("--crf", type=int, default=18, help="x264 quality, lower is better (default: 18)")
        group.add_argument("--preset-x264", dest="x264_preset", default="veryfast",
                           help="x264 speed preset (default: veryfast)")
        group.add_argument("--encoder-threads", type=int,
                           help="threads per video encoder (default: 1 with CPU inference, which owns the cores; "
                                "FFmpeg's choice with CUDA)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    group.add_argument("--queue-size", type=int, default=4, help=argparse.SUPPRESS)
    group.add_argument("--num-workers", type=int, help=argparse.SUPPRESS)  # upstream's; decoding is threaded here


def add_alignment_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("background alignment")
    group.add_argument("--align", "--preprocess-alignment", dest="align", action="store_true",
                       help="warp the background onto each frame (features + RANSAC homography), for hand-held shots")
    group.add_argument("--align-method", choices=("orb", "sift", "akaze"), default="orb",
                       help="feature detector for --align (default: orb)")
