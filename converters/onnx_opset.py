"""ONNX opsets 14-17 for converters that lack it (onnx2torch 1.5, older TensorRT and onnx2tf
builds): the exported opset-18 graph rewritten node by node to an older opset, same computation.

torch 2.13's exporter writes opset 18 only (asked for 17 it falls back to 18: onnx's version
converter has no Pad adapter). What changed after opset 13 in the operators this model uses:
- Pad-18 (optional `axes` input), Resize-18 (`antialias`, `keep_aspect_ratio_policy`, `axes`):
  the defaults are the old operators; the new attributes are dropped (refused when not default).
- ReduceMean-18 / ReduceMin-18 take `axes` as an input: a constant one becomes the attribute.
- ScatterElements-16 / -18 (`reduction`): `none` is the old operator's behaviour.
- Shape-15 (`start`, `end`): below 15, Shape then Slice.
- Reshape `allowzero=1` (what the exporter writes for `view`) becomes 0, which onnx2torch requires:
  they differ only for a 0 in the target shape, and these shapes are products of the batch, channel
  and cell counts, never 0 (batch >= 1, sides >= 8).
- For onnx2torch 1.5, which lacks them: Clip with computed bounds becomes Max and Min, and
  ScatterElements becomes ScatterND with full coordinates (the same values and writes).
Type-only revisions (Where-16, GreaterOrEqual-16, Add/Mul/Relu-14) need nothing. Anything else new
is refused (ConversionError), and the result is checked with `onnx.checker` (full check: shape
inference under the target opset's schemas).
"""
from typing import Dict, List

from .errors import ConversionError, first_line

OPSETS = (14, 15, 16, 17, 18)  # not 13: its Reshape has no allowzero attribute (not rewritten here)
DEFAULT = 18
INT64_MAX = 2 ** 63 - 1
RESIZE_DEFAULTS = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
AXES_INPUT = ("ReduceMean", "ReduceMin", "ReduceMax", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare")  # axes an input since 18 (ReduceSum since 13)


def check_opset(opset) -> int:
    try:
        value = int(opset)
    except (TypeError, ValueError):
        value = None
    if value not in OPSETS:
        raise ConversionError(f"opset {opset!r}; choose one of {', '.join(map(str, OPSETS))} (18, the default, is "
                              "what torch's exporter writes; lower ones are for converters that lack it).")
    return value


def constants(model) -> Dict[str, object]:
    """Name -> numpy value of the initializers and Constant nodes."""
    from onnx import numpy_helper
    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def attribute(node, name):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def drop_attributes(node, names) -> None:
    keep = [a for a in node.attribute if a.name not in names]
    del node.attribute[:]
    node.attribute.extend(keep)


def drop_unused_initializers(model) -> None:
    """Initializers no node reads any more (the axes moved into attributes)."""
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def clip_as_max_min(node) -> List:
    """Clip with computed bounds as Max then Min (the same values; onnx2torch wants constant bounds)."""
    from onnx import helper
    x, low, high = (list(node.input) + ["", ""])[:3]
    out, made = node.output[0], []
    if low:
        target = f"{out}__low" if high else out
        made.append(helper.make_node("Max", [x, low], [target], name=f"{node.name}__max"))
        x = target
    if high:
        made.append(helper.make_node("Min", [x, high], [out], name=f"{node.name}__min"))
    return made or [helper.make_node("Identity", [x], [out], name=node.name)]


def scatter_elements_as_nd(model, node) -> List:
    """ScatterElements(data, indices, updates, axis) as ScatterND with full coordinates: for every
    entry of `indices`, its own position with the `axis` coordinate replaced by the index (the same
    writes; onnx2torch has ScatterND but no ScatterElements). Rank from the graph's value_info."""
    from onnx import helper, numpy_helper
    import numpy as np
    rank = rank_of(model, node.input[1])
    axis = (attribute(node, "axis") or 0) % rank
    data, indices, updates = node.input[:3]
    base, made = f"{node.output[0]}__nd", []

    def const(name, value):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), f"{base}_{name}"))
        return f"{base}_{name}"

    shape = f"{base}_shape"
    made.append(helper.make_node("Shape", [indices], [shape], name=f"{base}_shape"))
    parts = []
    for d in range(rank):
        if d == axis:
            coordinate = indices
        else:
            size, steps, view, coordinate = (f"{base}_{d}_{n}" for n in ("size", "range", "view", "coord"))
            made.append(helper.make_node("Gather", [shape, const(f"{d}_at", d)], [size], name=size))
            made.append(helper.make_node("Range", [const(f"{d}_zero", 0), size, const(f"{d}_one", 1)], [steps],
                                         name=steps))
            made.append(helper.make_node("Reshape", [steps, const(f"{d}_dims", [-1 if i == d else 1 for i in range(rank)])],
                                         [view], name=view))
            made.append(helper.make_node("Expand", [view, shape], [coordinate], name=coordinate))
        last = f"{base}_{d}_last"
        made.append(helper.make_node("Unsqueeze", [coordinate, const(f"{d}_axis", [-1])], [last], name=last))
        parts.append(last)
    coordinates = f"{base}_coordinates"
    made.append(helper.make_node("Concat", parts, [coordinates], axis=-1, name=coordinates))
    made.append(helper.make_node("ScatterND", [data, coordinates, updates], [node.output[0]], name=node.name))
    return made


def rank_of(model, name: str) -> int:
    from onnx import shape_inference
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return len(value.type.tensor_type.shape.dim)
    inferred = shape_inference.infer_shapes(model)
    for value in inferred.graph.value_info:
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return len(value.type.tensor_type.shape.dim)
    raise ConversionError(f"the rank of {name} is unknown; write it with opset 18.")


def downgrade(model, opset: int) -> None:
    """Rewrite `model` (opset 18, default domain) in place to `opset` (14-18)."""
    from onnx import checker, helper, numpy_helper
    import numpy as np
    opset = check_opset(opset)
    if opset == DEFAULT:
        return
    if model.functions:
        raise ConversionError("the exported graph has local functions; write it with the default opset 18.")
    values = constants(model)
    nodes: List = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ConversionError(f"node {node.name} is in domain {node.domain!r}; only the default domain is rewritten.")
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise ConversionError(f"node {node.name} ({node.op_type}) has a subgraph; write it with opset 18.")
        if node.op_type == "Pad" and len(node.input) > 3 and node.input[3]:
            raise ConversionError(f"Pad {node.name} pads chosen axes (opset 18 only); write it with opset 18.")
        elif node.op_type == "Resize":
            if len(node.input) > 4 or any(attribute(node, k) not in (None, v) for k, v in RESIZE_DEFAULTS.items()) \
                    or attribute(node, "axes") is not None:
                raise ConversionError(f"Resize {node.name} uses opset-18 options; write it with opset 18.")
            drop_attributes(node, ("antialias", "keep_aspect_ratio_policy", "axes"))
        elif node.op_type in AXES_INPUT and len(node.input) > 1:
            if node.input[1]:
                if node.input[1] not in values:
                    raise ConversionError(f"{node.op_type} {node.name} has computed axes; write it with opset 18.")
                node.attribute.append(helper.make_attribute("axes", [int(v) for v in np.ravel(values[node.input[1]])]))
            elif attribute(node, "noop_with_empty_axes"):
                raise ConversionError(f"{node.op_type} {node.name} reduces nothing (noop_with_empty_axes).")
            del node.input[1:]
            drop_attributes(node, ("noop_with_empty_axes",))
        elif node.op_type in ("ScatterElements", "ScatterND"):
            reduction = attribute(node, "reduction")
            if reduction not in (None, b"none"):
                raise ConversionError(f"{node.op_type} {node.name} reduces ({reduction!r}); write it with opset 18.")
            drop_attributes(node, ("reduction",))
            if node.op_type == "ScatterElements":
                nodes.extend(scatter_elements_as_nd(model, node))
                continue
        elif node.op_type == "Reshape" and attribute(node, "allowzero"):
            node.attribute.remove(next(a for a in node.attribute if a.name == "allowzero"))
            node.attribute.append(helper.make_attribute("allowzero", 0))
        elif node.op_type == "Clip" and any(name and name not in values for name in node.input[1:]):
            nodes.extend(clip_as_max_min(node))
            continue
        elif node.op_type == "Shape" and opset < 15 and node.attribute:
            start, end = attribute(node, "start") or 0, attribute(node, "end")
            drop_attributes(node, ("start", "end"))
            full = f"{node.output[0]}__full"
            bounds = []
            for suffix, value in (("starts", start), ("ends", INT64_MAX if end is None else end), ("axes", 0)):
                name = f"{node.output[0]}__{suffix}"
                model.graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
                bounds.append(name)
            sliced = helper.make_node("Slice", [full, *bounds], [node.output[0]], name=f"{node.name}__slice")
            node.output[0] = full
            nodes.extend([node, sliced])
            continue
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_unused_initializers(model)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    try:
        checker.check_model(model, full_check=True)
    except Exception as error:  # noqa: BLE001 - an operator this rewrite does not know
        raise ConversionError(f"the graph does not fit opset {opset} ({first_line(error)}); write it with a higher "
                              "--opset.") from None
