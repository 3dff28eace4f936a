"""How far a candidate may be from the reference, per precision, and why.

fp32 (every runtime computing in float32: other kernels, other summation orders, BatchNorm folded):
- `pha_max_outside` / `fgr_max_outside` 1e-3: a quarter of an 8-bit step (1/255 = 3.9e-3), so a
  passing file never moves a stored 8-bit alpha by more than one level; measured worst 3.6e-5
  (ResNet-50 Keras), 5e-6 for MobileNetV2 across ONNX Runtime, TensorFlow and tf2onnx. One perturbed
  weight (+0.05 on one alpha-head weight) gives more than 1e-2.
- `pha_mean` 1e-5: measured at most 1.5e-6 (7x margin).
- `pha_share_8bit` 0.5%: a difference d flips an 8-bit value with probability about 255 * d, so the
  share follows the mean: 255 * 1e-5 = 0.26%, doubled; measured at most 0.036%.
- `coarse_max` 1e-3 (pha_sm, fgr_sm) and `err_max` 1e-4 (err_sm: the refiner selects cells by it,
  so it is held 10x tighter); the selection `band` is 2 * err_max: a cell whose reference error is
  within 2e-4 of the k-th largest (or of the threshold) may be selected by one run and not the other.
- `flipped_share` 0.5% of cells, and no flip away from the selection boundary (`unexplained` 0): a
  wrong k, threshold or selection rule flips cells far from the boundary and fails here.

fp16 (weights and activations in float16, or a mixed_float16 policy):
- float16 has an 11-bit significand: near 1 its step is 4.9e-4 (1/8 of an 8-bit level) and errors
  compound over about 60 layers. Measured on the trained MobileNetV2: max 2.3e-2 outside flipped
  cells (ONNX fp16), mean 2.1e-4, 8-bit share 2.9%, err_sm 1.9e-3, 2 of 9,280 cells flipped, both at
  the boundary. Limits: 5e-2 max outside flipped cells (13 8-bit levels at a soft edge), mean 2e-3,
  8-bit share 10% (quantisation alone flips up to about 1/8 of the non-saturated pixels), coarse
  outputs 5e-2, err_sm 5e-3 (band 1e-2), 5% of cells flipped, none unexplained.
Inside flipped cells the two runs refined different pixels: there only the mean and the 8-bit share
count them, and the cell statistics say how many there were.
"""
from dataclasses import asdict, dataclass
from typing import Dict, List


@dataclass(frozen=True)
class Tolerance:
    name: str
    pha_max_outside: float  # max |d alpha| outside the cells whose selection differs
    fgr_max_outside: float  # max |d foreground| there
    pha_mean: float  # mean |d alpha| over every pixel (flipped cells included)
    pha_share_8bit: float  # share of pixels whose 8-bit alpha differs (flipped cells included)
    coarse_max: float  # max |d| of pha_sm and fgr_sm
    err_max: float  # max |d err_sm|; the selection band is twice this
    flipped_share: float  # share of cells whose selection differs (all explained)
    unexplained: int  # flipped cells not explained by rounding at the selection boundary

    @property
    def band(self) -> float:
        return 2 * self.err_max

    def as_dict(self) -> Dict[str, float]:
        return {**asdict(self), "band": self.band}

    def violations(self, metrics) -> List[str]:
        found = []
        if metrics.shape_mismatch:
            found += [f"{name} shape {text}" for name, text in metrics.shape_mismatch.items()]
        if "pha" in metrics.missing or "pha" not in metrics.outputs:
            found.append("no alpha (pha) output to compare")
            return found
        for name, stats in metrics.outputs.items():
            if stats.nonfinite:
                found.append(f"{name}: {stats.nonfinite} values are NaN or infinite")

        def over(what: str, value: float, limit: float, fmt: str = ".2e"):
            if not value <= limit:
                found.append(f"{what} {value:{fmt}} > {limit:{fmt}}")

        pha = metrics.outputs["pha"]
        over("pha mean |d|", pha.mean_abs, self.pha_mean)
        over("pha 8-bit differs share", pha.share_8bit, self.pha_share_8bit, ".3%")
        if "pha" in metrics.outside:
            over("pha max |d| outside flipped cells", metrics.outside["pha"].max_abs, self.pha_max_outside)
        if "fgr" in metrics.outside:
            over("fgr max |d| outside flipped cells", metrics.outside["fgr"].max_abs, self.fgr_max_outside)
        for name in ("pha_sm", "fgr_sm"):
            if name in metrics.outputs:
                over(f"{name} max |d|", metrics.outputs[name].max_abs, self.coarse_max)
        if "err_sm" in metrics.outputs:
            over("err_sm max |d|", metrics.outputs["err_sm"].max_abs, self.err_max)
        cells = metrics.cells
        if cells is not None:
            if cells.unexplained > self.unexplained:
                found.append(f"{cells.unexplained} refined cells differ away from the selection boundary "
                             f"(allowed {self.unexplained}): other knobs (threshold, k) or selection rule")
            over("share of cells whose selection differs", cells.flipped_share, self.flipped_share, ".3%")
        return found


TOLERANCES: Dict[str, Tolerance] = {
    "fp32": Tolerance("fp32", 1e-3, 1e-3, 1e-5, 5e-3, 1e-3, 1e-4, 5e-3, 0),
    "fp16": Tolerance("fp16", 5e-2, 5e-2, 2e-3, 1e-1, 5e-2, 5e-3, 5e-2, 0),
}
