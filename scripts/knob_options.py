"""The model knobs as command-line flags, shared by `bgmv2 convert` and `bgmv2 parity`, and the one
check of knob values every command calls (`check_knob_values`) before it loads a model."""
import argparse
from typing import Dict

KNOBS = ("backbone_scale", "refine_mode", "refine_sample_pixels", "refine_threshold", "refine_prevent_oversampling")


def add_knob_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """--backbone-scale, --refine-mode, --refine-sample-pixels, --refine-threshold,
    --refine-prevent-oversampling, all defaulting to None (= not given)."""
    knobs = parser.add_argument_group(title)
    knobs.add_argument("--backbone-scale", type=float, help="0.25 for HD, 0.125 for 4K")
    knobs.add_argument("--refine-mode", choices=("full", "sampling", "thresholding"))
    knobs.add_argument("--refine-sample-pixels", type=int, help="pixels refined in sampling mode (80000 HD, 320000 4K)")
    knobs.add_argument("--refine-threshold", type=float, help="error threshold of thresholding mode (default 0.1)")
    knobs.add_argument("--refine-prevent-oversampling", action=argparse.BooleanOptionalAction, default=None,
                       help="drop sampled cells whose error is 0 (default on; `--refine-prevent-oversampling false` "
                            "is still read)")


def given_knobs(args: argparse.Namespace) -> Dict[str, object]:
    """The knobs given on the command line, by their model argument names."""
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name, None) is not None}


def check_knob_values(knobs: Dict[str, object]) -> Dict[str, object]:
    """The knob values checked by one rule; ValueError (one line: the knob, the value, the range) if not.

    The rule is the model layer's own: `pytorch_impl.check_knobs(knobs)` where this tree has it (the
    models refuse the same values), else the converters' check plus the threshold's range.
    """
    import pytorch_impl
    model_rule = getattr(pytorch_impl, "check_knobs", None)
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if callable(model_rule):
        checked = model_rule(dict(knobs))
        return dict(checked) if isinstance(checked, dict) else knobs
    from converters.api import check_knobs
    kernel = knobs.pop("refine_kernel_size", None)
    checked = check_knobs(knobs)
    threshold = checked.get("refine_threshold")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"refine_threshold={threshold:g} must be in [0, 1]: the error it is compared with is in "
                         "[0, 1] (default 0.1)")
    if kernel is not None:
        checked["refine_kernel_size"] = kernel
    return checked
