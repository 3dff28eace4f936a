"""Diagnosis of a single layer: where the candidate's weights can be read (a PyTorch model, a file
`converters.read` reads, BatchNorm folded or not), they are compared with the reference's tensor by
tensor. When one layer's differ (its convolution, with its BatchNorm), the reference with that
layer's weights taken from the candidate is re-run; when it matches, the layer is named (and how its
weights differ: noise, a flipped or transposed kernel, an offset).
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from .diagnosis_core import diagnosis, matches, safely

RELATIVE = 1e-3  # a tensor differs when max |a - b| exceeds this share of its largest value


def candidate_state(candidate) -> Optional[Dict[str, np.ndarray]]:
    """The candidate's weights by PyTorch name, where they can be read; None otherwise."""
    model = getattr(candidate.runner, "model", None)
    if model is not None and hasattr(model, "state_dict") and not hasattr(model, "code"):
        try:
            return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if v.is_floating_point()}
        except Exception:  # noqa: BLE001
            return None
    if candidate.format in ("onnx", "pth", "safetensors", "torchscript", "pt2", "keras"):
        from bgmv2 import converters
        try:
            state = converters.read(candidate.path, candidate.format).state
            return {k: np.asarray(v, np.float32) for k, v in state.items() if np.issubdtype(np.asarray(v).dtype, np.floating)}
        except Exception:  # noqa: BLE001 - not our layout: no layer comparison
            return None
    return None


def module_of(key: str) -> str:
    return key.rpartition(".")[0]


def differs(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """max |a - b| relative to max |b| when above RELATIVE (shapes must agree), else None."""
    if np.shape(a) != np.shape(b):
        return float("inf")
    scale = float(np.abs(b).max()) or 1.0
    d = float(np.abs(np.asarray(a, np.float64) - b).max()) / scale
    return d if d > RELATIVE else None


BGR = ((2, 1, 0, 5, 4, 3), (2, 1, 0, 3, 4, 5))  # input channels of the first layer reversed: src and bgr, src


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-4, atol=1e-6 * (np.abs(b).max() or 1))


def how_it_differs(a: np.ndarray, b: np.ndarray) -> Tuple[str, str]:
    """(code, words): how one layer's weights `a` differ from the reference's `b`."""
    if a.ndim == 4 and a.shape[1] == 6:
        for order, which in zip(BGR, ("src and bgr", "src")):
            if same(a, b[:, list(order)]):
                return "channel-order", (f"its input channels are reversed: it takes {which} as BGR (channel order in "
                                         "the weights)")
    if a.ndim == 4 and same(a, b[..., ::-1, ::-1]):
        return "layout", "its kernel is flipped (rotated 180 degrees)"
    if a.ndim == 4 and a.shape[-1] == a.shape[-2] and same(a, np.swapaxes(b, -1, -2)):
        return "layout", "its kernel has height and width swapped"
    d = np.asarray(a, np.float64) - b
    if np.ptp(d) < 1e-6 * (np.abs(b).max() or 1):
        return "stage", f"shifted by {float(d.mean()):.3g}"
    return "stage", f"max relative difference {np.abs(d).max() / (np.abs(b).max() or 1):.1%}"


def differing(theirs: Dict[str, np.ndarray], ours: Dict[str, np.ndarray]) -> List[Tuple[str, float]]:
    return [(key, d) for key, value in theirs.items() if key in ours
            for d in [differs(value, ours[key])] if d is not None]


def layer_step(reference, candidate, knobs, probes, got, limits) -> Optional[Dict[str, str]]:
    """One layer whose weights alone explain the failure, named (`stage`; `channel-order` or `layout`
    where its weights are the reference's with channels reversed or kernels flipped), or None."""
    theirs = candidate_state(candidate)
    if not theirs:
        return None
    import torch
    from .diagnosis_precision import folded_model, run_model
    from .variants import base_model
    plain = base_model(reference.spec, knobs)
    candidates = [plain]
    folded_names = any(key.endswith("running_var") and np.allclose(v, 1 - 1e-5) for key, v in theirs.items())
    if folded_names:
        candidates = [safely(folded_model, reference.spec, knobs) or plain]
    for model in candidates:
        ours = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items() if v.is_floating_point()}
        found = [(key, d) for key, d in differing(theirs, ours) if not key.endswith(("running_var", "running_mean"))]
        modules = {module_of(key) for key, _ in found}
        if not found or len(modules) > 2:  # one layer: a convolution, perhaps with its BatchNorm
            continue
        with torch.no_grad():
            state = model.state_dict()
            for key, _ in found:
                state[key].copy_(torch.from_numpy(np.asarray(theirs[key], np.float32)).to(state[key].dtype))
        other = safely(run_model, model, reference.names(knobs), probes)
        if other is None or not safely(matches, other, got, knobs, limits):
            continue
        key = max(found, key=lambda item: item[1])[0]
        code, words = how_it_differs(np.asarray(theirs[key]), ours[key])
        return diagnosis(code, f"layer {module_of(key)}: its weights differ from the reference's "
                               f"({', '.join(k for k, _ in found)}: {words}); every other weight agrees, and the "
                               "reference with this layer's weights from the file matches it")
    return None
