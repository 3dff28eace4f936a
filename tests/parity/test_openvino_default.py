"""`openvino` candidates are also run the way plain users run them (the CPU plugin's default inference
precision, bf16 on CPUs with AVX-512 BF16 or AMX): a second row with its drift and the one line that
pins f32, which never decides the verdict."""
import json
import os

import pytest

from .conftest import SHIPPED

pytestmark = pytest.mark.onnx
SMALL = ["--size", "128x96", "--batch", "2", "--repeat", "0"]


def bf16_cpu() -> bool:
    import openvino as ov
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_default_precision_is_the_plugins_choice(tmp_path):
    pytest.importorskip("openvino")
    import numpy as np
    from bgmv2 import converters
    import onnx
    from onnx import TensorProto, helper
    from test_onnx_files import tiny_model  # the tiny model of the ONNX file tests, given MattingBase's outputs
    model = tiny_model()
    model.graph.node.extend([helper.make_node("Identity", ["pha"], ["err"]), helper.make_node("Identity", ["src"],
                                                                                              ["hid"])])
    model.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("err", "hid")])
    path = str(tmp_path / "tiny.onnx")
    onnx.save(model, path)
    pinned = converters.load(path, runtime="openvino")
    plain = converters.load(path, runtime="openvino", precision="default")
    assert pinned.precision == "fp32" and "plugin default" not in pinned.engine
    assert plain.precision == ("bf16" if bf16_cpu() else "fp32") and "plugin default" in plain.engine
    x = np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32)
    assert set(plain(x, x)) == {"pha", "fgr", "err", "hid"}
    with pytest.raises(converters.ConversionError, match="choose one of fp32, bf16, fp16, or default"):
        converters.load(path, runtime="openvino", precision="int4")


def test_openvino_candidates_get_a_plain_row_with_the_drift_and_the_fix(matrix, tmp_path, capsys):
    pytest.importorskip("openvino")
    from bgmv2.scripts.cli import main
    builder, _ = matrix.side("mobilenetv2")
    path = builder.path("onnx-static")
    out = str(tmp_path / "report")
    code = main(["parity", "--reference", SHIPPED, "--candidate", "openvino:" + path, *SMALL, "--out", out])
    printed = capsys.readouterr().out
    with open(os.path.join(out, "parity.json")) as f:
        pinned, plain = json.load(f)["cases"]
    assert code == 0 and pinned["ok"] and not pinned["advisory"] and plain["advisory"], printed
    assert plain["label"].endswith("[plugin default]")
    note = " ".join(plain["notes"])
    if bf16_cpu():
        assert plain["precision"] == "bf16" and not plain["ok"] and "DRIFT" in printed
        assert 'core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})' in note
        assert "of 8-bit alpha values differ" in note and "1/1 candidates within tolerance" in printed
    else:
        assert plain["ok"] and "plain users get the same" in note
