"""Conversions through every edge of the format graph, each validated on a probe by `convert` itself and
checked again here: state dict -> each format -> state dict, and the TensorFlow path state dict ->
Keras -> SavedModel -> ONNX (tf2onnx); metadata; refusals that leave nothing on disk; the command."""
import os

import numpy as np
import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.converters import ConversionError
from bgmv2.converters.api import convert, info, load, read
from bgmv2.converters.meta import project_version, sha256
from bgmv2.pytorch_impl import MattingBase, MattingRefine, save_state_dict, script_model

PROBE = (64, 96)
KNOBS = {"refine_sample_pixels": 16 * 100}  # 100 of the probe's 384 cells: selection matters


def quiet_convert(source, dest, **options):
    return convert(source, dest, probe_size=PROBE, log=None, **options)


@pytest.fixture(scope="module")
def model():
    return realistic_weights(MattingRefine("mobilenetv2", **KNOBS), seed=21)


@pytest.fixture(scope="module")
def work(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("convert")
    save_state_dict(model, folder / "official.pth")
    return folder


def state_of(path):
    return {k: torch.from_numpy(v) for k, v in read(path).state.items()}


def assert_same_state(a, b, exact=True):
    assert list(a) == list(b)
    for key in a:
        if exact:
            assert torch.equal(a[key].float(), b[key].float()), key
        else:
            torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-3, atol=1e-3, msg=key)


def assert_recorded(path, source, fmt, precision="fp32", layout="NCHW"):
    found = info(path)
    assert found["format"] == fmt
    assert found["backbone"] == "mobilenetv2" and found["model"] == "MattingRefine"
    assert found["refine_sample_pixels"] == "1600" and found["refine_mode"] == "sampling"
    assert found["backbone_scale"] == "0.25" and found["precision"] == precision and found["layout"] == layout
    assert found["source_sha256"] == sha256(str(source)) and found["project_version"] == project_version()


def run_probe(path, knobs=None, batch=2):
    src, bgr = torch_probe(batch, *PROBE, seed=7)
    return load(path, knobs=knobs)(src, bgr)


TORCH_EDGES = [
    pytest.param("safetensors", "m.safetensors", {}, id="safetensors"),
    pytest.param("torchscript", "m.pt", {}, id="torchscript"),
    pytest.param("torchscript", "m16.pt", {"precision": "fp16"}, id="torchscript-fp16", marks=pytest.mark.slow),
    pytest.param("pt2", "m.pt2", {}, id="pt2"),
    pytest.param("onnx", "m.onnx", {}, id="onnx", marks=pytest.mark.onnx),
]


@pytest.mark.parametrize("fmt, name, options", TORCH_EDGES)
def test_state_dict_to_format_and_back(work, model, fmt, name, options):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    source, dest = work / "official.pth", work / name
    before = sha256(str(source))
    result = quiet_convert(source, dest, knobs=KNOBS, **options)
    assert result.format == fmt and dest.exists() and all(c.ok for c in result.comparisons)
    precision = options.get("precision", "fp32")
    assert_recorded(dest, source, fmt, precision)
    assert sha256(str(source)) == before, "the source was changed"
    assert [p.name for p in work.iterdir() if p.name.startswith(".partial")] == []

    # The written file, run through its adapter, computes the eager model's alpha and refined cells.
    outputs = run_probe(dest)
    with torch.no_grad():
        reference = model(*torch_probe(2, *PROBE, seed=7))
    assert set(outputs) == {"pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"}
    assert outputs["pha"].shape == (2, 1, *PROBE) and outputs["pha"].dtype == np.float32
    tolerance = 5e-3 if precision == "fp16" else 1e-4
    assert np.abs(outputs["pha"] - reference[0].numpy()).mean() < tolerance
    assert (outputs["ref_sm"] == reference[5].numpy()).mean() > 0.99

    # ... and back to a state dict.
    back = work / f"{name}.back.pth"
    result = quiet_convert(dest, back)
    assert all(c.ok for c in result.comparisons)
    original = model.state_dict()
    if fmt == "onnx":
        assert any("BatchNorm was folded" in note for note in result.notes)
        with torch.no_grad():
            assert np.abs(run_probe(back)["pha"] - reference[0].numpy()).max() < 1e-4
    else:
        assert_same_state(state_of(back), original, exact=precision == "fp32")
    if fmt == "onnx":  # the static sampling export: no NonZero, dynamic batch, height and width
        import onnx
        graph = onnx.load(str(dest))
        assert graph.producer_name == "pytorch" and graph.opset_import[0].version >= 17
        assert "NonZero" not in {node.op_type for node in graph.graph.node}
        dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", "", "height", "width"]
        other = load(dest)(*torch_probe(1, 96, 64, seed=8))
        with torch.no_grad():
            expected = model(*torch_probe(1, 96, 64, seed=8))
        assert np.abs(other["pha"] - expected[0].numpy()).max() < 1e-4


@pytest.mark.tf
def test_tensorflow_path_state_dict_keras_savedmodel_onnx_and_back(work, model):
    pytest.importorskip("tensorflow")
    source = work / "official.pth"
    keras_file, saved, tf_onnx = work / "m.weights.h5", work / "m_savedmodel", work / "m_tf.onnx"
    assert quiet_convert(source, keras_file, knobs=KNOBS).format == "keras"
    assert_recorded(keras_file, source, "keras", layout="NHWC")
    assert quiet_convert(keras_file, saved).format == "savedmodel"
    assert_recorded(saved, keras_file, "savedmodel", layout="NHWC")
    assert os.path.exists(saved / "assets" / "bgmv2.json")
    original = model.state_dict()
    for path in (keras_file, saved):
        assert_same_state(state_of(path), original)
    back = work / "from_savedmodel.pth"
    quiet_convert(saved, back)
    assert_same_state(state_of(back), original)

    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    result = quiet_convert(saved, tf_onnx)
    assert result.metadata["layout"] == "NHWC" and result.metadata["exporter"].startswith("tf2onnx")
    import onnx
    graph = onnx.load(str(tf_onnx))
    assert [i.name for i in graph.graph.input] == ["src", "bgr"]
    assert [o.name for o in graph.graph.output] == ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[3].dim_value == 3  # NHWC
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.graph.output]
    assert dims[0] == ["batch", "height", "width", 1]  # named from the input's dims, not tf2onnx's unk__N
    assert dims[5] == ["batch", "ceil(height/4)", "ceil(width/4)", 1]
    with torch.no_grad():
        reference = model(*torch_probe(2, *PROBE, seed=7))
    assert np.abs(run_probe(tf_onnx)["pha"] - reference[0].numpy()).max() < 1e-4
    with pytest.raises(ConversionError, match="read them from the SavedModel"):
        read(tf_onnx)


@pytest.mark.slow
@pytest.mark.tf
def test_keras_weights_back_to_state_dict_with_knobs_at_load(work, model):
    pytest.importorskip("tensorflow")
    keras_file = work / "k.weights.h5"
    quiet_convert(work / "official.pth", keras_file, knobs=KNOBS)
    back = work / "from_keras.safetensors"
    quiet_convert(keras_file, back)
    assert_same_state(state_of(back), model.state_dict())
    full = load(keras_file, knobs={"refine_mode": "full"})(*torch_probe(1, *PROBE))
    assert full["ref_sm"].min() == 1.0  # every cell refined


def test_official_torchscript_files_to_state_dict(work, model):
    """Files laid out like the official production TorchScript (fp32 and fp16) read back to state dicts."""
    for dtype, name in ((torch.float32, "torchscript_mobilenetv2_fp32.pth"),
                        (torch.float16, "torchscript_mobilenetv2_fp16.pth")):
        eager = MattingRefine("mobilenetv2", **KNOBS)
        eager.load_state_dict(model.state_dict())
        script_model(eager.eval().to(dtype)).save(str(work / name))
        out = work / f"{name}.safetensors"
        result = quiet_convert(work / name, out)
        assert result.source_format == "torchscript" and all(c.ok for c in result.comparisons)
        state = state_of(out)
        expected = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
        assert_same_state(state, expected)
        assert info(out)["refine_sample_pixels"] == "1600"  # the knobs come from the TorchScript attributes


def test_knobs_set_at_conversion_and_after_it(work):
    dest = work / "thresholding.pt"
    quiet_convert(work / "official.pth", dest, knobs={"refine_mode": "thresholding", "refine_threshold": 0.2})
    module = torch.jit.load(str(dest))
    assert module.refine_mode == "thresholding" and module.refine_threshold == 0.2
    assert info(dest)["refine_mode"] == "thresholding"
    full = run_probe(dest, knobs={"refine_mode": "full"}, batch=1)
    assert full["ref_sm"].min() == 1.0


def test_corrupted_target_is_refused_and_nothing_is_left(work):
    source, dest = work / "official.pth", work / "corrupt.safetensors"
    before = sha256(str(source))

    def corrupt(runner):
        original = runner.fn

        def run(src, bgr):
            outputs = list(original(src, bgr))
            outputs[0] = outputs[0] * 0.9
            return outputs
        runner.fn = run
        return runner

    with pytest.raises(ConversionError, match="was not written.*differs by the fp32 rule: pha"):
        quiet_convert(source, dest, validate_with=corrupt)
    assert not dest.exists() and not [p for p in work.iterdir() if p.name.startswith(".partial")]
    assert sha256(str(source)) == before


def test_mismatched_target_is_refused_and_nothing_is_left(work, monkeypatch):
    from bgmv2.converters import torch_formats
    real = torch_formats.write_torchscript

    def wrong_weights(spec, path, metadata, precision):
        spec.state = {k: v * 1.5 if k.startswith("decoder.conv4") else v for k, v in spec.state.items()}
        real(spec, path, metadata, precision)

    monkeypatch.setattr(torch_formats, "write_torchscript", wrong_weights)
    dest = work / "mismatched.pt"
    with pytest.raises(ConversionError, match="does not compute the same alpha"):
        quiet_convert(work / "official.pth", dest)
    assert not dest.exists() and not [p for p in work.iterdir() if p.name.startswith(".partial")]


def test_destination_and_option_errors(work, tmp_path):
    source = work / "official.pth"
    with pytest.raises(ConversionError, match="cannot tell the format.*--to"):
        quiet_convert(source, tmp_path / "model.bin")
    (tmp_path / "exists.safetensors").write_bytes(b"x")
    with pytest.raises(ConversionError, match="exists; remove it or pass --overwrite"):
        quiet_convert(source, tmp_path / "exists.safetensors")
    with pytest.raises(ConversionError, match="is the source itself"):
        quiet_convert(source, source, overwrite=True)
    with pytest.raises(ConversionError, match="fp32 only"):
        quiet_convert(source, tmp_path / "m.weights.h5", precision="fp16")
    with pytest.raises(ConversionError, match="holds mobilenetv2 weights.*--backbone resnet50"):
        quiet_convert(source, tmp_path / "m.safetensors", backbone="resnet50")
    with pytest.raises(ConversionError, match="refine_mode='fast'"):
        quiet_convert(source, tmp_path / "m.safetensors", knobs={"refine_mode": "fast"})
    with pytest.raises(ConversionError, match="no such folder"):
        quiet_convert(source, tmp_path / "missing" / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.safetensors"]


@pytest.mark.slow
def test_base_model_converts_and_refuses_knobs(tmp_path):
    base = realistic_weights(MattingBase("mobilenetv2"), seed=4)
    save_state_dict(base, tmp_path / "base.pth")
    result = quiet_convert(tmp_path / "base.pth", tmp_path / "base.pt")
    assert result.metadata["model"] == "MattingBase"
    assert set(run_probe(tmp_path / "base.pt", batch=1)) == {"pha", "fgr", "err", "hid"}
    with pytest.raises(ConversionError, match="MattingBase.*do not apply"):
        quiet_convert(tmp_path / "base.pth", tmp_path / "x.pt", knobs={"refine_mode": "full"})


def test_command_converts_shows_info_and_reports_errors(work, capsys):
    from bgmv2.scripts.cli import main
    dest = work / "cli.safetensors"
    assert main(["convert", str(work / "official.pth"), str(dest), "--refine-sample-pixels", "1600",
                 "--probe", "64x96"]) == 0
    out = capsys.readouterr().out
    assert "check:   safetensors vs the weights in PyTorch: same alpha by the fp32 rule" in out and "-> ok" in out
    assert "check:   source pth vs its weights in PyTorch" in out and dest.exists()
    assert main(["convert", "--info", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "refine_sample_pixels:" in out and "1600" in out and "source_sha256:" in out
    foreign = work / "notes.txt"
    foreign.write_text("hello")
    assert main(["convert", str(foreign), str(work / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unrecognised file" in err and "Traceback" not in err


def test_help_says_which_formats_take_nchw_and_nhwc(capsys):
    from bgmv2.scripts.cli import main
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = capsys.readouterr().out
    assert "NCHW" in text and "NHWC" in text and "savedmodel" in text and "--onnx-variant" in text


def test_destinations_that_would_touch_the_source_are_refused(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    source = folder / "a.pth"
    source.write_bytes(b"weights")  # never read: the destination is refused first
    saved = tmp_path / "m_savedmodel"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"graph")
    cases = [(source, source, None, "is the source itself"),
             (source, folder, None, "holds the source"),
             (source, tmp_path, "onnx", "holds the source"),
             (saved, saved / "x.onnx", None, "inside the source folder")]
    for src, dest, to, message in cases:
        with pytest.raises(ConversionError, match=message):
            convert(src, dest, to, overwrite=True, log=None)
    other = tmp_path / "out"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="not a SavedModel"):
        convert(source, other, "onnx", overwrite=True, log=None)
    assert source.read_bytes() == b"weights" and (saved / "saved_model.pb").exists() and (other / "keep.txt").exists()
