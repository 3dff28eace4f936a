"""Why a candidate failed: the most likely cause, found by re-running with the alternative that would
explain the difference and seeing whether it then matches (within the same limits).

Codes, in the order they are tried (the first that explains the failure wins):
- `backbone`: the candidate holds another backbone or model kind: its metadata says so, or its
  weight shapes (PyTorch state dict, ONNX initializers) are not the reference's.
- `layout`: its outputs (or inputs) are NHWC where NCHW is expected: transposing makes it match.
- `channel-order`: it reads RGB as BGR: fed BGR pictures, it matches.
- `inputs-swapped`: it takes (bgr, src): fed the two swapped, it matches.
- `value-range`: it expects 0-255 (or scales to 0-255): fed inputs x 255 (or / 255), it matches.
- `knobs`: it was made with other knobs: the reference run with the knob value read off the
  candidate's outputs (backbone_scale from the coarse outputs' size, k from the refined cells per
  image, a threshold between the refined and unrefined cells' errors, full mode, prevent_oversampling
  toggled) matches it. The detail names the knob and the value.
- `weights-precision`: its weights were rounded: the reference with weights rounded to fp16 / bf16
  matches it.
- `stage`: none of these: where the difference first appears, the coarse network (`pha_sm`,
  `fgr_sm`, `err_sm` already out of limits) or the refiner (coarse outputs within limits).
- `unknown`: the candidate gives no coarse outputs to tell.
Reruns use every probe of the check; a rerun that raises counts as "does not explain it".
"""
import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from bgmv2.converters.agreement import ParityMetrics, cell_error

CODES = ("backbone", "layout", "channel-order", "inputs-swapped", "value-range", "knobs", "weights-precision",
         "stage", "unknown")


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


# -- backbone ---------------------------------------------------------------------------------------
def weight_shapes(runner) -> Optional[List[Tuple[int, ...]]]:
    """Shapes of the 4-D (convolution) weights a candidate holds, where it exposes them."""
    model = getattr(runner, "model", None)
    if model is None:
        return None
    if hasattr(model, "state_dict"):
        try:
            return sorted(tuple(v.shape) for v in model.state_dict().values() if getattr(v, "ndim", 0) == 4)
        except Exception:  # noqa: BLE001
            return None
    variables = getattr(model, "weights", None) or getattr(model, "variables", None)  # Keras, SavedModel
    if variables:
        try:
            return sorted(tuple(int(d) for d in v.shape) for v in variables if len(v.shape) == 4)
        except Exception:  # noqa: BLE001
            return None
    path = getattr(runner, "path", "")
    if str(path).endswith(".onnx"):
        try:
            import onnx
            graph = onnx.load(path, load_external_data=False).graph
            return sorted(tuple(t.dims) for t in graph.initializer if len(t.dims) == 4)
        except Exception:  # noqa: BLE001
            return None
    return None


def backbone_mismatch(reference, candidate) -> Optional[str]:
    """A sentence when the candidate is visibly another backbone or kind, else None."""
    said = candidate.metadata.get("backbone")
    if said and said != reference.backbone:
        return f"its metadata says {said}; the reference is {reference.backbone}"
    kind = candidate.metadata.get("model")
    if kind and kind.lower().endswith("base") and reference.spec.kind == "refine":
        return f"it is a {kind} (no refiner); the reference is MattingRefine"
    outputs = tuple(getattr(candidate.runner, "outputs", ()))
    if reference.spec.kind == "refine" and outputs and "ref_sm" not in outputs and "pha_sm" not in outputs:
        return f"it returns {', '.join(outputs)}: a MattingBase (no refiner); the reference is MattingRefine"
    shapes = weight_shapes(candidate.runner)
    if not shapes:
        return None
    ours = [tuple(np.shape(v)) for v in reference.spec.state.values() if len(np.shape(v)) == 4]
    from collections import Counter
    # Dimensions sorted: a runtime may store OIHW as HWIO; padded channels change a few shapes only.
    theirs, mine = Counter(tuple(sorted(s)) for s in shapes), Counter(tuple(sorted(s)) for s in ours)
    shared = sum((theirs & mine).values())
    if shared < 0.5 * sum(mine.values()):
        return (f"only {shared} of the reference's {sum(mine.values())} convolution weight shapes appear among the "
                f"candidate's {sum(theirs.values())}: another backbone (the reference is {reference.backbone})")
    return None


# -- input and output conventions ------------------------------------------------------------------
def raw_call(runner, src, bgr) -> Dict[str, np.ndarray]:
    """The runner's function on exactly these arrays, outputs named, no layout conversion or checks."""
    results = runner.fn(runner.native(np.ascontiguousarray(src, dtype=np.float32)),
                        runner.native(np.ascontiguousarray(bgr, dtype=np.float32)))
    return {name: np.asarray(v.detach().float().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float32)
            for name, v in zip(runner.outputs, results)}


def transposed(outputs: Dict[str, np.ndarray], order=(0, 3, 1, 2)) -> Dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v.transpose(order)) if v.ndim == 4 else v for k, v in outputs.items()}


def input_alternatives(runner) -> List[Tuple[str, str, Callable]]:
    """(code, detail, run(src, bgr) -> outputs) of every convention mix-up worth trying."""
    native_nhwc = getattr(runner, "layout", "NCHW") == "NHWC"

    def call(src, bgr):
        out = raw_call(runner, src, bgr)
        return transposed(out) if native_nhwc else out

    def nhwc_in(src, bgr):
        return transposed(raw_call(runner, src.transpose(0, 2, 3, 1), bgr.transpose(0, 2, 3, 1)))

    def outputs_nhwc(src, bgr):
        return transposed(raw_call(runner, src, bgr)) if not native_nhwc else raw_call(runner, src, bgr)

    return [
        ("layout", "its outputs are NHWC (channels last) where NCHW is expected", outputs_nhwc),
        ("layout", "it expects NHWC inputs (channels last), and returns NHWC", nhwc_in),
        ("channel-order", "it reads the pictures as BGR: fed BGR (channels reversed) it matches",
         lambda s, b: call(s[:, ::-1], b[:, ::-1])),
        ("inputs-swapped", "it takes (bgr, src): fed the two swapped it matches", lambda s, b: call(b, s)),
        ("value-range", "it expects 0-255 inputs: fed inputs x 255 it matches", lambda s, b: call(s * 255, b * 255)),
        ("value-range", "it expects inputs scaled down by 255: fed inputs / 255 it matches",
         lambda s, b: call(s / 255, b / 255)),
    ]


# -- knobs ------------------------------------------------------------------------------------------
def round_value(low: float, high: float) -> float:
    """The roundest decimal in (low, high]: the threshold a person would have typed."""
    if not high > low:
        return high
    for digits in range(0, 8):
        step = 10.0 ** -digits
        value = math.ceil(low / step + 1e-9) * step
        if value <= high:
            return round(value, digits)
    return (low + high) / 2


def knob_alternatives(knobs: Dict[str, object], probes, outputs: List[Dict[str, np.ndarray]]) -> List[Tuple[str, Dict]]:
    """(knob name, changed knob values) read off the candidate's outputs on `probes`."""
    found: List[Tuple[str, Dict]] = []
    base = dict(knobs)
    first = outputs[0]
    height, width = probes[0].size
    if "pha_sm" in first and np.ndim(first["pha_sm"]) == 4:
        scale = first["pha_sm"].shape[2] / height
        for nice in (1.0, 0.5, 1 / 3, 0.25, 0.2, 0.125):
            if abs(scale - nice) < 1e-3 and abs(nice - float(knobs.get("backbone_scale", 0.25))) > 1e-9:
                base["backbone_scale"] = nice
                found.append(("backbone_scale", dict(knobs, backbone_scale=nice)))
    refined_maps, errors = [], []
    for probe, got in zip(probes, outputs):
        ref = got.get("ref_sm")
        if ref is None or np.ndim(ref) != 4:
            return found
        refined_maps.append(np.asarray(ref)[:, 0] > 0.5)
        if "err_sm" in got:
            err = cell_error(got["err_sm"], *probe.size)
            errors.append(err if err.shape == refined_maps[-1].shape else None)
        else:
            errors.append(None)
    if all(m.all() for m in refined_maps):
        found.append(("refine_mode", dict(base, refine_mode="full")))
    k = max(int(m.reshape(m.shape[0], -1).sum(1).max()) for m in refined_maps)
    cells = min(m[0].size for m in refined_maps)
    if k and k != min(int(knobs.get("refine_sample_pixels", 80_000)) // 16, cells):
        found.append(("refine_sample_pixels", dict(base, refine_mode="sampling", refine_sample_pixels=16 * k)))
    if all(e is not None for e in errors):
        chosen = np.concatenate([e[m] for e, m in zip(errors, refined_maps)])
        left = np.concatenate([e[~m] for e, m in zip(errors, refined_maps)])
        if chosen.size and left.size:
            low, high = float(left.max()), float(chosen.min())
            value = round_value(low, high) if high > low else high
            found.append(("refine_threshold", dict(base, refine_mode="thresholding", refine_threshold=value)))
    found.append(("refine_prevent_oversampling",
                  dict(base, refine_prevent_oversampling=not bool(knobs.get("refine_prevent_oversampling", True)))))
    if knobs.get("refine_mode") != "sampling" and k:
        found.append(("refine_mode", dict(base, refine_mode="sampling", refine_sample_pixels=16 * k)))
    same_mode = [item for item in found if item[1].get("refine_mode", knobs.get("refine_mode")) == knobs.get("refine_mode")]
    return same_mode + [item for item in found if item not in same_mode]


def describe_knobs(changed: Dict[str, object], knobs: Dict[str, object]) -> str:
    parts = [f"{name}={value!r} (checked with {knobs.get(name)!r})" for name, value in changed.items()
             if knobs.get(name) != value]
    return ", ".join(parts)


# -- the diagnosis ----------------------------------------------------------------------------------
def diagnose(reference, candidate, knobs: Dict[str, object], probes, metrics, limits) -> Dict[str, str]:
    """The most likely cause of a failure (`{"code", "detail"}`)."""
    mismatch = backbone_mismatch(reference, candidate)
    if mismatch:
        return diagnosis("backbone", mismatch)
    expected = [reference.run(knobs, probe) for probe in probes]
    runner = candidate.runner
    if hasattr(runner, "fn"):
        for code, detail, run in input_alternatives(runner):
            got = on_all(lambda probe: run(probe.src, probe.bgr), probes)
            if got is not None and safely(matches, expected, got, knobs, limits):
                return diagnosis(code, detail)
    got = on_all(lambda probe: runner(probe.src, probe.bgr), probes)
    if got is None:
        return diagnosis("unknown", "the candidate did not run again on the probes")
    for name, changed in knob_alternatives(knobs, probes, got):
        other = on_all(lambda probe: reference.run(changed, probe), probes)
        if other is not None and safely(matches, other, got, changed, limits):
            return diagnosis("knobs", f"{name}: the reference with {describe_knobs(changed, knobs)} matches it; "
                                      "export again with the knobs you meant, or pass them as flags")
    for precision in ("fp16", "bf16"):
        if reference.spec.precision == precision:
            continue  # rounding weights already in that precision changes nothing
        other = on_all(lambda probe: reference.run_as(knobs, probe, "fp32", precision), probes)
        if other is not None and safely(matches, other, got, knobs, limits):
            return diagnosis("weights-precision", f"its weights are rounded to {precision}: the reference with "
                                                  f"{precision}-rounded weights matches it (computing in fp32)")
    coarse = [name for name in ("pha_sm", "fgr_sm", "err_sm") if name in metrics.outputs]
    if not coarse:
        return diagnosis("unknown", "no coarse outputs (pha_sm, fgr_sm, err_sm) to tell where it diverges")
    off = [line for line in limits.violations(metrics) if line.split(" ", 1)[0] in coarse]
    if off:
        return diagnosis("stage", "coarse network: " + off[0])
    return diagnosis("stage", "refiner: the coarse outputs are within limits, alpha and foreground are not "
                              "(refinement: its crop, resize or weights)")
