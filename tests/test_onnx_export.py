"""ONNX exports read with the runtime's own API (onnx.load, onnxruntime.InferenceSession), not ours:
the contract (names, order, doc strings), any frame size giving `bgmv2.pytorch_impl.matte`'s alpha, no float64,
no debug metadata, the same bytes twice."""
import os

import numpy as np
import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.converters.api import convert
from bgmv2.pytorch_impl import MattingRefine, matte, save_state_dict

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.onnx

KNOBS = {"refine_sample_pixels": 16 * 100}
OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
DOUBLE = onnx.TensorProto.DOUBLE


@pytest.fixture(scope="module")
def model():
    return realistic_weights(MattingRefine("mobilenetv2", **KNOBS), seed=21).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("onnx_export")
    save_state_dict(model, folder / "m.pth")
    convert(folder / "m.pth", folder / "m.onnx", knobs=KNOBS, probe_size=(64, 96), log=None)
    return folder


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_contract_names_order_and_doc_strings(exported):
    runtime = session(exported / "m.onnx")
    assert [i.name for i in runtime.get_inputs()] == ["src", "bgr"]
    assert [o.name for o in runtime.get_outputs()] == OUTPUTS
    proto = onnx.load(str(exported / "m.onnx"))
    assert "Inputs src, bgr (NCHW); outputs pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm in this order" in proto.doc_string
    assert proto.graph.doc_string == proto.doc_string
    assert all(v.doc_string for v in list(proto.graph.input) + list(proto.graph.output))
    assert "any height and width" in proto.graph.input[0].doc_string
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["bgmv2.layout"] == "NCHW" and props["bgmv2.frame_sizes"] == "any"


@pytest.mark.parametrize("height, width", [(66, 98), (61, 95), (64, 93)])
def test_any_frame_size_gives_the_alpha_of_matte(exported, model, height, width):
    """Sizes not divisible by 4: padded and cropped inside the graph, never a shifted matte."""
    src, bgr = torch_probe(2, height, width, seed=11)
    expected = matte(model, src, bgr)
    got = session(exported / "m.onnx").run(None, {"src": src.numpy(), "bgr": bgr.numpy()})
    assert got[0].shape == (2, 1, height, width) and got[1].shape == (2, 3, height, width)
    np.testing.assert_allclose(got[0], expected[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got[5], expected[5].numpy())  # the same cells refined


def dims_of(values):
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def test_dims_are_named_from_the_input_dims(exported):
    """batch, height, width and expressions of them (the exporter's own symbols are s28, s62, ...)."""
    proto = onnx.load(str(exported / "m.onnx"))
    cells = ["ceil(height/4)", "ceil(width/4)"]
    assert dims_of(proto.graph.input) == {"src": ["batch", 3, "height", "width"], "bgr": ["batch", 3, "height", "width"]}
    assert dims_of(proto.graph.output) == {
        "pha": ["batch", 1, "height", "width"], "fgr": ["batch", 3, "height", "width"],
        "pha_sm": ["batch", 1, *cells], "fgr_sm": ["batch", 3, *cells], "err_sm": ["batch", 1, *cells],
        "ref_sm": ["batch", 1, *cells]}
    symbols = {d.dim_param for v in proto.graph.value_info for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert not [s for s in symbols if __import__("re").search(r"\bs\d+\b", s)]
    src, bgr = torch_probe(1, 67, 93, seed=3)
    got = session(exported / "m.onnx").run(None, {"src": src.numpy(), "bgr": bgr.numpy()})
    assert [list(g.shape[2:]) for g in got] == [[67, 93]] * 2 + [[17, 24]] * 4  # ceil(67/4), ceil(93/4)


@pytest.mark.parametrize("scale, height, width", [(0.25, 67, 93), (0.125, 61, 98), (0.5, 66, 95), (1 / 3, 70, 101)])
def test_dim_names_give_the_sizes_the_model_returns(scale, height, width):
    """Each output's dim names, evaluated at the input size, are the shape `matte` (and so the graph,
    which pads the same way) gives, at several backbone scales."""
    import math
    from bgmv2.converters.onnx_dims import output_sides
    from bgmv2.pytorch_impl import MattingRefine as Eager
    model = Eager("mobilenetv2", backbone_scale=scale).eval()
    src = torch.rand(1, 3, height, width)
    got = matte(model, src, src)
    for name, value in zip(OUTPUTS, got):
        sides = [eval(e, {"ceil": math.ceil, "floor": math.floor}, {"height": height, "width": width})
                 for e in output_sides(name, "refine", scale)]
        assert list(value.shape[2:]) == sides, name


def float64_uses(graph):
    """Names of float64 tensors anywhere in a graph (initializers, casts, constants, declared values)."""
    found = [i.name for i in graph.initializer if i.data_type == DOUBLE]
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    found += [v.name for v in values if v.type.tensor_type.elem_type == DOUBLE]
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == DOUBLE:
                found.append(node.name)
            if attribute.HasField("t") and attribute.t.data_type == DOUBLE:
                found.append(node.name)
            if attribute.HasField("g"):
                found += float64_uses(attribute.g)
    return found


def test_no_float64_anywhere(exported):
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(exported / "m.onnx")))
    assert float64_uses(proto.graph) == []


def test_no_stack_traces_or_paths_in_the_file(exported):
    proto = onnx.load(str(exported / "m.onnx"))
    assert not [n.name for n in proto.graph.node if n.metadata_props or n.doc_string]
    assert not proto.graph.metadata_props
    data = (exported / "m.onnx").read_bytes()
    for needle in (b"stack_trace", b"pkg.torch", os.getcwd().encode(), os.path.expanduser("~").encode() + b"/"):
        assert needle not in data, needle


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["nonzero", "tensorrt"])
def test_other_variants_take_any_frame_size_without_float64(tmp_path, exported, model, variant):
    convert(exported / "m.pth", tmp_path / "v.onnx", knobs=KNOBS, onnx_variant=variant, probe_size=(64, 96), log=None)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "v.onnx")))
    assert float64_uses(proto.graph) == []
    src, bgr = torch_probe(1, 67, 93, seed=12)
    got = session(tmp_path / "v.onnx").run(None, {"src": src.numpy(), "bgr": bgr.numpy()})
    np.testing.assert_allclose(got[0], matte(model, src, bgr)[0].numpy(), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_two_exports_are_byte_identical(tmp_path, exported):
    convert(exported / "m.pth", tmp_path / "again.onnx", knobs=KNOBS, probe_size=(64, 96), log=None)
    assert (tmp_path / "again.onnx").read_bytes() == (exported / "m.onnx").read_bytes()


@pytest.mark.slow
def test_fp16_export_has_no_float64(tmp_path, exported):
    convert(exported / "m.pth", tmp_path / "h.onnx", knobs=KNOBS, precision="fp16", probe_size=(64, 96), log=None)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "h.onnx")))
    assert float64_uses(proto.graph) == []


# -- opsets 14-17 for converters that lack 18 (`bgmv2 convert --opset N`) -----------------------------
@pytest.mark.parametrize("opset", [17, 15, 14])
def test_older_opset_computes_the_same_with_only_old_operators(exported, opset):
    from onnx import defs
    from bgmv2.converters.onnx_opset import downgrade
    proto = onnx.load(str(exported / "m.onnx"))
    downgrade(proto, opset)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    onnx.checker.check_model(proto, full_check=True)
    for node in proto.graph.node:  # every node valid as its opset-N schema, none of the ops onnx2torch lacks
        assert defs.get_schema(node.op_type, max_inclusive_version=opset).since_version <= opset
        assert node.op_type != "ScatterElements"
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes.get("allowzero", 0) == 0 and "antialias" not in attributes
    src, bgr = torch_probe(2, 67, 93, seed=13)
    feeds = {"src": src.numpy(), "bgr": bgr.numpy()}
    older = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(older, session(exported / "m.onnx").run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def test_unknown_opsets_are_refused_with_the_choices():
    from bgmv2.converters import ConversionError
    from bgmv2.converters.onnx_opset import check_opset
    with pytest.raises(ConversionError, match="opset 13; choose one of 14, 15, 16, 17, 18"):
        check_opset(13)


@pytest.mark.slow
def test_convert_with_an_older_opset_records_it(tmp_path, exported, model):
    result = convert(exported / "m.pth", tmp_path / "o15.onnx", knobs=KNOBS, probe_size=(64, 96), log=None,
                     options={"opset": 15})
    assert result.metadata["opset"] == 15
    proto = onnx.load(str(tmp_path / "o15.onnx"))
    assert proto.opset_import[0].version == 15
    assert {p.key: p.value for p in proto.metadata_props}["bgmv2.opset"] == "15"
