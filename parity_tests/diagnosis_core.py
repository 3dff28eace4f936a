"""What every diagnosis step shares: the result, the two ways an alternative explains a failure, and
running alternatives safely (one that raises explains nothing).

- `matches`: the candidate is within the check's own limits of the alternative's outputs: the
  alternative is what the candidate computes (exact changes: a convention, swapped inputs).
- `closer`: the alternative's alpha lies at least `CLOSER` times nearer the candidate's than the
  reference's does, coarse and full resolution alike: for changes a re-run can only approximate
  (int8 quantisation, weights rounded after BatchNorm folding), where the candidate's own rounding
  differs from the re-run's.
"""
from typing import Callable, Dict, List, Optional

import numpy as np

from bgmv2.converters.agreement import ParityMetrics

CLOSER = 4.0  # how much nearer an approximate alternative must be


def diagnosis(code: str, detail: str) -> Dict[str, str]:
    return {"code": code, "detail": detail}


def matches(reference_out, candidate_out, knobs, limits) -> bool:
    """Whether candidate outputs (one dict, or a list over probes) are within `limits` of the reference's."""
    if isinstance(reference_out, dict):
        reference_out, candidate_out = [reference_out], [candidate_out]
    metrics = ParityMetrics()
    for expected, got in zip(reference_out, candidate_out):
        metrics.add(expected, got, knobs, limits.band)
    return not limits.violations(metrics)


def clearly_off(reference_out: Dict[str, np.ndarray], candidate_out: Dict[str, np.ndarray], knobs, limits) -> bool:
    """True when one probe alone already breaks a max limit (the max over all probes can only be larger):
    an alternative rejected after its first probe, not all of them."""
    from bgmv2.converters.acceptance import candidate_stats
    metrics = ParityMetrics()
    metrics.add(reference_out, candidate_out, knobs, limits.band)
    if metrics.shape_mismatch:
        return True
    for name, (max_limit, _) in limits.per_output.items():
        stats = candidate_stats(metrics, name)
        if stats is not None and not stats.max_abs <= max_limit:
            return True
    return False


def matches_each(run: Callable, probes, got: List[Dict[str, np.ndarray]], knobs, limits) -> Optional[list]:
    """`run(probe)` for each probe, stopping at the first that is `clearly_off` from `got`; the outputs
    when every probe ran and they all `match`, else None."""
    found = []
    for probe, have in zip(probes, got):
        out = safely(run, probe)
        if out is None or safely(clearly_off, out, have, knobs, limits) is not False:
            return None
        found.append(out)
    return found if safely(matches, found, got, knobs, limits) else None


def mean_distance(a: List[Dict[str, np.ndarray]], b: List[Dict[str, np.ndarray]], name: str) -> Optional[float]:
    pairs = [(x[name], y[name]) for x, y in zip(a, b)
             if name in x and name in y and np.shape(x[name]) == np.shape(y[name])]
    if not pairs:
        return None
    total = sum(float(np.abs(np.asarray(x, np.float64) - y).sum()) for x, y in pairs)
    return total / sum(np.size(x) for x, _ in pairs)


def closer(alternative, got, expected, factor: float = CLOSER) -> Optional[float]:
    """How many times nearer `alternative` is to `got` than `expected` is (mean |d| of pha and pha_sm,
    the worse of the two), when at least `factor`; else None."""
    ratios = []
    for name in ("pha", "pha_sm"):
        near, far = mean_distance(alternative, got, name), mean_distance(expected, got, name)
        if near is None or far is None:
            continue
        ratios.append(far / near if near > 0 else (float("inf") if far > 0 else 1.0))
    if not ratios or min(ratios) < factor:
        return None
    return min(ratios)


def on_all(run: Callable, probes) -> Optional[list]:
    """`run(probe)` for every probe, or None when one fails."""
    found = []
    for probe in probes:
        out = safely(run, probe)
        if out is None:
            return None
        found.append(out)
    return found


def safely(call: Callable, *args):
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - an alternative that cannot run explains nothing
        return None
