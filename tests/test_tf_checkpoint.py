"""tensorflow_impl.load_model: zoo names, safetensors (numpy only) and .pth files give the PyTorch alpha."""
import numpy as np
import pytest
import torch

tf = pytest.importorskip("tensorflow")
from bgmv2 import tensorflow_impl  # noqa: E402
from bgmv2.pytorch_impl import load_model as load_torch  # noqa: E402
from bgmv2.pytorch_impl import save_state_dict  # noqa: E402
from conftest import torch_probe  # noqa: E402

pytestmark = pytest.mark.tf


def test_zoo_name_loads_the_shipped_model_and_matches_pytorch():
    keras_model = tensorflow_impl.load_model("bgmv2-mobilenetv2-synthetic")
    torch_model = load_torch("bgmv2-mobilenetv2-synthetic")
    src, bgr = torch_probe(1, 64, 96, seed=4)
    with torch.no_grad():
        expected = torch_model(src, bgr)[0].numpy()
    pha = np.asarray(keras_model(src.permute(0, 2, 3, 1).numpy(), bgr.permute(0, 2, 3, 1).numpy())[0])
    assert np.abs(pha.transpose(0, 3, 1, 2) - expected).max() < 1e-4


def test_pth_and_kind_base(tmp_path):
    torch_model = load_torch("bgmv2-mobilenetv2-synthetic")
    path = tmp_path / "model.pth"
    save_state_dict(torch_model, path)
    model = tensorflow_impl.load_model(path, kind="base")
    assert type(model).__name__ == "MattingBase"
    with pytest.raises(tensorflow_impl.CheckpointError, match="holds mobilenetv2 weights"):
        tensorflow_impl.load_model(path, backbone="resnet50")
    with pytest.raises(tensorflow_impl.CheckpointError, match="no such file"):
        tensorflow_impl.load_model(tmp_path / "absent.safetensors")
