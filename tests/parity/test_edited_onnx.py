"""Export bugs in files the project did not make: the project's ONNX export edited with the `onnx` package,
quantised by `onnxruntime.quantization.quantize_dynamic`, converted to fp16 by the onnxconverter-common
converter ONNX Runtime ships (`tests/parity/onnx_edits.py`). Each must fail, with the diagnosis that
names its cause."""
import pytest

from . import onnx_edits as edits
from .conftest import SHIPPED

pytestmark = pytest.mark.onnx
SIZES = ((128, 128, 2, 5), (96, 128, 1, 21))


def check(path):
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.converters.probes import default_probes
    case, = run_parity(SHIPPED, [CandidateRequest(path)], default_probes(SIZES), {}, repeat=0, threads=1).cases
    assert case.verdict == "FAIL", (case.error, case.violations)
    return case.diagnosis


def batchnorm_keras(model):
    from bgmv2 import converters
    from bgmv2.converters.onnx_format import conv_bn_pairs
    spec = converters.read(SHIPPED)
    edits.batchnorm_epsilon(spec.state, conv_bn_pairs(spec.backbone, spec.kind, spec.refine_kernel_size))(model)


FAST = [
    ("outputs-pha-fgr", edits.swap_outputs("pha", "fgr"), "outputs-swapped", "pha<->fgr"),
    ("outputs-pha_sm-err_sm", edits.swap_outputs("pha_sm", "err_sm"), "outputs-swapped", "pha_sm<->err_sm"),
    ("first-layer-bgr", edits.first_layer_bgr, "channel-order", "backbone.features.0.0"),
    ("imagenet-normalisation", edits.imagenet_normalisation, "value-range", "ImageNet"),
    ("tf-same-padding", edits.tf_same_padding, "convention", "SAME"),
    ("tf1-asymmetric-resize", edits.resize_mode("asymmetric"), "convention", "asymmetric"),
    ("fgr-clamp-removed", edits.fgr_clamp_removed, "convention", "fgr"),
    ("weights-bf16", edits.weights_bf16, "weights-precision", "bf16"),
]
SLOW = [
    ("antialias", edits.resize_mode(antialias=1), "convention", "antialias"),
    ("relu6-as-relu", edits.relu6_as_relu, "convention", "ReLU6"),
    ("residual-dropped", edits.residual_dropped, "stage", "residual connection is missing"),
    ("kernels-flipped", edits.kernels_flipped, "layout", "flipped"),
    ("batchnorm-keras-eps", batchnorm_keras, "convention", "epsilon 1e-3"),
    ("noise-one-layer", edits.noise_on("aspp.convs.1"), "stage", "layer aspp.convs.1.0"),
]


@pytest.mark.parametrize("name, edit, code, words",
                         FAST + [pytest.param(*case, marks=pytest.mark.slow) for case in SLOW],
                         ids=[case[0] for case in FAST + SLOW])
def test_edited_file_fails_with_its_cause(exported, tmp_path, name, edit, code, words):
    found = check(edits.write_edited(exported, tmp_path / f"{name}.onnx", edit))
    assert found["code"] == code and words in found["detail"], found
    assert "coarse outputs are within limits" not in found["detail"]


def test_int8_dynamic_quantisation_is_named(exported, tmp_path):
    found = check(edits.int8_dynamic(exported, tmp_path / "int8.onnx"))
    assert found["code"] == "weights-precision", found
    assert "int8" in found["detail"] and "ConvInteger" in found["detail"], found


def test_fp16_with_fp32_io_is_named(exported, tmp_path):
    found = check(edits.fp16_keep_io(exported, tmp_path / "fp16.onnx"))
    assert found["code"] == "weights-precision" and "weights and compute in fp16" in found["detail"], found


def test_only_batch_item_2_differs(matrix, tmp_path):
    builder, _ = matrix.side("mobilenetv2")
    found = check(edits.write_edited(builder.path("onnx-legacy-opset12"), tmp_path / "batch.onnx",
                                     edits.batch_from_first))
    assert found["code"] == "batch" and "only batch item 2 of 2" in found["detail"], found
