"""Diagnosis of a candidate's outputs as they are: swapped or renamed (matched to the reference's by
shape and value), a clamp missing, a 0-255 range. No re-run: the alternative is the candidate's own
outputs read another way, checked within the same limits.
"""
import itertools
from typing import Dict, List, Optional

import numpy as np

from .diagnosis_core import diagnosis, matches, safely

CONTRACT = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm", "err", "hid")


def distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.nan_to_num(np.abs(a - b), nan=1e9, posinf=1e9).mean())


def best_mapping(expected: List[Dict[str, np.ndarray]], got: List[Dict[str, np.ndarray]]) -> Optional[Dict[str, str]]:
    """Reference output -> candidate output: within each group of outputs of one shape, the one-to-one
    assignment closest in value (every permutation tried; groups are small); None when shapes differ."""
    def shapes(outputs, name):
        return tuple(np.shape(o.get(name)) for o in outputs)

    groups: Dict[tuple, List[str]] = {}
    for name in expected[0]:
        groups.setdefault(shapes(expected, name), []).append(name)
    mapping: Dict[str, str] = {}
    for shape, names in groups.items():
        options = [other for other in got[0] if shapes(got, other) == shape]
        if len(options) < len(names) or len(options) > 6:
            return None
        cost = {(name, other): sum(distance(e[name], o[other]) for e, o in zip(expected, got))
                for name in names for other in options}
        best = min(itertools.permutations(options, len(names)),
                   key=lambda chosen: sum(cost[name, other] for name, other in zip(names, chosen)))
        mapping.update(zip(names, best))
    return mapping


def describe_mapping(mapping: Dict[str, str]) -> str:
    """'pha<->fgr' for swaps, 'pha is named alpha' for renames, 'fgr holds pha' for other moves."""
    parts, done = [], set()
    for name, other in mapping.items():
        if name == other or name in done:
            continue
        if mapping.get(other) == name:
            parts.append(f"{name}<->{other}")
            done.update((name, other))
        elif other not in CONTRACT:
            parts.append(f"{name} is named {other!r}")
        else:
            parts.append(f"its output named {other} holds {name}")
    return ", ".join(parts)


def swapped_outputs(expected, got, knobs, limits) -> Optional[Dict[str, str]]:
    mapping = best_mapping(expected, got)
    if mapping is None or all(name == other for name, other in mapping.items()):
        return None
    renamed = [{name: o[other] for name, other in mapping.items()} for o in got]
    return mapping if safely(matches, expected, renamed, knobs, limits) else None


def outside_unit(got: List[Dict[str, np.ndarray]]) -> List[str]:
    names = []
    for name in ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm"):
        values = [np.asarray(o[name]) for o in got if name in o]
        if values and any(((v < 0) | (v > 1)).any() for v in values):
            names.append(name)
    return names


def outputs_step(expected, got, knobs, limits) -> Optional[Dict[str, str]]:
    """`outputs-swapped`, `convention` (a clamp missing) or `value-range` (0-255 outputs), or None."""
    mapping = swapped_outputs(expected, got, knobs, limits)
    if mapping is not None:
        renamed = any(other not in CONTRACT for other in mapping.values())
        what = "renamed" if renamed else "swapped"
        return diagnosis("outputs-swapped", f"its outputs are {what}: {describe_mapping(mapping)}; read by value "
                                            "instead of by name, every output matches. Name the outputs as the "
                                            "contract does (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)")
    unclamped = outside_unit(got)
    if unclamped:
        clamped = [{k: np.clip(v, 0, 1) if k in unclamped else v for k, v in o.items()} for o in got]
        if safely(matches, expected, clamped, knobs, limits):
            return diagnosis("convention", f"clamp missing: its output(s) {', '.join(unclamped)} leave [0, 1] (the "
                                           "model clamps them); clamped to [0, 1], it matches")
    if any(float(np.nanmax(o["pha"])) > 2 for o in got if "pha" in o):
        scaled = [{k: v / 255 if k in ("pha", "fgr", "pha_sm", "fgr_sm") else v for k, v in o.items()} for o in got]
        if safely(matches, expected, scaled, knobs, limits):
            return diagnosis("value-range", "its outputs are 0-255: divided by 255 they match")
    return None
