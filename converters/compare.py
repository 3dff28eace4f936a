"""Whether two runs of a model agree: alpha and the refined-cell map, with a tolerance per precision."""
from dataclasses import dataclass
from typing import Dict

import numpy as np

# precision -> (mean |d alpha|, share of pixels with |d alpha| > 0.05, share of refined cells that agree)
# fp32 differences are rounding, except where a cell at the top-k boundary flips; fp16 rounds the
# error map too, so more boundary cells flip.
TOLERANCES = {
    "fp32": (1e-4, 1e-3, 0.995),
    "fp16": (5e-3, 2e-2, 0.95),
}


@dataclass
class Comparison:
    label: str
    precision: str
    mean_abs: float
    max_abs: float
    over: float  # share of alpha pixels differing by more than 0.05
    ref_agreement: float  # share of cells where ref_sm agrees (1.0 when there is no ref_sm)
    shapes_ok: bool

    @property
    def ok(self) -> bool:
        mean, over, agree = TOLERANCES[self.precision]
        return self.shapes_ok and self.mean_abs <= mean and self.over <= over and self.ref_agreement >= agree

    def text(self) -> str:
        mean, over, agree = TOLERANCES[self.precision]
        if not self.shapes_ok:
            return f"{self.label}: output shapes differ -> FAIL"
        return (f"{self.label}: alpha mean |d| {self.mean_abs:.2e} (limit {mean:.0e}), max |d| {self.max_abs:.2e}, "
                f"pixels |d| > 0.05 {100 * self.over:.3f}% (limit {100 * over:.1f}%), refined cells agree "
                f"{100 * self.ref_agreement:.2f}% (limit {100 * agree:.1f}%) -> {'ok' if self.ok else 'FAIL'}")


def compare(reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], precision: str = "fp32",
            label: str = "compare") -> Comparison:
    if precision not in TOLERANCES:
        from .errors import ConversionError
        raise ConversionError(f"precision {precision!r}: the tolerances are for {', '.join(TOLERANCES)}; compare at "
                              "the lower precision of the two runs")
    a, b = reference.get("pha"), candidate.get("pha")
    if a is None or b is None or a.shape != b.shape:
        return Comparison(label, precision, float("inf"), float("inf"), 1.0, 0.0, False)
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if not np.all(np.isfinite(d)):
        return Comparison(label, precision, float("inf"), float("inf"), 1.0, 0.0, True)
    agreement = 1.0
    if "ref_sm" in reference and "ref_sm" in candidate:
        if reference["ref_sm"].shape != candidate["ref_sm"].shape:
            return Comparison(label, precision, float(d.mean()), float(d.max()), float((d > 0.05).mean()), 0.0, False)
        agreement = float(((reference["ref_sm"] > 0.5) == (candidate["ref_sm"] > 0.5)).mean())
    return Comparison(label, precision, float(d.mean()), float(d.max()), float((d > 0.05).mean()), agreement, True)


def lower_precision(*precisions: str) -> str:
    return "fp16" if "fp16" in precisions else "fp32"
