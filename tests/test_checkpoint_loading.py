"""load_model: official-layout files load strictly; every wrong file gets a message naming problem and fix."""
import pickle
import zipfile

import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.pytorch_impl import (CheckpointError, MattingBase, MattingRefine, describe, load_model, load_torchscript,
                          save_state_dict, script_model)


@pytest.fixture(scope="module")
def refine_model():
    return realistic_weights(MattingRefine("mobilenetv2"), seed=7)


@pytest.fixture(scope="module")
def refine_pth(tmp_path_factory, refine_model):
    path = tmp_path_factory.mktemp("ckpt") / "pytorch_mobilenetv2.pth"
    torch.save(refine_model.state_dict(), path)  # exactly how the official files were written
    return path


def outputs_equal(a, b, src, bgr):
    with torch.no_grad():
        return all(torch.equal(x, y) for x, y in zip(a(src, bgr), b(src, bgr)))


def test_official_layout_pth_loads_strictly_and_computes_the_same(refine_model, refine_pth):
    model = load_model(refine_pth)
    assert isinstance(model, MattingRefine) and not model.training
    assert model.backbone_name == "mobilenetv2" and model.refiner.kernel_size == 3
    src, bgr = torch_probe(1, 64, 96)
    assert outputs_equal(model, refine_model, src, bgr)


def test_safetensors_round_trip(tmp_path, refine_model):
    path = tmp_path / "model.safetensors"
    save_state_dict(refine_model, path, metadata={"backbone": "mobilenetv2"})
    model = load_model(path)
    src, bgr = torch_probe(1, 64, 96)
    assert outputs_equal(model, refine_model, src, bgr)
    assert not list(tmp_path.glob("*.partial-*"))


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
@pytest.mark.parametrize("kind", ["base", "refine"])
def test_backbone_and_kind_are_read_from_keys(backbone, kind):
    model = (MattingBase if kind == "base" else MattingRefine)(backbone)
    info = describe(model.state_dict())
    assert (info.kind, info.backbone) == (kind, backbone)
    loaded = load_model(model.state_dict())
    assert type(loaded) is type(model)


def test_kernel_size_1_is_read_from_the_file_and_overrides_apply():
    state = MattingRefine("mobilenetv2", refine_kernel_size=1).state_dict()
    model = load_model(state, refine_mode="thresholding", refine_threshold=0.3, backbone_scale=0.125)
    assert model.refiner.kernel_size == 1 and model.refiner.mode == "thresholding"
    assert model.refiner.threshold == 0.3 and model.backbone_scale == 0.125
    with pytest.raises(CheckpointError, match="kernel size 1, but refine_kernel_size=3"):
        load_model(state, refine_kernel_size=3)


def test_base_network_from_a_refine_checkpoint(refine_pth):
    model = load_model(refine_pth, kind="base")
    assert type(model) is MattingBase


def test_refine_from_a_base_checkpoint_is_refused():
    with pytest.raises(CheckpointError, match="MattingBase checkpoint \\(no refiner.\\* weights\\).*kind='base'"):
        load_model(MattingBase("mobilenetv2").state_dict(), kind="refine")


def test_dtype_and_device_options(refine_pth):
    model = load_model(refine_pth, dtype=torch.bfloat16, device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_other_backbone_requested(refine_pth):
    with pytest.raises(CheckpointError, match="holds mobilenetv2 weights, but backbone='resnet50' was asked for"):
        load_model(refine_pth, backbone="resnet50")


def test_missing_and_unexpected_keys_are_listed(refine_model):
    state = dict(refine_model.state_dict())
    del state["decoder.conv4.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        load_model(state)
    message = str(error.value)
    assert "1 missing: decoder.conv4.bias" in message and "1 unexpected: decoder.extra.weight" in message


def test_wrong_shapes_are_listed(refine_model):
    state = dict(refine_model.state_dict())
    state["aspp.project.0.weight"] = torch.zeros(256, 1024, 1, 1)
    with pytest.raises(CheckpointError, match=r"of the wrong shape: aspp.project.0.weight \(256, 1024, 1, 1\) "
                                              r"\(model: \(256, 1280, 1, 1\)\)"):
        load_model(state)


def test_wrapped_and_prefixed_state_dicts_load(tmp_path, refine_model):
    path = tmp_path / "training.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in refine_model.state_dict().items()}}, path)
    assert isinstance(load_model(path), MattingRefine)


def test_torchscript_given_where_a_state_dict_is_expected(tmp_path, refine_model):
    path = tmp_path / "production.pth"
    script_model(refine_model).save(str(path))
    with pytest.raises(CheckpointError, match="is a TorchScript archive .* not a state dict.*load_torchscript"):
        load_model(path)
    scripted = load_torchscript(path)  # the fix the message names works
    src, bgr = torch_probe(1, 64, 96)
    assert outputs_equal(scripted, refine_model, src, bgr)
    assert isinstance(load_model(scripted.state_dict()), MattingRefine)  # and so does the other fix


def test_state_dict_given_where_torchscript_is_expected(refine_pth):
    with pytest.raises(CheckpointError, match="is a PyTorch state dict \\(zip\\) \\(weights only\\), not a TorchScript "
                                              "archive. Load it with pytorch_impl.load_model"):
        load_torchscript(refine_pth)


def test_truncated_files(tmp_path, refine_pth):
    data = refine_pth.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*Fetch the file again"):
        load_model(cut)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is an empty file: the download or copy was probably cut short"):
        load_model(empty)


def test_truncated_safetensors(tmp_path, refine_model):
    path = tmp_path / "model.safetensors"
    save_state_dict(refine_model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="cannot be read.*truncated or corrupt"):
        load_model(path)


@pytest.mark.parametrize("content, kind", [
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "HDF5 file"),
    (b"\x08\x08\x12\x07pytorch" + bytes(100), "ONNX model"),
    (b"hello, this is text" * 10, "unrecognised file"),
])
def test_foreign_files_are_named(tmp_path, content, kind):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"is an? {kind}.*not a PyTorch checkpoint"):
        load_model(path)


def test_folder_and_missing_file(tmp_path):
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="TensorFlow SavedModel folder, not a PyTorch checkpoint"):
        load_model(tmp_path / "saved")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.pth")


def test_zip_of_something_else(tmp_path):
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="zip archive of unknown content"):
        load_model(path)


class NotATensor:
    pass


def test_pickle_with_arbitrary_objects_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"backbone.features.0.0.weight": torch.zeros(1), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="holds a Python object \\(test_checkpoint_loading.NotATensor\\), not only tensors.*re-save"):
        load_model(path)


def test_full_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(MattingBase("mobilenetv2"), path)
    with pytest.raises(CheckpointError, match="not only tensors"):
        load_model(path)


def test_non_tensor_entries_and_non_matting_dicts(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"backbone.features.0.0.weight": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="these entries are not tensors: epoch"):
        load_model(path)
    with pytest.raises(CheckpointError, match="not a Background Matting V2 checkpoint.*fc.weight"):
        load_model({"fc.weight": torch.zeros(2, 2)})


def test_options_for_the_wrong_model():
    with pytest.raises(CheckpointError, match="refine_mode only apply to MattingRefine"):
        load_model(MattingBase("mobilenetv2").state_dict(), refine_mode="full")
    with pytest.raises(CheckpointError, match="unknown model option"):
        load_model(MattingRefine("mobilenetv2").state_dict(), refine_speed=3)


def test_pickle_module_is_not_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))
    path = tmp_path / "boom.pth"
    with open(path, "wb") as f:
        pickle.dump(Boom(), f, protocol=2)
    with pytest.raises(CheckpointError):
        load_model(path)


def test_weights_with_nan_or_inf_are_refused_naming_the_tensors(refine_model, tmp_path):
    from bgmv2.converters import ConversionError, read
    state = {k: v.clone() for k, v in refine_model.state_dict().items()}
    state["decoder.conv4.weight"][0, 0, 0, 0] = float("nan")
    state["refiner.conv4.bias"][0] = float("inf")
    with pytest.raises(CheckpointError, match=r"the state dict has NaN or infinite values in 2 tensor\(s\): "
                                              r"decoder.conv4.weight, refiner.conv4.bias\. The weights are damaged"):
        load_model(state)
    path = tmp_path / "nan.safetensors"
    save_state_dict(state, path)
    with pytest.raises(CheckpointError, match=f"{path} has NaN or infinite values in 2 tensor"):
        load_model(path)
    with pytest.raises(ConversionError, match=r"has NaN or infinite values in 2 tensor\(s\): decoder.conv4.weight"):
        read(path)
