"""Why a candidate failed: the most likely cause, found by re-running with the alternative that would
explain the difference and seeing whether it then matches (within the same limits; `diagnosis_core`).

Codes, in the order they are tried (the first that explains the failure wins):
- `backbone`: the candidate holds another backbone or model kind: its metadata says so, or its
  weight shapes (PyTorch state dict, ONNX initializers) are not the reference's.
- `outputs-swapped`: its outputs are swapped or renamed (which: `pha<->fgr`, `pha_sm<->err_sm`, `pha`
  named 'alpha'): read by value instead of by name, they match (`diagnosis_outputs`).
- `layout`: its outputs (or inputs) are NHWC where NCHW is expected: transposing makes it match; or
  its kernels are flipped or have height and width swapped (a re-run with them so matches).
- `channel-order`: it reads RGB as BGR: fed BGR pictures, it matches; or its first convolution's
  weights take BGR (the reference with those input channels reversed matches).
- `inputs-swapped`: it takes (bgr, src): fed the two swapped, it matches.
- `value-range`: it expects 0-255 (or scales to 0-255), or normalises inside (ImageNet mean and std,
  [-1, 1]): fed inputs undone that way it matches; or its outputs are 0-255.
- `batch`: items of a batch checked one by one: only some differ, and each matches run alone
  (`diagnosis_batch`).
- `knobs`: it was made with other knobs: the reference run with the knob value read off the
  candidate's outputs (backbone_scale from the coarse outputs' size, k from the refined cells per
  image, a threshold between the refined and unrefined cells' errors, full mode, prevent_oversampling
  toggled) matches it. The detail names the knob and the value.
- `weights-precision`: weights rounded (fp16, bf16), weights and compute in fp16 / bf16, or int8
  quantisation: read from its graph or model and confirmed by re-running the reference that way
  (`diagnosis_precision`).
- `convention`: a numerical convention of the export: a resize (TF1 asymmetric coordinates,
  align_corners, antialiasing, nearest; everywhere or in one module), TensorFlow SAME padding,
  BatchNorm epsilon, ReLU6 as ReLU, a clamp missing: the reference changed that way matches it
  (`variants`, `diagnosis_conventions`).
- `stage`: one layer named when its weights alone explain it (`diagnosis_layer`), a missing residual
  or a refiner crop one pixel off when the re-run matches; else where the difference first appears:
  the coarse network (`pha_sm`, `fgr_sm`, `err_sm` already out of limits) or the refiner (coarse
  outputs within limits).
- `unknown`: the candidate gives no coarse outputs to tell, or outputs of other shapes that no
  reading explains.
Reruns use every probe of the check; a rerun that raises counts as "does not explain it".
"""
import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .diagnosis_core import diagnosis, matches, on_all, safely  # noqa: F401 - the steps' shared names
from bgmv2.converters.agreement import cell_error

CODES = ("backbone", "outputs-swapped", "layout", "channel-order", "inputs-swapped", "value-range", "batch", "knobs",
         "weights-precision", "convention", "stage", "unknown")


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
    results = runner.fn(np.ascontiguousarray(src, dtype=np.float32), np.ascontiguousarray(bgr, dtype=np.float32))
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
    ] + normalisation_alternatives(call)


# (words, mean, std) of the normalisations exports bake in by mistake: x -> (x - mean) / std inside.
NORMALISATIONS = (("ImageNet mean and std", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                  ("[-1, 1] (x - 0.5) / 0.5", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))


def normalisation_alternatives(call: Callable) -> List[Tuple[str, str, Callable]]:
    """Inputs fed undone (x * std + mean) for a file that normalises inside, both inputs or src alone."""
    found = []
    for words, mean, std in NORMALISATIONS:
        mean_, std_ = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]

        def undo(x, mean_=mean_, std_=std_):
            return x * std_ + mean_

        found.append(("value-range", f"normalisation baked in: it normalises its inputs with {words} inside (the "
                      "model takes plain [0, 1] RGB); fed inputs undone that way it matches",
                      lambda s, b, undo=undo: call(undo(s), undo(b))))
        found.append(("value-range", f"normalisation baked in: it normalises src (not bgr) with {words} inside; fed "
                      "src undone that way it matches", lambda s, b, undo=undo: call(undo(s), b)))
    return found


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
def input_step(runner, probes, expected, knobs, limits) -> Optional[Dict[str, str]]:
    """layout, channel-order, inputs-swapped, value-range: the candidate fed its inputs another way."""
    if not hasattr(runner, "fn"):
        return None
    for code, detail, run in input_alternatives(runner):
        got = on_all(lambda probe: run(probe.src, probe.bgr), probes)
        if got is not None and safely(matches, expected, got, knobs, limits):
            return diagnosis(code, detail)
    return None


def knob_step(reference, probes, got, knobs, limits) -> Optional[Dict[str, str]]:
    for name, changed in knob_alternatives(knobs, probes, got):
        other = on_all(lambda probe: reference.run(changed, probe), probes)
        if other is not None and safely(matches, other, got, changed, limits):
            return diagnosis("knobs", f"{name}: the reference with {describe_knobs(changed, knobs)} matches it; "
                                      "export again with the knobs you meant, or pass them as flags")
    return None


def stage_of(metrics, limits) -> Optional[str]:
    """'coarse' when a coarse output is out of limits, 'refiner' when only the full-resolution ones are,
    None when no coarse outputs can be compared."""
    coarse = [name for name in ("pha_sm", "fgr_sm", "err_sm") if name in metrics.outputs]
    if not coarse:
        return None
    off = [line for line in limits.violations(metrics) if line.split(" ", 1)[0] in coarse]
    return "coarse" if off else "refiner"


def fallback(metrics, limits, stage: Optional[str], note: str = "") -> Dict[str, str]:
    """Where the difference first appears, when no alternative explains it."""
    if metrics.shape_mismatch or metrics.missing:
        odd = ", ".join([f"{name} ({text})" for name, text in metrics.shape_mismatch.items()]
                        + [f"{name} (missing)" for name in metrics.missing])
        return diagnosis("unknown", f"its outputs are not the reference's: {odd}; neither their names nor their "
                                    f"values map onto the contract's{note}")
    if stage is None:
        return diagnosis("unknown", "no coarse outputs (pha_sm, fgr_sm, err_sm) to tell where it diverges" + note)
    if stage == "coarse":
        coarse = ("pha_sm", "fgr_sm", "err_sm")
        off = [line for line in limits.violations(metrics) if line.split(" ", 1)[0] in coarse]
        return diagnosis("stage", "coarse network: " + off[0] + note)
    return diagnosis("stage", "refiner: the coarse outputs are within limits, alpha and foreground are not "
                              "(refinement: its crop, resize or weights)" + note)


def diagnose(reference, candidate, knobs: Dict[str, object], probes, metrics, limits) -> Dict[str, str]:
    """The most likely cause of a failure (`{"code", "detail"}`)."""
    from .diagnosis_batch import batch_step
    from .diagnosis_conventions import conventions_step
    from .diagnosis_layer import layer_step
    from .diagnosis_outputs import outputs_step
    from .diagnosis_precision import precision_evidence, precision_step
    mismatch = backbone_mismatch(reference, candidate)
    if mismatch:
        return diagnosis("backbone", mismatch)
    expected = [reference.run(knobs, probe) for probe in probes]
    runner = candidate.runner
    got = on_all(lambda probe: runner(probe.src, probe.bgr), probes)
    if got is None:
        return diagnosis("unknown", "the candidate did not run again on the probes")
    stage = stage_of(metrics, limits)
    steps = (lambda: outputs_step(expected, got, knobs, limits),
             lambda: input_step(runner, probes, expected, knobs, limits),
             lambda: batch_step(candidate, knobs, probes, expected, got, limits),
             lambda: knob_step(reference, probes, got, knobs, limits),
             lambda: precision_step(reference, candidate, knobs, probes, expected, got, limits),
             lambda: layer_step(reference, candidate, knobs, probes, got, limits),
             lambda: conventions_step(reference, knobs, probes, got, limits, stage or "coarse"))
    for step in steps:
        found = step()
        if found is not None:
            return found
    evidence = safely(precision_evidence, candidate, reference)
    note = f" (its file shows {evidence.text()}, but re-running that does not explain it)" if evidence and \
        evidence.kinds else ""
    return fallback(metrics, limits, stage, note)
