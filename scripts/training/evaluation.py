"""How good a matte is: SAD, MSE, gradient error and the strand figures, beside the |src - bgr| baseline.

Strand figures, on the pixels that belong to strands (known in the synthetic ground truth: where the
strands raise alpha by 0.1 or more):
- `strand_score`: the share whose alpha is within 0.1 of the truth;
- `strand_found`: of those whose true alpha is 0.3 or more, the share given alpha above 0.3.
The baseline is the trivial matte 1 where any channel of |src - bgr| exceeds a threshold, at the
threshold of least SAD on the same images (generous to it).

Held-out sets (`bgmv2 train evaluate`), each generated from a seed training never used:
- `synthetic`: SyntheticMattingSet, the set the zoo's figures have always used;
- `strands`: StrandMattingSet's mixed recipe (1-3 px strands, crossing, busy backgrounds);
- `flyaways`: photographs, a soft body, twelve 1-px strands at 60 % opacity (issue 21's hidden kind);
- `sample`: the bundled sample (scripts/media/sample/*.jpg, as `bgmv2 demo` reads it) against the
  ground truth regenerated from the seed that made it.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from bgmv2.parity_tests.metrics import matting_metrics

BASELINE_THRESHOLDS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)
STRAND_TOLERANCE = 0.1
FOUND_LEVEL = 0.3
HELD_OUT_SETS = ("synthetic", "strands", "flyaways", "sample")


def strand_metrics(pred: np.ndarray, true: np.ndarray, strands: np.ndarray) -> Dict:
    """strand_score and strand_found (see the module's docstring) over a batch, pixels pooled."""
    on = strands > 0.5
    visible = on & (true >= FOUND_LEVEL)
    score = float((np.abs(pred - true) <= STRAND_TOLERANCE)[on].mean()) if on.any() else float("nan")
    found = float((pred > FOUND_LEVEL)[visible].mean()) if visible.any() else float("nan")
    return {"strand_score": score, "strand_found": found, "strand_pixels": int(on.sum())}


def all_metrics(pred: torch.Tensor, data: Dict[str, torch.Tensor]) -> Dict:
    pred, true = pred.float().numpy(), data["pha"].numpy()
    metrics = matting_metrics(pred, true)
    if "strands" in data:
        metrics.update(strand_metrics(pred, true, data["strands"].numpy()))
    return metrics


def difference_baseline(src: torch.Tensor, bgr: torch.Tensor, threshold: float) -> torch.Tensor:
    """The trivial matte: 1 where any channel of |src - bgr| exceeds `threshold`."""
    return ((src - bgr).abs().amax(dim=1, keepdim=True) > threshold).float()


def baseline_metrics(val: Dict[str, torch.Tensor]) -> Dict:
    """Metrics of the threshold baseline at its best threshold (least SAD) for this set."""
    scored = []
    for threshold in BASELINE_THRESHOLDS:
        pha = difference_baseline(val["src"], val["bgr"], threshold)
        scored.append({**matting_metrics(pha.numpy(), val["pha"].numpy()), "threshold": threshold})
    best = min(scored, key=lambda m: m["sad"])
    if "strands" in val:
        pha = difference_baseline(val["src"], val["bgr"], best["threshold"])
        best.update(strand_metrics(pha.numpy(), val["pha"].numpy(), val["strands"].numpy()))
    return best


@torch.no_grad()
def predict_alpha(model: torch.nn.Module, src: torch.Tensor, bgr: torch.Tensor, batch: int = 4) -> torch.Tensor:
    was_training = model.training
    model.eval()
    parts = [model(src[i:i + batch], bgr[i:i + batch])[0].float() for i in range(0, len(src), batch)]
    model.train(was_training)
    return torch.cat(parts)


def stack(samples: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def generated_set(name: str, count: int, size: Tuple[int, int], seed: int) -> Dict[str, torch.Tensor]:
    """`count` held-out images of one generated set, stacked (src, bgr, pha, fgr, strands)."""
    from bgmv2.data.strands import StrandMattingSet
    from bgmv2.data.synthetic_strands import SyntheticWithStrands
    if name == "synthetic":
        data = SyntheticWithStrands(count, *size, seed=seed)
    elif name in ("strands", "flyaways"):
        data = StrandMattingSet(count, *size, seed=seed, recipe="mixed" if name == "strands" else name)
    else:
        raise ValueError(f"no generated set named {name!r}")
    return stack([data[i] for i in range(count)])


def sample_set() -> Dict[str, torch.Tensor]:
    """The bundled sample as `bgmv2 demo` reads it (the JPEGs), with its regenerated ground truth."""
    from bgmv2.data.synthetic_strands import SyntheticWithStrands
    from bgmv2.scripts.media import decode
    from bgmv2.scripts.media.sample import make_sample
    truth = SyntheticWithStrands(1, *make_sample.SIZE, seed=make_sample.SEED)[0]
    pictures = {name: decode.read_image(make_sample.HERE / f"{name}.jpg") for name in ("src", "bgr")}
    data = {name: torch.from_numpy(p).permute(2, 0, 1).float().div(255)[None] for name, p in pictures.items()}
    return {**data, "pha": truth["pha"][None], "strands": truth["strands"][None]}


def compare(model: torch.nn.Module, data: Dict[str, torch.Tensor]) -> Dict:
    """The model and the baseline on one stacked set, and the model's SAD/MSE/grad as a share of the baseline's."""
    ours = all_metrics(predict_alpha(model, data["src"], data["bgr"]), data)
    baseline = baseline_metrics(data)
    ratio = {k: round(ours[k] / baseline[k], 4) for k in ("sad", "mse", "grad") if baseline[k] > 0}
    return {"model": ours, "baseline": baseline, "ratio_to_baseline": ratio}


def held_out(model: torch.nn.Module, sets: Sequence[str], count: int, size: Tuple[int, int], seed: int) -> Dict:
    """`compare` on each named held-out set (see the module's docstring)."""
    results = {}
    for name in sets:
        data = sample_set() if name == "sample" else generated_set(name, count, size, seed)
        results[name] = {**compare(model, data), "count": len(data["pha"]),
                         "size": f"{data['pha'].shape[-1]}x{data['pha'].shape[-2]}"}
    return results


def summary_lines(results: Dict) -> List[str]:
    """A short table of `held_out`'s results, one line per set and side."""
    lines = [f"{'set':<10} {'':<9} {'SAD':>8} {'MSE':>8} {'grad':>8} {'strand score':>13} {'found':>6}"]
    for name, result in results.items():
        for side in ("model", "baseline"):
            m = result[side]
            score = f"{100 * m['strand_score']:.1f}%" if "strand_score" in m else "-"
            found = f"{100 * m['strand_found']:.1f}%" if "strand_found" in m else "-"
            label = side if side == "model" else f"|s-b|>{m['threshold']}"
            lines.append(f"{name:<10} {label:<9} {m['sad']:>8.3f} {m['mse']:>8.5f} {m['grad']:>8.3f} "
                         f"{score:>13} {found:>6}")
    return lines
