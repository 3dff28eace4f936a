"""Files laid out as upstream's own export scripts make them: what they contain, and why the legacy
ONNX export uses upstream's cell selection (see `parity_tests/upstream.py`)."""
import pytest

from .conftest import SHIPPED


@pytest.mark.onnx
@pytest.mark.parametrize("label, opset, scatters", [("onnx-legacy-opset12", 12, 2),
                                                    ("onnx-legacy-opset11-thresholding", 11, 1)])
def test_legacy_onnx_files(label, opset, scatters, matrix):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    builder, _ = matrix.side("mobilenetv2")
    model = onnx.load(builder.path(label))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert not [p for p in model.metadata_props if p.key.startswith("bgmv2.")]  # as upstream's: no metadata
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("ScatterElements") == scatters  # scatter_element replacement (and the top-k scatter)
    assert "CumSum" not in ops and "ScatterND" not in ops
    assert ops.count("RoiAlign") == 5  # every patch crop: coarse features, src, bgr at half and full size
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]


def test_production_torchscript_records_knobs_in_attributes(matrix):
    from bgmv2.parity_tests.candidates import recorded_knobs
    builder, _ = matrix.side("mobilenetv2")
    path = builder.path("torchscript-upstream")
    knobs, where = recorded_knobs(path, "torchscript", {})
    assert where == "TorchScript attributes"
    assert knobs["refine_mode"] == "sampling" and knobs["refine_sample_pixels"] == matrix.knobs["refine_sample_pixels"]


@pytest.mark.onnx
def test_our_selection_exports_to_legacy_opsets_too(tmp_path):
    """Our tie-break (a second top-k on float32 keys; no cumsum, no float64) exports to opset 12 as it
    is: the legacy ONNX file with our own selection loads in ONNX Runtime and refines the same cells as
    the one with upstream's selection swapped in. (The older cumsum tie-break became CumSum(bool),
    which ONNX does not define.)"""
    pytest.importorskip("onnxruntime")
    from bgmv2 import converters
    from bgmv2 import pytorch_impl
    from bgmv2.parity_tests.matrix import trace_example
    from bgmv2.parity_tests.upstream import write_legacy_onnx
    from bgmv2.converters.probes import synthetic_probe
    model = pytorch_impl.load_model(SHIPPED, refine_sample_pixels=4272)
    ours, upstreams = str(tmp_path / "ours.onnx"), str(tmp_path / "upstream.onnx")
    write_legacy_onnx(model, ours, trace_example({}), opset=12, upstream_selection=False)
    write_legacy_onnx(model, upstreams, trace_example({}), opset=12, upstream_selection=True)
    probe = synthetic_probe(128, 128, 1, seed=3)
    a = converters.load(ours)(probe.src, probe.bgr)
    b = converters.load(upstreams)(probe.src, probe.bgr)
    assert (a["ref_sm"] == b["ref_sm"]).all()
    assert abs(a["pha"] - b["pha"]).max() < 1e-5