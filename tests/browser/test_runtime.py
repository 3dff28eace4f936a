"""The `browser` runtime: `converters.load(path, runtime="browser")` runs an ONNX file in onnxruntime-web
in headless Chromium and says how (`.engine`); `bgmv2 parity --candidate browser:FILE` passes a faithful
export and fails one with a planted bug; what the browser cannot run is an ERROR row with its reason."""
import json

import numpy as np
import pytest

from .conftest import SAMPLE, SHIPPED

pytestmark = pytest.mark.browser


def test_runner_gives_onnx_runtime_outputs_and_says_how_it_ran(browser, shipped_onnx, tmp_path):
    from bgmv2 import converters
    from bgmv2.converters.probes import synthetic_probe
    named = tmp_path / "my model #1.onnx"  # a name that needs quoting in a URL
    named.symlink_to(shipped_onnx)
    runner = converters.load(named, runtime="browser", threads=1)
    try:
        assert (runner.device, runner.runtime, runner.precision, runner.format) == ("wasm", "browser", "fp32", "onnx")
        assert runner.engine.startswith("Chromium ") and ", onnxruntime-web 1.30.0, wasm SIMD, 1 thread" in runner.engine
        probe = synthetic_probe(92, 128, 2, seed=3)
        src, bgr = probe.src[..., :90, :125], probe.bgr[..., :90, :125]  # not multiples of 4: the file pads and crops
        got = runner(src, bgr)
        expected = converters.load(shipped_onnx)(src, bgr)
        assert list(got) == ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
        for name, value in expected.items():
            assert got[name].shape == value.shape and got[name].dtype == np.float32
            assert np.abs(got[name] - value).max() < 1e-4, name
        assert runner.model.last_ms > 0 and runner.model.problems() == []
    finally:
        runner.model.close()


def planted(source, path):
    """A copy of `source` with one bug: the alpha head's bias (decoder.conv4.bias) raised by 0.01."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(source))
    for tensor in model.graph.initializer:
        if tensor.name.endswith("decoder.conv4.bias"):
            value = numpy_helper.to_array(tensor).copy()
            value[0] += 0.01
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
            break
    else:
        raise AssertionError("no decoder.conv4.bias initializer")
    onnx.save(model, str(path))
    return path


def unrunnable(path):
    """An ONNX model with the contract's inputs and outputs whose one node no runtime implements."""
    import onnx
    from onnx import TensorProto, helper
    image = lambda name, c: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", c, "h", "w"])
    outputs = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
    node = helper.make_node("Bgmv2Planted", ["src", "bgr"], outputs, domain="bgmv2.planted")
    graph = helper.make_graph([node], "planted", [image("src", 3), image("bgr", 3)],
                              [image(n, 3 if n.startswith("fgr") else 1) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("bgmv2.planted", 1)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_parity_passes_the_export_and_fails_a_planted_bug_in_the_browser(browser, shipped_onnx, tmp_path, capsys):
    from bgmv2.scripts.cli import main
    broken = planted(shipped_onnx, tmp_path / "broken.onnx")
    strange = unrunnable(tmp_path / "unrunnable.onnx")
    out = tmp_path / "report"
    code = main(["parity", "--reference", str(SHIPPED), "--candidate", f"browser:{shipped_onnx}",
                 "--candidate", f"browser:{broken}", "--candidate", f"browser:{strange}",
                 "--src", str(SAMPLE / "src.jpg"), "--bgr", str(SAMPLE / "bgr.jpg"), "--max-side", "256",
                 "--repeat", "0", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1, printed
    good, bad, error = json.loads((out / "parity.json").read_text())["cases"]
    assert good["ok"] and good["device"] == "wasm" and good["tolerance"] == "fp32", printed
    assert good["runtime"].startswith("Chromium ") and "onnxruntime-web 1.30.0, wasm SIMD, " in good["runtime"]
    assert good["metrics"]["outputs"]["pha"]["max_abs"] < 1e-4
    assert not bad["ok"] and any(v.startswith("pha") for v in bad["violations"]), bad["violations"]
    assert error["error"] and "the browser cannot load it" in error["error"] and "Bgmv2Planted" in error["error"]
    name = shipped_onnx.name
    assert f"ran   {name} [browser]: Chromium " in printed and "FAIL  broken.onnx [browser]: pha" in printed
    assert "ERROR unrunnable.onnx [browser]:" in printed and "1/3 candidates within tolerance" in printed
    assert f"| {name} [browser] | onnx | Chromium " in (out / "parity.md").read_text()
