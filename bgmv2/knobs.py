"""The one table and the one rule for the model's knobs: their names, types, defaults, valid values and
help (`TABLE`), and the message for a value that is not valid.

Every place that takes a knob asks here, so a value gets the same answer everywhere: `MattingRefine` and
`Refiner` (constructor and attribute assignment), scripted models (on every call, where assignment is
not intercepted), `converters` (knobs given to convert / load, and those read from a file's metadata)
and the command-line flags; the files' metadata, the flags and parity read the table (`FILE_KNOBS`,
`defaults()`, `flag()`). Torch-free: tensorflow_impl asks here too.

The valid values:
- `backbone_scale` in (0, 1/2]: the refiner works at 1/2 and 1/4 resolution.
- `refine_mode` one of `MODES`; `refine_kernel_size` 1 or 3; crop / replace methods from their lists.
- `refine_sample_pixels` a whole number >= 16: sampling refines 4x4 cells of 16 pixels, so fewer than
  16 would refine nothing.
- `refine_threshold` in [0, 1], the range of the coarse error (cells whose error exceeds it are
  refined; 1 refines none), or exactly -1, which refines every cell (the same as `refine_mode='full'`,
  which the tests use to check the two paths against each other).
- `refine_prevent_oversampling`, `refine_static_shapes`: true or false.
The check functions taking one typed value are TorchScript-compatible (scripted models call them, so
they spell their lists out instead of reading the tuples below);
`check_knob` also converts strings and numbers from files and command lines, in Python only.
"""
import math
from typing import Dict, List, Mapping, NamedTuple

MODES = ("full", "sampling", "thresholding")
KERNEL_SIZES = (1, 3)
CROP_METHODS = ("unfold", "gather", "roi_align")
REPLACE_METHODS = ("scatter_nd", "scatter_element")
CELL_PIXELS = 16  # one 4x4 cell
REFINE_EVERY_CELL = -1.0  # the threshold that selects every cell

CHOICES = {"refine_mode": MODES, "refine_kernel_size": KERNEL_SIZES,
           "refine_patch_crop_method": CROP_METHODS, "refine_patch_replace_method": REPLACE_METHODS}


class Knob(NamedTuple):
    """One MattingRefine argument: its type, its official default, the valid values in words, one line of
    help, and whether files record it and parity compares it (`in_files`; the others are fixed by the
    weights, or do not change the numbers)."""
    name: str
    type: type
    default: object
    rule: str
    help: str
    in_files: bool


TABLE = (
    Knob("backbone_scale", float, 0.25, "in (0, 1/2]",
         "resolution the backbone sees: 0.25 for HD, 0.125 for 4K", True),
    Knob("refine_mode", str, "sampling", "full, sampling or thresholding",
         "which 4x4 cells are refined: every cell, the k with the largest error, or those above the threshold",
         True),
    Knob("refine_sample_pixels", int, 80_000, "a whole number >= 16",
         "pixels refined in sampling mode: 80000 for HD, 320000 for 4K", True),
    Knob("refine_threshold", float, 0.1, "in [0, 1], or -1 for every cell",
         "coarse error above which thresholding mode refines a cell", True),
    Knob("refine_prevent_oversampling", bool, True, "true or false",
         "skip cells of zero error in sampling mode", True),
    Knob("refine_kernel_size", int, 3, "1 or 3", "the refiner's first convolutions (fixed by the weights)", False),
    Knob("refine_patch_crop_method", str, "unfold", "unfold, gather or roi_align",
         "how patches are cut (the same numbers)", False),
    Knob("refine_patch_replace_method", str, "scatter_nd", "scatter_nd or scatter_element",
         "how refined patches are put back (the same numbers)", False),
    Knob("refine_static_shapes", bool, False, "true or false",
         "sampling with data-independent shapes (the same numbers; for compilers and exporters)", False),
)
KNOBS = tuple(knob.name for knob in TABLE)
FILE_KNOBS = tuple(knob.name for knob in TABLE if knob.in_files)  # what a file records and parity compares
BY_NAME = {knob.name: knob for knob in TABLE}


def defaults(names=FILE_KNOBS) -> Dict[str, object]:
    """The official defaults of `names` (by default the knobs files record)."""
    return {name: BY_NAME[name].default for name in names}


def flag(name: str) -> str:
    """The command-line flag of a knob: refine_threshold -> --refine-threshold."""
    return "--" + name.replace("_", "-")


def range_error(name: str, got: str) -> str:
    """`NAME must be RULE; got VALUE. WHY`, for the knobs that take a range or a flag."""
    if name == "backbone_scale":
        return ("backbone_scale must be in (0, 1/2]; got " + got + ". The refiner works at 1/2 and 1/4 resolution, "
                "so the backbone must see at most half: use 0.25 for HD, 0.125 for 4K.")
    if name == "refine_sample_pixels":
        return ("refine_sample_pixels must be a whole number of at least 16 (one 4x4 cell); got " + got + ". "
                "It is how many pixels sampling mode refines per image: use 80000 for HD, 320000 for 4K.")
    if name == "refine_threshold":
        return ("refine_threshold must be in [0, 1] or -1; got " + got + ". Cells whose coarse error (in [0, 1]) "
                "exceeds it are refined (1: none); -1 refines every cell, as refine_mode='full'. Default 0.1.")
    return name + " must be true or false; got " + got + "."


def choice_error(name: str, got: str, choices: List[str]) -> str:
    """`NAME=VALUE is not supported; choose one of A, B`, for the knobs that take one of a list."""
    return name + "=" + got + " is not supported; choose one of " + ", ".join(choices)


def check_backbone_scale(scale: float) -> None:
    if not (0.0 < scale <= 0.5):  # False for NaN too
        raise ValueError(range_error("backbone_scale", str(scale)))


def check_sample_pixels(pixels: int) -> None:
    if pixels < 16:  # CELL_PIXELS
        raise ValueError(range_error("refine_sample_pixels", str(pixels)))


def check_threshold(threshold: float) -> None:
    if not (0.0 <= threshold <= 1.0 or threshold == -1.0):  # -1: REFINE_EVERY_CELL; NaN fails both
        raise ValueError(range_error("refine_threshold", str(threshold)))


def check_mode(mode: str) -> None:
    if mode not in ["full", "sampling", "thresholding"]:
        raise ValueError(choice_error("refine_mode", "'" + mode + "'", ["'full'", "'sampling'", "'thresholding'"]))


def check_kernel_size(size: int) -> None:
    if size != 1 and size != 3:
        raise ValueError(choice_error("refine_kernel_size", str(size), ["1", "3"]))


def check_crop_method(method: str) -> None:
    if method not in ["unfold", "gather", "roi_align"]:
        raise ValueError(choice_error("refine_patch_crop_method", "'" + method + "'",
                                      ["'unfold'", "'gather'", "'roi_align'"]))


def check_replace_method(method: str) -> None:
    if method not in ["scatter_nd", "scatter_element"]:
        raise ValueError(choice_error("refine_patch_replace_method", "'" + method + "'",
                                      ["'scatter_nd'", "'scatter_element'"]))


# -- Python only: values from files, command lines and keyword arguments ---------------------------
def as_number(value, whole: bool):
    """`value` as an int (whole) or float, from numbers and numeric strings; None when it is not one
    (bools, NaN and infinities, fractions where a whole number is needed, other types)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if whole:
        return int(number) if number == int(number) else None
    return number


def as_bool(value):
    """True / False from bools, 0 / 1 and the usual words; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
    return None


def show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_knob(name: str, value):
    """`value` converted to the knob's type (float, int, str or bool), or a ValueError naming the knob,
    the value and the valid range. `name` is the model argument's name (`refine_threshold`, ...)."""
    if name in ("backbone_scale", "refine_threshold", "refine_sample_pixels"):
        number = as_number(value, whole=name == "refine_sample_pixels")
        if number is None:
            raise ValueError(range_error(name, show(value)))
        {"backbone_scale": check_backbone_scale, "refine_threshold": check_threshold,
         "refine_sample_pixels": check_sample_pixels}[name](number)
        return number
    if name in ("refine_prevent_oversampling", "refine_static_shapes"):
        flag = as_bool(value)
        if flag is None:
            raise ValueError(range_error(name, show(value)))
        return flag
    if name == "refine_kernel_size":
        size = as_number(value, whole=True)
        if size not in KERNEL_SIZES:
            raise ValueError(choice_error(name, show(value if size is None else size), [str(s) for s in KERNEL_SIZES]))
        return size
    if name in CHOICES:
        if not isinstance(value, str) or value not in CHOICES[name]:
            raise ValueError(choice_error(name, show(value), [repr(c) for c in CHOICES[name]]))
        return value
    raise ValueError(f"unknown knob {name!r}; the knobs are {', '.join(KNOBS)}")


def check_knobs(knobs: Mapping[str, object]) -> Dict[str, object]:
    """Every knob of `knobs` checked and converted (`check_knob`); None values are left out."""
    return {name: check_knob(name, value) for name, value in knobs.items() if value is not None}
