"""Detection by content: each format is named whatever the file is called; foreign files are rejected
with a message that says what they are. Also builds the tiny sample files the fuzz test mutates."""
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bgmv2.converters import ConversionError
from bgmv2.converters.detection import detect

MARKER_ENV = "BGMV2_PICKLE_MARKER"


class Payload:
    """A pickle that would create a file if it were ever unpickled with arbitrary globals."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_state() -> dict:
    """A few tensors named like a MattingRefine state dict (detected, then refused as partial)."""
    generator = torch.Generator().manual_seed(0)
    return {"backbone.features.0.0.weight": torch.randn(4, 6, 3, 3, generator=generator),
            "backbone.features.0.1.running_var": torch.rand(4, generator=generator),
            "refiner.conv1.weight": torch.randn(2, 42, 3, 3, generator=generator)}


class TinyModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        return self.conv(src - bgr).clamp(0, 1), src


def tiny_onnx_bytes() -> bytes:
    """A two-input ONNX graph with the model's input and output names (loads in ONNX Runtime)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    image = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Sub", ["src", "bgr"], ["d"]), helper.make_node("Abs", ["d"], ["pha"])], "tiny",
        [helper.make_tensor_value_info("src", TensorProto.FLOAT, image),
         helper.make_tensor_value_info("bgr", TensorProto.FLOAT, image)],
        [helper.make_tensor_value_info("pha", TensorProto.FLOAT, image)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_files(folder: Path) -> dict:
    """format or kind -> path of a small file of that kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["pth"] = folder / "weights.bin"  # names deliberately say nothing
    torch.save(tiny_state(), files["pth"])
    from safetensors.torch import save_file
    files["safetensors"] = folder / "weights.data"
    save_file(tiny_state(), str(files["safetensors"]), metadata={"bgmv2.backbone": "mobilenetv2"})
    files["torchscript"] = folder / "scripted.pth"
    torch.jit.script(TinyModule().eval()).save(str(files["torchscript"]))
    files["pt2"] = folder / "program.pt2"
    x = torch.rand(1, 3, 8, 8)
    torch.export.save(torch.export.export(TinyModule().eval(), (x, x + 1)), str(files["pt2"]))
    return files


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return tiny_files(tmp_path_factory.mktemp("samples"))


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "torchscript", "pt2"])
def test_detects_torch_side_formats_by_content(samples, fmt):
    assert detect(samples[fmt]) == fmt


def test_detects_legacy_pickle_state_dict(tmp_path):
    path = tmp_path / "old.tar"
    torch.save(tiny_state(), path, _use_new_zipfile_serialization=False)
    assert detect(path) == "pth"


@pytest.mark.onnx
def test_detects_onnx_by_content(tmp_path):
    path = tmp_path / "model.pth"  # a misleading name
    path.write_bytes(tiny_onnx_bytes())
    assert detect(path) == "onnx"


def test_detects_keras_weights_and_savedmodel_folders(tmp_path):
    h5py = pytest.importorskip("h5py")
    weights = tmp_path / "model.bin"
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/conv/vars/0", data=np.zeros((3, 3), np.float32))
    assert detect(weights) == "keras"
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    assert detect(folder) == "savedmodel"


@pytest.mark.parametrize("name, content, says", [
    ("empty.pth", b"", "empty file"),
    ("notes.onnx", b"just some text, not a model\n", "unrecognised file"),
    ("photo.pth", b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    ("photo.pth", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64), "a JPEG image"),
    ("model.onnx", b"\n<!DOCTYPE html><html><body>404 Not Found</body></html>", "an HTML page"),
    ("blob.pth", bytes(range(200, 256)) * 2, "an unrecognised file"),
])
def test_rejects_foreign_files_saying_what_they_are(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConversionError, match=says):
        detect(path)


def test_tflite_is_a_format_now_and_a_broken_one_fails_to_load_with_a_message(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # the identifier, then nothing usable
    assert detect(path) == "tflite"
    with pytest.raises(ConversionError, match="model.bin"):
        from bgmv2 import converters
        converters.load(path)


def test_rejects_other_zips_truncated_zips_folders_and_missing_paths(tmp_path, samples):
    other = tmp_path / "archive.pth"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ConversionError, match="zip archive of unknown content"):
        detect(other)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(samples["pth"].read_bytes()[:200])
    with pytest.raises(ConversionError, match="cut short"):
        detect(cut)
    with pytest.raises(ConversionError, match="without saved_model.pb"):
        detect(tmp_path)
    with pytest.raises(ConversionError, match="no such file"):
        detect(tmp_path / "missing.onnx")


def test_keras_archive_is_named_and_pointed_to_weights(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ConversionError, match=r"\.keras archive.*\.weights\.h5"):
        detect(path)


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    from bgmv2.converters import read
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil.pth"
    torch.save({"weight": Payload(str(marker))}, zipped)
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps({"weight": Payload(str(marker))}, protocol=2))
    for path in (zipped, legacy):
        assert detect(path) == "pth"
        with pytest.raises(ConversionError, match="not only tensors|Python object"):
            read(path)
    assert not marker.exists()


def test_state_dict_errors_name_the_problem(samples, tmp_path):
    from bgmv2.converters import read
    with pytest.raises(ConversionError, match="does not match MattingRefine.*missing"):
        read(samples["pth"])
    with pytest.raises(ConversionError, match="does not match"):
        read(samples["safetensors"])
    buffer = io.BytesIO()
    torch.save({"state_dict": {"model.layer.weight": torch.zeros(1)}}, buffer)
    path = tmp_path / "wrapped.pth"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ConversionError, match="not a Background Matting V2 checkpoint"):
        read(path)


def test_converters_detect_stays_the_function(tmp_path):
    """`converters.detect(path)` as the docs show it: twice, and after load / info / read imported the
    `converters.detect` submodule (it used to shadow the function: 'module' object is not callable)."""
    import subprocess
    import sys
    shipped = Path(__file__).resolve().parents[1] / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
    code = (
        "from bgmv2 import converters; import sys\n"
        f"p = {str(shipped)!r}\n"
        "print(converters.detect(p), converters.detect(p))\n"
        "converters.info(p); print(converters.detect(p))\n"
        "converters.load; converters.read; print(converters.detect(p))\n"
        "from bgmv2.converters.detection import content_kind; print(callable(converters.detect), content_kind(p))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["safetensors safetensors", "safetensors", "safetensors", "True safetensors"]


def test_truncated_onnx_and_hdf5_are_called_truncated(tmp_path):
    from bgmv2 import pytorch_impl
    h5py = pytest.importorskip("h5py")
    onnx_bytes = tiny_onnx_bytes()
    weights = tmp_path / "full.weights.h5"
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/conv/vars/0", data=np.zeros((100, 100), np.float32))
    h5_bytes = weights.read_bytes()
    for name, data in [("cut.onnx", onnx_bytes[: len(onnx_bytes) // 2]), ("cut.weights.h5", h5_bytes[: len(h5_bytes) // 2])]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ConversionError, match=r"is a truncated (ONNX model|HDF5 file).*cut short"):
            detect(path)
        with pytest.raises(pytorch_impl.CheckpointError, match=r"is a truncated (ONNX model|HDF5 file).*cut short"):
            pytorch_impl.load_model(path)
    (tmp_path / "whole.onnx").write_bytes(onnx_bytes)
    assert detect(tmp_path / "whole.onnx") == "onnx" and detect(weights) == "keras"


def test_info_reports_the_shipped_header_and_refuses_unsafe_pickles(tmp_path, capsys):
    from bgmv2.converters import info
    from bgmv2.scripts.cli import main
    shipped = Path(__file__).resolve().parents[1] / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
    found = info(shipped)
    assert found["precision"] == "fp16" and found["backbone"] == "mobilenetv2" and found["kind"] == "refine"
    assert "none" not in found["metadata"]
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": Payload(str(marker))}, evil)
    assert main(["convert", "--info", str(evil)]) == 1
    out, err = capsys.readouterr()
    assert "holds a Python object (posix.system), not only tensors, so it was refused and not read" in err
    assert "metadata" not in out and "Traceback" not in err and not marker.exists()
