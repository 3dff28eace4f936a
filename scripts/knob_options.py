"""The model knobs as command-line flags, shared by `bgmv2 convert` and `bgmv2 parity`, and the one
check of knob values every command calls (`check_knob_values`) before it loads a model."""
import argparse
from typing import Callable, Dict, Sequence

from bgmv2.knobs import BY_NAME, FILE_KNOBS as KNOBS, flag


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


def add_knob_flags(group, names: Sequence[str] = KNOBS, upstream_aliases: bool = False) -> None:
    """One flag per knob of `names`, from the knob table (`bgmv2.knobs.TABLE`): its type checked by the
    model's rule, its help and default from the table, None when not given (= the model's own).
    `upstream_aliases`: also upstream scripts' names (--model-backbone-scale, ...)."""
    for name in names:
        knob = BY_NAME[name]
        flags = [flag(name)]
        if upstream_aliases and knob.type is not bool:
            flags.append("--model-" + flag(name)[2:])
        default = ("on" if knob.default else "off") if knob.type is bool else knob.default
        text = f"{knob.help}; {knob.rule} (default: the model's, {default})"
        if knob.type is bool:
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            choices = [c for c in knob.rule.replace(" or ", ", ").split(", ") if " " not in c]
            metavar = "{" + ",".join(choices) + "}" if knob.type is not float and len(choices) > 1 else None
            group.add_argument(*flags, dest=name, type=knob_type(name), metavar=metavar, help=text)


def add_knob_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The flags of the knobs files record (--backbone-scale, --refine-mode, --refine-sample-pixels,
    --refine-threshold, --refine-prevent-oversampling), all defaulting to None (= not given)."""
    add_knob_flags(parser.add_argument_group(title), KNOBS)


def given_knobs(args: argparse.Namespace) -> Dict[str, object]:
    """The knobs given on the command line, by their model argument names."""
    return {name: getattr(args, name) for name in KNOBS if getattr(args, name, None) is not None}


def check_knob_values(knobs: Dict[str, object]) -> Dict[str, object]:
    """The knob values checked by the model's own rule (`bgmv2.knobs.check_knobs`); ValueError
    (one line: the knob, the value, the range) if not. None values are left out."""
    from bgmv2.knobs import check_knobs
    return check_knobs(knobs)
