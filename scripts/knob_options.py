"""The model knobs as command-line flags, shared by `bgmv2 convert` and `bgmv2 parity`."""
import argparse
from typing import Dict

KNOBS = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold", "refine_prevent_oversampling")


def true_or_false(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: give true or false")


def add_knob_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """--backbone-scale, --refine-mode, --refine-sample-pixels, --refine-threshold,
    --refine-prevent-oversampling, all defaulting to None (= not given)."""
    knobs = parser.add_argument_group(title)
    knobs.add_argument("--backbone-scale", type=float, help="0.25 for HD, 0.125 for 4K")
    knobs.add_argument("--refine-mode", choices=("full", "sampling", "thresholding"))
    knobs.add_argument("--refine-sample-pixels", type=int, help="pixels refined in sampling mode (80000 HD, 320000 4K)")
    knobs.add_argument("--refine-threshold", type=float, help="error threshold of thresholding mode (default 0.1)")
    knobs.add_argument("--refine-prevent-oversampling", type=true_or_false, metavar="true|false",
                       help="drop sampled cells whose error is 0 (default true)")


def given_knobs(args: argparse.Namespace) -> Dict[str, object]:
    """The knobs given on the command line, by their model argument names."""
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name, None) is not None}
