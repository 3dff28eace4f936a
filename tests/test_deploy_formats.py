"""Deployment formats on the TensorFlow side and the new runtimes: SavedModel, TFLite, OpenVINO.

The contract every file keeps (inputs `src`, `bgr`; outputs `pha, fgr, pha_sm, fgr_sm, err_sm,
ref_sm` by name and in that order where order exists), any frame size (odd sizes give
`bgmv2.pytorch_impl.matte`'s alpha), no float64 tensor in the graphs, integer backbone sizes, weights stored
once, and the bad-input messages. Files are made from the shipped (trained) MobileNetV2.
"""
import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from bgmv2 import converters  # noqa: E402
from bgmv2 import pytorch_impl  # noqa: E402
from bgmv2.converters import ConversionError  # noqa: E402
from bgmv2.converters import detect  # noqa: E402
from probes import probe_pair  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "weights", "bgmv2_mobilenetv2_synthetic_fp16.safetensors")
CONTRACT = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
ODD_SIZES = [(66, 98), (70, 101)]


# At these small sizes the default scale 1/4 gives the backbone 16x24 pixels, too few for any soft
# alpha; at 1/2 the probe has soft edges, and 100 cells of about 430 are selected (ties and order matter).
KNOBS = {"backbone_scale": 0.5, "refine_sample_pixels": 1_600}


@pytest.fixture(scope="module")
def spec():
    from dataclasses import replace
    shipped = converters.read(SHIPPED)
    return replace(shipped, knobs={**shipped.knob_values(), **KNOBS})


@pytest.fixture(scope="module")
def torch_model(spec):
    from bgmv2.converters.torch_formats import torch_model as build
    return build(spec).eval()


def reference(torch_model, src, bgr):
    outputs = pytorch_impl.matte(torch_model, torch.from_numpy(src), torch.from_numpy(bgr))
    return dict(zip(CONTRACT, (o.numpy() for o in outputs)))


def assert_same_matte(out, ref, height, width, limit=1e-4):
    assert out["pha"].shape == (1, 1, height, width) and out["fgr"].shape == (1, 3, height, width)
    for name in CONTRACT:
        assert out[name].shape == ref[name].shape, name
    soft = (ref["pha"] > 0.05) & (ref["pha"] < 0.95)
    assert soft.sum() > 100, "the probe must have soft alpha at this size, or the comparison says little"
    assert np.abs(out["pha"] - ref["pha"]).max() < limit
    assert np.abs(out["fgr"] - ref["fgr"]).max() < limit
    assert np.array_equal(out["ref_sm"], ref["ref_sm"]) and 0 < ref["ref_sm"].sum() < ref["ref_sm"].size


def float64_ops(graph_def):
    """(op, attr) pairs of a GraphDef (and its function library) that carry a float64 type."""
    from tensorflow.core.framework import types_pb2
    found = []
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    for node in nodes:
        for key, value in node.attr.items():
            if value.type == types_pb2.DT_DOUBLE or types_pb2.DT_DOUBLE in value.list.type:
                found.append((node.op, key))
    return found


# -- integer size arithmetic --------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.5, 0.25, 0.125, 0.3, 1 / 3, 0.2, 0.45])
def test_backbone_sizes_in_integers_equal_pytorchs_double_floor(scale):
    from bgmv2.tensorflow_impl.resize import scale_fraction
    num, den = scale_fraction(scale)
    sizes = range(1, 20_000)
    assert [s * num // den for s in sizes] == [math.floor(s * scale) for s in sizes]


def test_scale_without_a_small_fraction_is_refused_with_the_fix():
    from bgmv2.tensorflow_impl.resize import scale_fraction
    with pytest.raises(ValueError, match="simple fraction such as 0.25"):
        scale_fraction(0.123456)


def test_traced_size_arithmetic_is_int32_and_matches_python():
    import tensorflow as tf
    from bgmv2.tensorflow_impl.resize import scaled_size

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def sizes(x):
        return scaled_size(tf.shape(x)[0], 0.3)

    assert float64_ops(sizes.get_concrete_function().graph.as_graph_def()) == []
    assert [int(sizes(tf.zeros([n], tf.int32))) for n in (7, 10, 33, 1001)] == [math.floor(n * 0.3) for n in (7, 10, 33, 1001)]


# -- SavedModel -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def savedmodel(spec, tmp_path_factory):
    from bgmv2.converters.tf_formats import write_savedmodel
    path = str(tmp_path_factory.mktemp("sm") / "m_savedmodel")
    write_savedmodel(spec, path, {"backbone": spec.backbone, "model": "MattingRefine", "layout": "NHWC"})
    return path


def test_savedmodel_stores_each_weight_once(savedmodel, spec):
    stored = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(os.path.join(savedmodel, "variables"))
                 for f in files)
    weights = sum(v.size * 4 for k, v in spec.state.items() if not k.endswith("num_batches_tracked"))
    assert weights < stored < 1.05 * weights  # twice (40.5 MB for 20 MB of weights) before


def test_savedmodel_graph_has_no_float64(savedmodel):
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(savedmodel, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    assert float64_ops(proto.meta_graphs[0].graph_def) == []


@pytest.fixture(scope="module")
def savedmodel_runner(savedmodel):
    return converters.load(savedmodel)


def test_savedmodel_contract_names_order_and_metadata(savedmodel, savedmodel_runner):
    import tensorflow as tf
    loaded = savedmodel_runner.model
    signature = loaded.signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"src", "bgr"}
    assert set(signature.structured_outputs) == set(CONTRACT)
    info = converters.info(savedmodel)
    assert info["inputs"] == "src, bgr" and info["outputs"] == ", ".join(CONTRACT)
    assert info["layout"] == "NHWC" and info["frame_size"] == "any"
    src, bgr = probe_pair(1, 64, 96)
    nhwc = [tf.constant(x.transpose(0, 2, 3, 1)) for x in (src, bgr)]
    positional = loaded.matte(*nhwc)  # tuple in contract order
    named = signature(src=nhwc[0], bgr=nhwc[1])
    for name, value in zip(CONTRACT, positional):
        np.testing.assert_array_equal(value.numpy(), named[name].numpy())


@pytest.mark.parametrize("size", ODD_SIZES)
def test_savedmodel_odd_sizes_give_pytorchs_matte(savedmodel_runner, torch_model, size):
    src, bgr = probe_pair(1, *size)
    out = savedmodel_runner(src, bgr)
    assert_same_matte(out, reference(torch_model, src, bgr), *size)


# -- TFLite (a conversion takes about a minute on 2 cores: slow tier) --------------------------------
@pytest.fixture(scope="module")
def tflite_file(spec, tmp_path_factory):
    from bgmv2.converters.meta import describe
    from bgmv2.converters import tflite_format
    path = str(tmp_path_factory.mktemp("tflite") / "m.tflite")
    tflite_format.write(spec, path, describe(spec, "tflite", "fp32", "NHWC", SHIPPED, "safetensors"))
    return path


@pytest.mark.slow
def test_tflite_is_detected_by_content_and_carries_its_metadata(tflite_file, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(open(tflite_file, "rb").read())
    assert detect(str(renamed)) == "tflite"
    info = converters.info(tflite_file)
    assert info["format"] == "tflite" and info["backbone"] == "mobilenetv2" and info["frame_size"] == "any"
    assert info["outputs"] == ", ".join(CONTRACT) and info["layout"] == "NHWC"
    assert info["source_sha256"] == "4de2936f416352bd5bcbf14d844e32dea6be59e2f494b47b145eabd6eedba4ce"


@pytest.mark.slow
def test_tflite_is_builtin_ops_only_float32_and_named_in_contract_order(tflite_file):
    from bgmv2.converters.tflite_format import schema
    fb = schema()
    model = fb.Model.GetRootAs(open(tflite_file, "rb").read(), 0)
    graph = model.Subgraphs(0)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        assert code.BuiltinCode() != fb.BuiltinOperator.CUSTOM, code.CustomCode()
    types = {graph.Tensors(i).Type() for i in range(graph.TensorsLength())}
    assert fb.TensorType.FLOAT64 not in types
    names = lambda indices: [graph.Tensors(int(i)).Name().decode() for i in indices]  # noqa: E731
    assert names(graph.InputsAsNumpy()) == ["src", "bgr"]
    assert names(graph.OutputsAsNumpy()) == list(CONTRACT)
    signature = model.SignatureDefs(0)
    assert [signature.Outputs(i).Name().decode() for i in range(signature.OutputsLength())] == list(CONTRACT)


@pytest.mark.slow
@pytest.mark.parametrize("interpreter", ["litert", "tensorflow"])
@pytest.mark.parametrize("size", ODD_SIZES)
def test_tflite_odd_sizes_give_pytorchs_matte_in_litert_and_tf_lite(tflite_file, torch_model, interpreter, size):
    if interpreter == "litert":
        pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) is not installed for this Python")
    runner = converters.load(tflite_file, interpreter=interpreter)
    src, bgr = probe_pair(1, *size)
    assert_same_matte(runner(src, bgr), reference(torch_model, src, bgr), *size)


def test_tflite_bad_requests_name_the_fix_and_write_nothing(tmp_path):
    dest = tmp_path / "m.tflite"
    with pytest.raises(ConversionError, match="fp32 only"):
        converters.convert(SHIPPED, dest, precision="fp16", log=None)
    with pytest.raises(ConversionError, match="multiples of 4"):
        converters.convert(SHIPPED, dest, size="70x101", log=None)
    with pytest.raises(ConversionError, match="is for tflite files; onnx files take any size"):
        converters.convert(SHIPPED, tmp_path / "m.onnx", size="96x64", log=None)
    with pytest.raises(ConversionError, match="WIDTHxHEIGHT"):
        converters.convert(SHIPPED, dest, size="96 by 64", log=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_tflite_weights_are_not_read_back_and_knobs_are_fixed(tflite_file):
    with pytest.raises(ConversionError, match="Convert from the file it was made from"):
        converters.read(tflite_file)
    with pytest.raises(ConversionError, match="fixed when it is written"):
        converters.load(tflite_file, knobs={"backbone_scale": 0.125})


# -- OpenVINO ---------------------------------------------------------------------------------------
def test_openvino_refuses_a_precision_the_cpu_lacks(monkeypatch):
    """Before converting anything: one line with the fix."""
    ov = pytest.importorskip("openvino")
    real = ov.Core.get_property

    def without_bf16(self, device, name, *args):
        value = real(self, device, name, *args)
        return [c for c in value if c != "BF16"] if name == "OPTIMIZATION_CAPABILITIES" else value

    monkeypatch.setattr(ov.Core, "get_property", without_bf16)
    with pytest.raises(ConversionError, match="no BF16 support.*run with precision fp32"):
        converters.load(SHIPPED, "onnx", runtime="openvino", precision="bf16")  # refused before it is read


@pytest.mark.slow
@pytest.mark.parametrize("size", [ODD_SIZES[1]])
def test_openvino_runs_the_savedmodel_in_pinned_fp32(savedmodel, torch_model, size):
    pytest.importorskip("openvino")
    runner = converters.load(savedmodel, runtime="openvino")
    assert runner.precision == "fp32" and "inference precision fp32" in runner.runtime
    assert "f32" in str(runner.model.get_property("INFERENCE_PRECISION_HINT")).replace("float32", "f32")
    src, bgr = probe_pair(1, *size)
    assert_same_matte(runner(src, bgr), reference(torch_model, src, bgr), *size)


@pytest.mark.slow
def test_openvino_ir_conversion_contract_odd_sizes_and_bin_companion(tmp_path, torch_model):
    pytest.importorskip("openvino")
    dest = tmp_path / "m.xml"
    result = converters.convert(SHIPPED, dest, knobs=KNOBS, log=None)
    assert result.format == "openvino" and (tmp_path / "m.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]  # no partial files left
    assert detect(str(dest)) == "openvino"
    info = converters.info(dest)
    assert info["outputs"] == ", ".join(CONTRACT) and info["weights"] == "fp32" and info["frame_size"] == "any"
    assert float(info["backbone_scale"]) == KNOBS["backbone_scale"]
    runner = converters.load(dest)
    assert runner.outputs == CONTRACT and runner.precision == "fp32"
    assert [p.get_any_name() for p in runner.model.inputs] == ["src", "bgr"]
    assert [p.get_any_name() for p in runner.model.outputs] == list(CONTRACT)
    for size in ODD_SIZES:
        src, bgr = probe_pair(1, *size)
        assert_same_matte(runner(src, bgr), reference(torch_model, src, bgr), *size)
    with pytest.raises(ConversionError, match="exists"):
        converters.convert(SHIPPED, dest, knobs=KNOBS, log=None)
    os.remove(tmp_path / "m.bin")
    with pytest.raises(ConversionError, match="weights m.bin are missing"):
        converters.load(dest)


@pytest.mark.slow
def test_tflite_fixed_size_conversion_and_refusal_of_other_sizes(tmp_path):
    """`size` is 'WIDTHxHEIGHT' as in every command, or a (height, width) pair as probe_pair takes."""
    dest = tmp_path / "m_96x64.tflite"
    converters.convert(SHIPPED, dest, size="96x64", log=None)  # 96 wide, 64 high
    assert converters.info(dest)["frame_size"] == "96x64"
    runner = converters.load(dest)
    src, bgr = probe_pair(1, 64, 96)
    assert runner(src, bgr)["pha"].shape == (1, 1, 64, 96)
    src, bgr = probe_pair(1, 68, 96)
    with pytest.raises(ConversionError, match="converted for 96x64 frames"):
        runner(src, bgr)
