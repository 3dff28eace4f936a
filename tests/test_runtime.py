"""Runners: one face for every format (named float32 NCHW outputs), input checks, and the ONNX export
variants: static sampling (no NonZero), TensorRT-portable (constant TopK k <= the limit, no float64,
no NonZero), upstream-like NonZero, thresholding, full, fp16 and onnxsim, at several sizes."""
import numpy as np
import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.converters import ConversionError
from bgmv2.converters.api import convert, load, read
from bgmv2.pytorch_impl import MattingRefine, save_state_dict, script_model

PROBE = (64, 96)
KNOBS = {"refine_sample_pixels": 16 * 100}
SIZES = [(1, 64, 96), (2, 96, 64), (1, 32, 32)]  # the last has 64 cells, fewer than k = 100


@pytest.fixture(scope="module")
def model():
    return realistic_weights(MattingRefine("mobilenetv2", **KNOBS), seed=31)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("runtime")
    save_state_dict(model, folder / "w.pth")
    return folder


def reference(model, batch, height, width, seed=3, **knobs):
    eager = MattingRefine("mobilenetv2", **{**KNOBS, **knobs})
    eager.load_state_dict(model.state_dict())
    with torch.no_grad():
        return [o.numpy() for o in eager.eval()(*torch_probe(batch, height, width, seed))]


def test_every_runner_has_the_same_face(weights, model):
    save_state_dict(model, weights / "w.safetensors")
    script_model(model).save(str(weights / "w.pt"))
    src, bgr = torch_probe(2, *PROBE, seed=3)
    # Plain state dicts carry no knobs (defaults unless given); TorchScript keeps its own.
    results = {fmt: load(weights / name, knobs=knobs)(src, bgr) for fmt, name, knobs in
               [("pth", "w.pth", KNOBS), ("safetensors", "w.safetensors", KNOBS), ("torchscript", "w.pt", None)]}
    expected = reference(model, 2, *PROBE)
    for fmt, outputs in results.items():
        assert list(outputs) == ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"], fmt
        for name, value, want in zip(outputs, outputs.values(), expected):
            assert value.dtype == np.float32 and value.shape == want.shape, (fmt, name)
            np.testing.assert_array_equal(value, want, err_msg=f"{fmt} {name}")
    runner = load(weights / "w.pth", knobs=KNOBS)
    numpy_outputs = runner(src.numpy(), bgr.numpy())  # numpy in, numpy out
    np.testing.assert_array_equal(numpy_outputs["pha"], expected[0])
    assert runner.format == "pth" and runner.layout == "NCHW"


def test_runner_input_errors_say_what_to_do(weights):
    runner = load(weights / "w.pth")
    src, bgr = torch_probe(1, *PROBE)
    with pytest.raises(ConversionError, match="NCHW"):
        runner(src.permute(0, 2, 3, 1), bgr.permute(0, 2, 3, 1))
    with pytest.raises(ConversionError, match="same shape"):
        runner(src, bgr[..., :60, :])
    with pytest.raises(ConversionError, match="divide by 255"):
        runner(src * 255, bgr)
    with pytest.raises(ConversionError, match="NaN"):
        runner(src, bgr * float("nan"))
    with pytest.raises(ConversionError, match="8-bit images"):
        runner((src * 255).to(torch.uint8), (bgr * 255).to(torch.uint8))


def test_runners_take_any_size_as_matte_does(weights, model):
    """A file that does not pad itself is padded by its runner and its outputs cropped back."""
    from bgmv2.pytorch_impl import matte
    src, bgr = torch_probe(1, *PROBE)
    src, bgr = src[..., :61, :].contiguous(), bgr[..., :61, :].contiguous()
    got = load(weights / "w.pth", knobs=KNOBS)(src, bgr)
    want = matte(model, src, bgr)
    assert got["pha"].shape == tuple(want[0].shape) == (1, 1, 61, PROBE[1])
    np.testing.assert_allclose(got["pha"], want[0].numpy(), atol=1e-6)


def test_knobs_are_settable_after_conversion_where_the_format_allows(weights, tmp_path):
    pytest.importorskip("onnx")
    from test_detect import tiny_onnx_bytes
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_onnx_bytes())
    with pytest.raises(ConversionError, match="fixed when it is exported"):
        load(path, knobs={"refine_mode": "full"})
    runner = load(path)  # any ONNX with inputs src and bgr runs through the same face
    src, bgr = torch_probe(1, 8, 8)
    out = runner(src, bgr)
    assert list(out) == ["pha"] and out["pha"].shape == (1, 3, 8, 8)
    np.testing.assert_allclose(out["pha"], (src - bgr).abs().numpy(), atol=1e-7)  # the graph: |src - bgr|
    full = load(weights / "w.pth", knobs={"refine_mode": "full"})(*torch_probe(1, *PROBE))
    assert full["ref_sm"].min() == 1.0


def onnx_graph(path):
    import onnx
    return onnx.load(str(path))


def constant_values(graph):
    """name -> numpy value of initializers and Constant nodes."""
    from onnx import numpy_helper
    values = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def check_sizes(path, model, sizes=SIZES, max_diff=1e-4, agreement=1.0, **knobs):
    runner = load(path)
    for batch, height, width in sizes:
        outputs = runner(*torch_probe(batch, height, width, seed=3))
        expected = reference(model, batch, height, width, **knobs)
        assert np.abs(outputs["pha"] - expected[0]).max() < max_diff, (batch, height, width)
        assert (outputs["ref_sm"] == expected[5]).mean() >= agreement, (batch, height, width)


@pytest.mark.onnx
def test_tensorrt_variant_keeps_every_topk_constant_and_within_the_limit(weights, model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path / "trt.onnx"
    # limit 64 so that k = 100 takes two stages, as k = 5000 does with TensorRT's 3840
    result = convert(weights / "w.pth", path, onnx_variant="tensorrt", topk_limit=64, knobs=KNOBS,
                     probe_size=PROBE, log=None)
    assert result.metadata["onnx_variant"] == "tensorrt" and result.metadata["topk_limit"] == "64"
    graph = onnx_graph(path)
    constants = constant_values(graph)
    topks = [node for node in graph.graph.node if node.op_type == "TopK"]
    assert len(topks) == 2
    assert sorted(int(constants[node.input[1]].reshape(-1)[0]) for node in topks) == [36, 64]
    ops = {node.op_type for node in graph.graph.node}
    assert "NonZero" not in ops
    from onnx import TensorProto
    assert all(i.data_type != TensorProto.DOUBLE for i in graph.graph.initializer)
    assert not any(node.op_type == "Cast" and any(a.i == TensorProto.DOUBLE for a in node.attribute)
                   for node in graph.graph.node)
    check_sizes(path, model)


@pytest.mark.slow
@pytest.mark.onnx
def test_tensorrt_variant_at_the_hd_preset(weights, model, tmp_path):
    """The HD preset needs k = 5000: two TopKs of 3840 and 1160, the same cells as PyTorch."""
    path = tmp_path / "trt_hd.onnx"
    convert(weights / "w.pth", path, onnx_variant="tensorrt", knobs={"refine_sample_pixels": 80_000},
            probe_size=(288, 320), log=None)
    graph = onnx_graph(path)
    constants = constant_values(graph)
    ks = sorted(int(constants[n.input[1]].reshape(-1)[0]) for n in graph.graph.node if n.op_type == "TopK")
    assert ks == [1160, 3840]
    # Larger image: rounding in the error map may flip a cell at the k-th value; alpha differs there only.
    check_sizes(path, model, [(1, 288, 320)], max_diff=2e-2, agreement=0.999, refine_sample_pixels=80_000)


@pytest.mark.slow
@pytest.mark.onnx
@pytest.mark.parametrize("knobs, variant, has_nonzero", [
    ({}, "nonzero", True),
    ({"refine_mode": "thresholding"}, None, True),
    ({"refine_mode": "full"}, "static", False),
], ids=["sampling-nonzero", "thresholding", "full"])
def test_other_refine_modes_and_variants(weights, model, tmp_path, knobs, variant, has_nonzero):
    path = tmp_path / "m.onnx"
    convert(weights / "w.pth", path, onnx_variant=variant, knobs={**KNOBS, **knobs}, probe_size=PROBE, log=None)
    graph = onnx_graph(path)
    assert ("NonZero" in {n.op_type for n in graph.graph.node}) == has_nonzero
    check_sizes(path, model, **knobs)


@pytest.mark.slow
@pytest.mark.onnx
def test_onnxsim_and_fp16_exports(weights, model, tmp_path):
    simplified = tmp_path / "sim.onnx"
    result = convert(weights / "w.pth", simplified, simplify=True, knobs=KNOBS, probe_size=PROBE, log=None)
    assert result.metadata["simplified"] == "yes"
    check_sizes(simplified, model)
    spec = read(simplified)
    assert any("BatchNorm was folded" in note for note in spec.notes)
    half = tmp_path / "half.onnx"
    result = convert(weights / "w.pth", half, precision="fp16", knobs=KNOBS, probe_size=PROBE, log=None)
    assert result.metadata["precision"] == "fp16"
    outputs = load(half)(*torch_probe(1, *PROBE, seed=3))
    expected = reference(model, 1, *PROBE)
    assert np.abs(outputs["pha"] - expected[0]).mean() < 5e-3


@pytest.mark.slow
def test_pt2_program_serves_every_size_and_batch(weights, model, tmp_path):
    path = tmp_path / "m.pt2"
    convert(weights / "w.pth", path, knobs=KNOBS, probe_size=PROBE, log=None)
    check_sizes(path, model)
    half = tmp_path / "m16.pt2"
    convert(weights / "w.pth", half, precision="fp16", knobs=KNOBS, probe_size=PROBE, log=None)
    assert read(half).precision == "fp16"
