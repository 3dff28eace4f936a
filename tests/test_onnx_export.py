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
