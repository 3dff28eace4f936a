"""Diagnosis of a batch-dependent bug: the items of every probe with more than one picture checked one
by one, and each failing item run again alone. A file right at batch 1 and wrong for the second
picture of a batch (upstream's own `export_onnx.py` file: its refiner crops every patch from item 1)
shows as "only batch item 2 differs; alone it matches".
"""
from typing import Dict, List, Optional

import numpy as np

from .diagnosis_core import diagnosis, matches, safely


def item(outputs: Dict[str, np.ndarray], index: int) -> Dict[str, np.ndarray]:
    return {name: value[index:index + 1] for name, value in outputs.items() if np.ndim(value) >= 1}


def batch_step(candidate, knobs, probes, expected: List[Dict[str, np.ndarray]], got: List[Dict[str, np.ndarray]],
               limits) -> Optional[Dict[str, str]]:
    """`batch` when some items of a batch fail and each failing item matches run alone, else None."""
    failing, passing, alone_ok = [], [], []
    for probe, want, have in zip(probes, expected, got):
        if probe.batch < 2 or any(np.shape(have.get(n)) != np.shape(v) for n, v in want.items()):
            continue
        for index in range(probe.batch):
            if safely(matches, item(want, index), item(have, index), knobs, limits):
                passing.append((probe, index))
                continue
            failing.append((probe, index))
            alone = safely(candidate.runner, probe.src[index:index + 1], probe.bgr[index:index + 1])
            if alone is not None and safely(matches, item(want, index), alone, knobs, limits):
                alone_ok.append((probe, index))
    if not failing or len(alone_ok) != len(failing):
        return None
    items = "; ".join(f"item {index + 1} of {probe.batch} ({probe.describe()})" for probe, index in failing)
    if passing:
        fine = ", ".join(f"item {index + 1}" for _, index in passing)
        verb = "matches" if len(passing) == 1 else "match"
        return diagnosis("batch", f"batch-dependent: only batch {items} differs, and run alone it matches ({fine} "
                                  f"{verb} in the batch). The file mixes up the items of a batch (e.g. the refiner crops "
                                  "its patches from item 1): run it at batch 1, or export it again with the batch "
                                  "index kept")
    return diagnosis("batch", f"batch-dependent: every item differs in its batch ({items}), and each matches run "
                              "alone: run it at batch 1, or export it again with the batch index kept")
