"""Argument types every `bgmv2` command shares, so one rule holds everywhere (no heavy imports here).

Sizes: always WIDTHxHEIGHT, as screens and videos are named (1280x720 is landscape HD), in every
command (video --resize, bench --size, parity --size, convert --probe, inspect --run, train --size).
Booleans: `--x` / `--no-x` (argparse.BooleanOptionalAction); the older `--x true|false` spelling of
the knob flags is still accepted (`legacy_booleans` rewrites it before parsing).
"""
import argparse
from typing import Iterable, List, Tuple

SIZE_RULE = "sizes are WIDTHxHEIGHT, e.g. 1280x720 (landscape HD)"
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def parse_size(text: str, multiple: int = 1) -> Tuple[int, int]:
    """'1280x720' -> (1280, 720) as (width, height); ValueError with the rule when it is not one."""
    parts = str(text).strip().lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        width, height = (int(v) for v in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not a size: give WIDTHxHEIGHT, e.g. 1280x720") from None
    if width < 1 or height < 1:
        raise ValueError(f"{text!r}: width and height must be positive (WIDTHxHEIGHT, e.g. 1280x720)")
    if multiple > 1 and (width % multiple or height % multiple):
        raise ValueError(f"{text!r}: width and height must be multiples of {multiple} (WIDTHxHEIGHT, e.g. 512x288)")
    return width, height


def size_type(multiple: int = 1):
    """An argparse type for WIDTHxHEIGHT sizes (each a multiple of `multiple`)."""
    def size(text: str) -> Tuple[int, int]:
        try:
            return parse_size(text, multiple)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    size.__name__ = "WIDTHxHEIGHT"
    return size


def int_at_least(low: int):
    """An argparse type for whole numbers >= low."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the least allowed value, {low}")
        return value
    whole.__name__ = "integer"
    return whole


def int_in(low: int, high: int):
    def whole(text: str) -> int:
        value = int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {low} to {high}")
        return value
    whole.__name__ = "integer"
    return whole


def float_in(low: float, high: float, low_open: bool = False):
    """An argparse type for finite numbers in [low, high] (or (low, high] with low_open)."""
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            shown = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a number in {shown}")
        return value
    number.__name__ = "number"
    return number


def boolean_flags(parser: argparse.ArgumentParser) -> List[str]:
    """The --x flags of `parser` (and its subparsers) that have a --no-x twin."""
    flags = []
    for action in parser._actions:
        if isinstance(action, argparse.BooleanOptionalAction):
            flags += [s for s in action.option_strings if not s.startswith("--no-")]
        elif isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags += boolean_flags(sub)
    return flags


def legacy_booleans(argv: Iterable[str], flags: Iterable[str]) -> List[str]:
    """`--x true|false` and `--x=true|false` -> `--x` / `--no-x`, for the flags in `flags`."""
    flags = set(flags)
    argv, out, i = list(argv), [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in flags and not eq and i + 1 < len(argv) and argv[i + 1].lower() in TRUE_WORDS + FALSE_WORDS:
            value, eq, i = argv[i + 1], "=", i + 1
        if name in flags and eq:
            if value.lower() in TRUE_WORDS:
                arg = name
            elif value.lower() in FALSE_WORDS:
                arg = "--no-" + name[2:]
        out.append(arg)
        i += 1
    return out


class SizeAction(argparse.Action):
    """A size as `WIDTHxHEIGHT` or, as upstream's scripts took it, two numbers `WIDTH HEIGHT`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("nargs", "+")
        kwargs.setdefault("metavar", "WIDTHxHEIGHT")
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        text = values[0] if len(values) == 1 else "x".join(values)
        try:
            if len(values) > 2:
                raise ValueError(f"{' '.join(values)!r}: give WIDTHxHEIGHT, e.g. 1280x720")
            setattr(namespace, self.dest, parse_size(text))
        except ValueError as error:
            raise argparse.ArgumentError(self, str(error)) from None
