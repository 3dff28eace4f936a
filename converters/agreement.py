"""How far one run of a model is from another, output by output: the measurements the acceptance rule
(`converters.acceptance`) judges, for `bgmv2 parity`, `convert`'s check and the fast runtime alike.

Two runs of the same weights (a reference and a candidate format) are compared output by output:
max / mean |difference|, SAD and MSE (the matting literature's measures, on the difference), the share of
pixels whose 8-bit value differs, and for the refined-cell map (`ref_sm`) which cells flipped and
whether each flip is explained by the selection rule (see `classify_cells`). Full-resolution
outputs are also measured outside the flipped cells: a refined 4x4 cell only writes its own block,
so there the two runs must agree to rounding even when the selection differs.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

CELL = 4  # the refiner works on 4x4-pixel cells
FULL_RESOLUTION = ("pha", "fgr")
SELECTION = "ref_sm"


def eight_bit(x: np.ndarray) -> np.ndarray:
    """The 8-bit value a picture of `x` (in [0, 1]) stores: round(clip(x) * 255)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0)


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B, C, h, w) -> (B, C, height, width) with PyTorch's `interpolate(bilinear, align_corners=False)`
    arithmetic (half-pixel centres, negative source coordinates clamped to 0), in float64."""
    x = np.asarray(x, dtype=np.float64)

    def axis(n_in: int, n_out: int):
        pos = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, pos - i0

    y0, y1, fy = axis(x.shape[2], height)
    x0, x1, fx = axis(x.shape[3], width)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def cell_error(err_sm: np.ndarray, height: int, width: int) -> np.ndarray:
    """The error the refiner selects cells by: `err_sm` on the (height/4, width/4) grid of cells,
    (B, h, w); bilinearly resized unless it is already that size (backbone_scale 1/4)."""
    h, w = height // CELL, width // CELL
    err = np.asarray(err_sm, dtype=np.float64)
    if err.shape[2:] != (h, w):
        err = resize_bilinear(err, h, w)
    return err[:, 0]


def selection_boundary(err_q: np.ndarray, knobs: Dict[str, object]) -> Optional[np.ndarray]:
    """Per image, the error value where selection switches: the k-th largest cell error (`sampling`,
    k = min(refine_sample_pixels // 16, cells)) or `refine_threshold` (`thresholding`); None for `full`."""
    mode = knobs.get("refine_mode", "sampling")
    b = err_q.shape[0]
    flat = err_q.reshape(b, -1)
    if mode == "sampling":
        k = min(int(knobs.get("refine_sample_pixels", 80_000)) // 16, flat.shape[1])
        if k <= 0:
            return np.full(b, np.inf)
        return -np.partition(-flat, k - 1, axis=1)[:, k - 1]
    if mode == "thresholding":
        return np.full(b, float(knobs.get("refine_threshold", 0.1)))
    return None


def classify_cells(ref_reference: np.ndarray, ref_candidate: np.ndarray, err_q: np.ndarray,
                   knobs: Dict[str, object], band: float) -> Dict[str, np.ndarray]:
    """Which refined cells differ between two runs, and which of those differences are legitimate.

    A cell may legitimately be refined by one run and not the other only where the selection is
    decided by rounding: its reference error lies within `band` of the selection boundary (the k-th
    largest error in `sampling`, the threshold in `thresholding`, or 0, below which
    `prevent_oversampling` drops sampled cells). `band` is the error-map difference the precision
    allows (2x the `err_sm` tolerance: the candidate's cell errors and its k-th value may each move
    by that much). Other flips are `unexplained`: a wrong threshold, k, or selection rule.
    `ties`: flipped cells whose reference error equals the k-th largest exactly (ties are broken by
    the lower cell index; a candidate whose errors round differently may break them otherwise).
    Returns boolean (B, h, w) maps: flipped, edge, ties, unexplained.
    """
    a = np.asarray(ref_reference)[:, 0] > 0.5
    b = np.asarray(ref_candidate)[:, 0] > 0.5
    flipped = a != b
    mode = knobs.get("refine_mode", "sampling")
    boundary = selection_boundary(err_q, knobs)
    if boundary is None:
        near = np.zeros_like(flipped)
        ties = np.zeros_like(flipped)
    else:
        at = boundary[:, None, None]
        near = np.abs(err_q - at) <= band
        ties = (err_q == at) if mode == "sampling" else np.zeros_like(flipped)
        if mode == "sampling" and bool(knobs.get("refine_prevent_oversampling", True)):
            near |= err_q <= band
    return {"flipped": flipped, "edge": flipped & near, "ties": flipped & ties, "unexplained": flipped & ~near}


def cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    """(B, h, w) cell map -> (B, 1, 4h, 4w) pixel map."""
    return np.repeat(np.repeat(cells, CELL, axis=1), CELL, axis=2)[:, None]


@dataclass
class DiffStats:
    """|reference - candidate| of one output, accumulated over inputs (optionally under a pixel mask)."""
    elements: int = 0
    max_abs: float = 0.0
    abs_sum: float = 0.0
    sq_sum: float = 0.0
    pixels: int = 0  # pixel positions (a pixel has C channels)
    pixels_8bit: int = 0  # pixel positions where any channel's 8-bit value differs
    pixels_over: Dict[int, int] = field(default_factory=dict)  # levels -> pixel positions more than that many off
    images: int = 0
    nonfinite: int = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray, mask: Optional[np.ndarray] = None) -> None:
        a = np.asarray(reference, dtype=np.float64)
        b = np.asarray(candidate, dtype=np.float64)
        finite = np.isfinite(b)
        self.nonfinite += int((~finite).sum())
        d = np.abs(a - b)
        d[~finite] = np.inf
        levels = np.abs(eight_bit(a) - eight_bit(np.where(finite, b, -1.0)))
        bits = levels > 0
        if mask is not None:
            mask = np.broadcast_to(mask, (a.shape[0], 1, *a.shape[2:]))
            d = np.where(mask, d, 0.0)
            bits = bits & mask
            levels = np.where(mask, levels, 0.0)
            self.elements += int(mask.sum()) * a.shape[1]
            self.pixels += int(mask.sum())
        else:
            self.elements += d.size
            self.pixels += d.size // a.shape[1]
        self.images += a.shape[0]
        if d.size:
            self.max_abs = max(self.max_abs, float(d.max()))
        self.abs_sum += float(d.sum())
        self.sq_sum += float((d ** 2).sum()) if np.isfinite(d).all() else float("inf")
        self.pixels_8bit += int(bits.any(axis=1).sum())
        worst = levels.max(axis=1)
        for count in (1, 2, 4, 16):
            self.pixels_over[count] = self.pixels_over.get(count, 0) + int((worst > count).sum())

    @property
    def mean_abs(self) -> float:
        return self.abs_sum / self.elements if self.elements else 0.0

    @property
    def mse(self) -> float:
        return self.sq_sum / self.elements if self.elements else 0.0

    @property
    def sad(self) -> float:
        """Mean over images of sum |difference| / 1000 (the matting literature's SAD)."""
        return self.abs_sum / 1000 / self.images if self.images else 0.0

    @property
    def share_8bit(self) -> float:
        return self.pixels_8bit / self.pixels if self.pixels else 0.0

    def share_over(self, levels: int) -> float:
        """Share of pixel positions whose 8-bit value is more than `levels` off (1, 2, 4 or 16)."""
        return self.pixels_over.get(levels, 0) / self.pixels if self.pixels else 0.0

    def as_dict(self) -> Dict[str, float]:
        return {"max_abs": self.max_abs, "mean_abs": self.mean_abs, "sad": self.sad, "mse": self.mse,
                "share_8bit": self.share_8bit, "pixels_8bit": self.pixels_8bit, "pixels": self.pixels,
                "share_over_levels": {str(k): self.share_over(k) for k in sorted(self.pixels_over)},
                "nonfinite": self.nonfinite}


@dataclass
class CellStats:
    """Agreement of the refined-cell maps, accumulated over inputs (see `classify_cells`)."""
    cells: int = 0
    refined_reference: int = 0
    refined_candidate: int = 0
    flipped: int = 0
    edge: int = 0
    ties: int = 0
    unexplained: int = 0

    def add(self, ref_reference: np.ndarray, ref_candidate: np.ndarray, classes: Dict[str, np.ndarray]) -> None:
        self.cells += int(classes["flipped"].size)
        self.refined_reference += int((np.asarray(ref_reference) > 0.5).sum())
        self.refined_candidate += int((np.asarray(ref_candidate) > 0.5).sum())
        for name in ("flipped", "edge", "ties", "unexplained"):
            setattr(self, name, getattr(self, name) + int(classes[name].sum()))

    @property
    def agreement(self) -> float:
        return 1.0 - self.flipped / self.cells if self.cells else 1.0

    @property
    def flipped_share(self) -> float:
        return self.flipped / self.cells if self.cells else 0.0

    def as_dict(self) -> Dict[str, float]:
        return {"cells": self.cells, "refined_reference": self.refined_reference,
                "refined_candidate": self.refined_candidate, "agreement": self.agreement, "flipped": self.flipped,
                "flipped_share": self.flipped_share, "edge": self.edge, "ties": self.ties,
                "unexplained": self.unexplained}


@dataclass
class ParityMetrics:
    """Every metric of one candidate against the reference, over all inputs.

    `outputs[name]`: `DiffStats` of each output both runs returned; `outside[name]`: the same for the
    full-resolution outputs (pha, fgr) outside the cells whose selection differs; `cells`: the
    refined-cell agreement. `shape_mismatch`: outputs whose shapes differ (nothing else is measured
    for them); `missing`: reference outputs the candidate does not return.
    """
    outputs: Dict[str, DiffStats] = field(default_factory=dict)
    outside: Dict[str, DiffStats] = field(default_factory=dict)
    cells: Optional[CellStats] = None
    shape_mismatch: Dict[str, str] = field(default_factory=dict)
    missing: list = field(default_factory=list)

    def add(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], knobs: Dict[str, object],
            band: float) -> Dict[str, np.ndarray]:
        """Measure one input; returns the cell classes (for diff pictures), or {} without `ref_sm`."""
        for name in reference:
            if name not in candidate:
                if name not in self.missing:
                    self.missing.append(name)
                continue
            if np.shape(reference[name]) != np.shape(candidate[name]):
                self.shape_mismatch[name] = f"{np.shape(reference[name])} vs {np.shape(candidate[name])}"
        usable = [n for n in reference if n in candidate and n not in self.shape_mismatch]
        classes: Dict[str, np.ndarray] = {}
        if SELECTION in usable and "err_sm" in reference and "pha" in reference:
            height, width = reference["pha"].shape[2:]
            err_q = cell_error(reference["err_sm"], height, width)
            if err_q.shape == reference[SELECTION].shape[:1] + reference[SELECTION].shape[2:]:
                classes = classify_cells(reference[SELECTION], candidate[SELECTION], err_q, knobs, band)
                self.cells = self.cells or CellStats()
                self.cells.add(reference[SELECTION], candidate[SELECTION], classes)
        for name in usable:
            self.outputs.setdefault(name, DiffStats()).add(reference[name], candidate[name])
            if name in FULL_RESOLUTION:
                keep = None
                if classes and cells_to_pixels(classes["flipped"]).shape[2:] == reference[name].shape[2:]:
                    keep = ~cells_to_pixels(classes["flipped"])
                self.outside.setdefault(name, DiffStats()).add(reference[name], candidate[name], keep)
        return classes

    def as_dict(self) -> Dict[str, object]:
        return {"outputs": {k: v.as_dict() for k, v in self.outputs.items()},
                "outside_flipped_cells": {k: v.as_dict() for k, v in self.outside.items()},
                "cells": self.cells.as_dict() if self.cells else None,
                "shape_mismatch": dict(self.shape_mismatch), "missing": list(self.missing)}
