"""Is a fast candidate's matte the eager model's matte? Compared on the same frames, before use.

Two measures must both pass:
- `bgmv2.converters.compare` at the candidate's precision (the conversion checks' rule: mean |d alpha|,
  share of pixels off by more than 0.05, share of refined cells that agree; bf16 and fp16 use the
  fp16 limits);
- what a person would see: at most 0.5% of the 8-bit alpha values (round(alpha * 255)) may differ
  from eager's by more than 2 levels. Measured with the shipped MobileNetV2 on synthetic composites
  at 1280x720: 0.15-0.23% for compiled bf16 everywhere (refined-cell flips at the top-k boundary
  and soft edges), so the rule has about 2x margin and still catches a wrong candidate.
"""
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

LEVELS = 2  # 8-bit alpha levels a difference may reach before it counts
MAX_SHARE = 0.005  # share of alpha values allowed beyond LEVELS


@dataclass
class Verdict:
    ok: bool
    share: float  # of 8-bit alpha values off by more than LEVELS
    text: str


def numpy_outputs(out: Sequence[torch.Tensor]) -> dict:
    """The model's tuple (pha, fgr, ..., ref_sm last for MattingRefine) as float32 numpy arrays."""
    named = {"pha": out[0]}
    if len(out) == 6:
        named["ref_sm"] = out[5]
    return {name: value.detach().float().cpu().numpy() for name, value in named.items()}


def eight_bit_share(a: np.ndarray, b: np.ndarray, levels: int = LEVELS) -> float:
    qa = np.round(np.clip(a, 0, 1) * 255)
    qb = np.round(np.clip(b, 0, 1) * 255)
    return float((np.abs(qa - qb) > levels).mean())


def check(reference: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor], precision: str,
          label: str) -> Verdict:
    """Compare a candidate's outputs with eager's (both the model's output tuple)."""
    from bgmv2.converters.compare import compare
    ref, cand = numpy_outputs(reference), numpy_outputs(candidate)
    rule = "fp32" if precision == "fp32" else "fp16"
    comparison = compare(ref, cand, rule, label)
    if not comparison.shapes_ok or not np.all(np.isfinite(cand["pha"])):
        return Verdict(False, 1.0, comparison.text())
    share = eight_bit_share(ref["pha"], cand["pha"])
    ok = comparison.ok and share <= MAX_SHARE
    text = (f"{comparison.text()}; 8-bit alpha off by > {LEVELS} levels {100 * share:.3f}% "
            f"(limit {100 * MAX_SHARE:.1f}%) -> {'ok' if ok else 'FAIL'}")
    return Verdict(ok, share, text)
