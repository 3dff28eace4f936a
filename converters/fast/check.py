"""Is a fast candidate's matte the eager model's matte? The one acceptance rule (`converters.acceptance`),
judged on the frames themselves.

On the first frame of a shape the eager model also runs in float64 (and in the candidate's precision
when that is lower) on the CPU, on that frame and on `bgmv2 parity`'s default probes (a frame whose
alpha is all 0 or 1 has no rounding error to measure): its own rounding error sets the limits of the
candidate's precision, as in `bgmv2 parity`. Every checked frame is then measured against eager's outputs on that frame with those
limits. Beside the rule, the figure users understand: at most 0.5% of the 8-bit alpha values may be
more than 2 levels from eager's (`MAX_SHARE`): measured with the shipped MobileNetV2 on synthetic
composites at 1280x720, 0.15-0.23% for compiled bf16 (flips at the top-k boundary and soft edges).
"""
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
import torch

from bgmv2.converters.acceptance import LEVELS, Limits, rule_for
from bgmv2.converters.agreement import ParityMetrics

MAX_SHARE = 0.005  # share of 8-bit alpha values allowed beyond LEVELS


@dataclass
class Verdict:
    ok: bool
    share: float  # of 8-bit alpha values off by more than LEVELS
    text: str


def numpy_outputs(out: Sequence[torch.Tensor]) -> Dict[str, np.ndarray]:
    """The model's output tuple as named float32 numpy arrays (the contract's names)."""
    from bgmv2.converters.formats import OUTPUTS_BASE, OUTPUTS_REFINE
    names = OUTPUTS_REFINE if len(out) == 6 else OUTPUTS_BASE
    return {name: value.detach().float().cpu().numpy() for name, value in zip(names, out)}


def padded(x: np.ndarray) -> np.ndarray:
    """An NCHW frame edge-padded to a multiple of 4, as runners pad any size (the model takes no other)."""
    height, width = x.shape[-2:]
    return np.pad(x, ((0, 0), (0, 0), (0, -height % 4), (0, -width % 4)), mode="edge")


def limits_for(model: torch.nn.Module, src: torch.Tensor, bgr: torch.Tensor, knobs: Dict[str, object],
               precision: str) -> Limits:
    """The rule's limits for `precision`: eager's own rounding error against float64 on this frame and
    on parity's default probes."""
    from bgmv2.converters.probes import Probe, default_probes
    from bgmv2.converters.reference import Reference
    rule = rule_for(precision)
    probe = Probe("frame", *(padded(x.detach().float().cpu().numpy()) for x in (src, bgr)))
    return rule.limits(Reference(model=model).noise(knobs, [probe, *default_probes()], rule.name))


def check(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor], limits: Limits,
          knobs: Dict[str, object], label: str) -> Verdict:
    """Judge a candidate's outputs against eager's (both the model's output tuple) with `limits`."""
    ref, cand = numpy_outputs(reference), numpy_outputs(candidate)
    metrics = ParityMetrics()
    metrics.add(ref, cand, knobs, limits.band)
    violations = limits.violations(metrics)
    pha = metrics.outputs.get("pha")
    share = pha.share_over(LEVELS) if pha is not None else 1.0
    ok = not violations and share <= MAX_SHARE
    rule = f"{limits.name} rule: " + ("same alpha" if not violations else "; ".join(violations[:3]))
    text = (f"{label}: {rule}; 8-bit alpha off by > {LEVELS} levels {100 * share:.3f}% (limit "
            f"{100 * MAX_SHARE:.1f}%) -> {'ok' if ok else 'FAIL'}")
    return Verdict(ok, share, text)
