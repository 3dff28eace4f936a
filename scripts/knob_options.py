"""The model knobs as command-line flags, shared by `bgmv2 convert` and `bgmv2 parity`, and the one
check of knob values every command calls (`check_knob_values`) before it loads a model."""
import argparse
from typing import Callable, Dict

KNOBS = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold", "refine_prevent_oversampling")


def knob_type(name: str) -> Callable[[str], object]:
    """An argparse `type` that checks a flag's value by the model's own rule (`bgmv2.knobs`),
    so a bad value gets the model's message: `--refine-threshold 5` -> "refine_threshold must be in
    [0, 1] or -1; got 5.0. ..." (exit 2)."""
    def parse(text: str):
        from bgmv2.knobs import check_knob
        try:
            return check_knob(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = name  # argparse names the type in some messages
    return parse


def add_knob_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """--backbone-scale, --refine-mode, --refine-sample-pixels, --refine-threshold,
    --refine-prevent-oversampling, all defaulting to None (= not given)."""
    knobs = parser.add_argument_group(title)
    knobs.add_argument("--backbone-scale", type=knob_type("backbone_scale"), help="in (0, 0.5]: 0.25 for HD, 0.125 for 4K")
    knobs.add_argument("--refine-mode", type=knob_type("refine_mode"), metavar="{full,sampling,thresholding}")
    knobs.add_argument("--refine-sample-pixels", type=knob_type("refine_sample_pixels"),
                       help="pixels refined in sampling mode, at least 16 (80000 HD, 320000 4K)")
    knobs.add_argument("--refine-threshold", type=knob_type("refine_threshold"),
                       help="error threshold of thresholding mode, in [0, 1] or -1 for every cell (default 0.1)")
    knobs.add_argument("--refine-prevent-oversampling", action=argparse.BooleanOptionalAction, default=None,
                       help="drop sampled cells whose error is 0 (default on; `--refine-prevent-oversampling false` "
                            "is still read)")


def given_knobs(args: argparse.Namespace) -> Dict[str, object]:
    """The knobs given on the command line, by their model argument names."""
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name, None) is not None}


def check_knob_values(knobs: Dict[str, object]) -> Dict[str, object]:
    """The knob values checked by the model's own rule (`bgmv2.knobs.check_knobs`); ValueError
    (one line: the knob, the value, the range) if not. None values are left out."""
    from bgmv2.knobs import check_knobs
    return check_knobs(knobs)
