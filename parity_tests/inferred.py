"""Knobs read off an ONNX graph that records none (upstream's own `export_onnx.py` files, other tools).

Upstream's exporter fixes the knobs in the graph: `sampling` is a `TopK` whose k is a constant
(refine_sample_pixels // 16; k = 5,000 for the default 80,000 pixels), `prevent_oversampling` a
`Greater(err, 0)`, `thresholding` a `Greater(err, threshold)` without a TopK, and backbone_scale the
constant the input sizes are multiplied by before the first `Resize` of `src`. A file with a fixed k
also needs at least k cells of 4x4 pixels in every picture: `min_cells` says so, and the parity run
enlarges its built-in probes (or names a size that works for the user's own).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np


@dataclass
class Inferred:
    knobs: Dict[str, object] = field(default_factory=dict)
    min_cells: int = 0  # the fixed TopK k: pictures need at least this many 4x4 cells
    found: List[str] = field(default_factory=list)  # what was read, in words


def constants(graph, base_dir: str = "") -> Dict[str, np.ndarray]:
    """Small constants (initializers and Constant nodes) by name; external data read from `base_dir`."""
    from onnx import numpy_helper
    found = {t.name: numpy_helper.to_array(t, base_dir) for t in graph.initializer if int(np.prod(t.dims)) <= 16}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and int(np.prod(attribute.t.dims)) <= 16:
                    found[node.output[0]] = numpy_helper.to_array(attribute.t, base_dir)
    return found


def scalar(values: Dict[str, np.ndarray], name: str) -> Optional[float]:
    value = values.get(name)
    if value is None or value.size != 1:
        return None
    return float(value.reshape(-1)[0])


def top_k(name: str, values, producers) -> Tuple[Optional[int], bool]:
    """(k, fixed) of a TopK's k input: a constant (`fixed`: pictures need k cells), or min(cells, constant)
    through Reshape / Cast / Unsqueeze / Squeeze, as `torch.export` graphs compute it; (None, False)."""
    for _ in range(6):
        value = scalar(values, name)
        if value is not None:
            return int(value), True
        node = producers.get(name)
        if node is None:
            return None, False
        if node.op_type == "Min":
            constant = [scalar(values, operand) for operand in node.input if scalar(values, operand) is not None]
            return (int(constant[0]), False) if len(constant) == 1 else (None, False)
        if node.op_type not in ("Reshape", "Cast", "Unsqueeze", "Squeeze", "Identity"):
            return None, False
        name = node.input[0]
    return None, False


def backbone_scale(graph, values) -> Optional[float]:
    """The factor src's size is multiplied by before its first Resize (or that Resize's scales)."""
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type not in ("Resize", "Upsample") or not node.input or node.input[0] != "src":
            continue
        for index in (2, 1):  # scales, then sizes' ancestry
            if len(node.input) > index and node.input[index] in values and values[node.input[index]].size == 4:
                scales = values[node.input[index]].astype(float)
                if 0 < scales[2] < 1:
                    return float(scales[2])
        frontier, seen = [node.input[-1]], set()
        for _ in range(12):
            next_frontier = []
            for name in frontier:
                producer = producers.get(name)
                if producer is None or producer.name in seen:
                    continue
                seen.add(producer.name)
                if producer.op_type == "Mul":
                    for operand in producer.input:
                        value = scalar(values, operand)
                        if value is not None and 0 < value < 1:
                            return value
                next_frontier += list(producer.input)
            frontier = next_frontier
    return None


def onnx_knobs(path: str) -> Inferred:
    """What an ONNX file fixes, read from its graph (empty when nothing recognisable is found)."""
    import os
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    values = constants(graph, os.path.dirname(os.path.abspath(path)))
    found = Inferred()
    producers = {out: node for node in graph.node for out in node.output}
    tops = [top_k(node.input[1], values, producers) for node in graph.node if node.op_type == "TopK"
            and len(node.input) > 1]
    ks = sorted({k for k, _ in tops if k is not None})
    greater = [scalar(values, node.input[1]) for node in graph.node if node.op_type == "Greater" and len(node.input) > 1]
    greater = [g for g in greater if g is not None]
    if len(ks) == 1:
        k = ks[0]
        fixed = all(f for k_, f in tops if k_ == k)
        found.knobs.update(refine_mode="sampling", refine_sample_pixels=16 * k,
                           refine_prevent_oversampling=any(g == 0.0 for g in greater))
        found.min_cells = k if fixed else 0
        found.found.append(f"TopK k = {k:,} (refine_mode sampling, refine_sample_pixels {16 * k:,}"
                           + (f"; pictures need at least {k:,} cells of 4x4 pixels)" if fixed else
                              "; k = min(cells, that) on smaller pictures)"))
        found.found.append("Greater(err, 0) present: prevent_oversampling on" if found.knobs["refine_prevent_oversampling"]
                           else "no Greater(err, 0): prevent_oversampling off")
    elif not ks:
        thresholds = [g for g in greater if 0 < g < 1]
        if len(thresholds) == 1:
            found.knobs.update(refine_mode="thresholding", refine_threshold=round(thresholds[0], 6))
            found.found.append(f"Greater(err, {thresholds[0]:.6g}) and no TopK (refine_mode thresholding)")
    scale = backbone_scale(graph, values)
    if scale is not None:
        found.knobs["backbone_scale"] = round(scale, 6)
        found.found.append(f"src resized by {scale:.6g} (backbone_scale)")
    return found


def size_with_cells(height: int, width: int, cells: int, step: int = 16) -> Tuple[int, int]:
    """The smallest size of the same shape (both sides multiples of `step`) with at least `cells` 4x4 cells."""
    factor = max(1.0, (cells / ((height // 4) * (width // 4))) ** 0.5)
    while True:
        h = int(np.ceil(height * factor / step) * step)
        w = int(np.ceil(width * factor / step) * step)
        if (h // 4) * (w // 4) >= cells:
            return h, w
        factor *= 1.02
