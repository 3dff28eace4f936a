"""Names for the dynamic dimensions of an exported ONNX graph, derived from the input's.

The exporters name dynamic sizes after their internal symbols (`s28`, `s62`, `unk__12`, and
expressions of them). Here the inputs' axes become `batch`, `height`, `width`, every other mention
of those symbols is renamed to match, and each output's spatial axes get the exact size it has, as
an expression of the input's: `height` for full-resolution outputs, `ceil(height/4)` for the 4x4-cell
map of the padded frame, and for the coarse outputs at backbone_scale `num/den` the padded height
`4*ceil(height/4)` times the scale, floored (`ceil(height/4)` at 1/4, `floor(ceil(height/4)/2)` at 1/8).
"""
import re
from fractions import Fraction
from typing import Dict, List

AXES = {"NCHW": (0, 2, 3), "NHWC": (0, 1, 2)}  # positions of batch, height, width
COARSE = ("pha_sm", "fgr_sm", "err_sm")


def coarse_side(side: str, scale) -> str:
    """The coarse outputs' size along `side` at `scale`: floor(4 * ceil(side / 4) * scale)."""
    cells = f"ceil({side}/4)"
    factor = 4 * Fraction(float(scale))  # exactly the float the graph multiplies by (as `exportable`)
    if factor == 1:
        return cells
    if factor.denominator == 1:
        return f"{factor.numerator}*{cells}"
    if factor.numerator == 1:
        return f"floor({cells}/{factor.denominator})"
    return f"floor({cells}*{factor.numerator}/{factor.denominator})"


def output_sides(name: str, kind: str, scale) -> List[str]:
    """(height, width) names of one output."""
    if kind == "refine" and name in COARSE:
        return [coarse_side("height", scale), coarse_side("width", scale)]
    if kind == "refine" and name == "ref_sm":
        return ["ceil(height/4)", "ceil(width/4)"]
    return ["height", "width"]


def rename_symbols(model, names: Dict[str, str]) -> None:
    """Replace whole-word symbols in every dim_param of the graph (inputs, outputs, value_info)."""
    if not names:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in names) + r")\b")
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)


def name_dims(model, kind: str = "refine", scale=0.25, layout: str = "NCHW") -> None:
    """Inputs' axes `batch`, `height`, `width`; the outputs' from them (see the module docstring)."""
    axes = AXES[layout]
    names = {}
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for position, name in zip(axes, ("batch", "height", "width")):
            if position < len(dims) and not dims[position].HasField("dim_value"):
                if dims[position].dim_param and dims[position].dim_param != name:
                    names[dims[position].dim_param] = name
                dims[position].dim_param = name
    rename_symbols(model, names)
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        wanted = ["batch"] + output_sides(output.name, kind, scale)
        for position, name in zip(axes, wanted):
            if not dims[position].HasField("dim_value"):
                dims[position].dim_param = name
