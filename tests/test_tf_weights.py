"""Weights both ways: PyTorch -> Keras -> PyTorch bit-exact in the official layout, every mismatch
reported, Keras-native files, and the package's import rules."""
import ast
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]

from bgmv2 import pytorch_impl  # noqa: E402
from bgmv2 import tensorflow_impl  # noqa: E402
from probes import probe_pair  # noqa: E402
from bgmv2.tensorflow_impl import StateDictError, load_torch_state_dict, torch_state_dict  # noqa: E402

pytestmark = pytest.mark.tf

KINDS = {"base": "MattingBase", "refine": "MattingRefine"}


def numpy_state_dict(model):
    return {key: value.numpy() for key, value in model.state_dict().items()}


def random_state_dict(model, seed: int):
    """Every tensor of `model`'s state dict replaced by seeded random values of its shape and dtype (He-scaled
    convolutions, positive variances, distinct counters): each value distinct, activations in range."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(rng.integers(1, 10**6), np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) == 4:
            state[key] = (rng.standard_normal(shape) * (2 / np.prod(shape[1:])) ** 0.5).astype(np.float32)
        else:
            state[key] = (0.1 * rng.standard_normal(shape) + (key.endswith(".weight"))).astype(np.float32)
    return state


def assert_equal_state_dicts(expected, got):
    assert list(got) == list(expected)  # same keys, same order
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert np.array_equal(got[key], value), key


@pytest.mark.parametrize("kind", ["base", "refine"])
@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
def test_round_trip_is_exact_and_official(shared_reference, backbone, kind):
    torch_model = getattr(pytorch_impl, KINDS[kind])(backbone)
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in random_state_dict(torch_model, 2).items()})
    expected = numpy_state_dict(torch_model)
    keras_model = getattr(tensorflow_impl, KINDS[kind])(backbone)
    report = load_torch_state_dict(keras_model, torch_model.state_dict())  # torch tensors, via np.asarray
    assert not report
    got = torch_state_dict(keras_model)
    assert_equal_state_dicts(expected, got)
    back = getattr(pytorch_impl, KINDS[kind])(backbone)
    back.load_state_dict({key: torch.from_numpy(value) for key, value in got.items()}, strict=True)
    assert_equal_state_dicts(expected, numpy_state_dict(back))
    rows = [tuple(line.split("\t")) for line in
            (shared_reference / f"official_keys_{kind}_{backbone}.tsv").read_text().splitlines() if line.strip()]
    ours = [(key, "x".join(map(str, value.shape)) or "scalar", str(value.dtype)) for key, value in got.items()]
    assert ours == rows


@pytest.fixture(scope="module")
def models():
    """Keras models shared by the tests below (each test loads the weights it needs first)."""
    return {"refine": tensorflow_impl.MattingRefine("mobilenetv2"), "base": tensorflow_impl.MattingBase("mobilenetv2"),
            "refine_k1": tensorflow_impl.MattingRefine("mobilenetv2", refine_kernel_size=1)}


def test_kernel_size_1_maps_too(models):
    state = random_state_dict(pytorch_impl.MattingRefine("mobilenetv2", refine_kernel_size=1), 3)
    load_torch_state_dict(models["refine_k1"], state)
    assert_equal_state_dicts(state, torch_state_dict(models["refine_k1"]))
    assert tuple(models["refine_k1"].refiner.conv1.kernel.shape) == (1, 1, 42, 24)


@pytest.fixture(scope="module")
def state():
    """A mobilenetv2 MattingRefine state dict (numpy)."""
    return random_state_dict(pytorch_impl.MattingRefine("mobilenetv2"), 4)


def test_missing_unexpected_and_mismatched_entries_are_listed_and_nothing_loads(models, state):
    model = models["refine"]
    before = torch_state_dict(model)
    broken = dict(state)
    del broken["decoder.conv4.bias"]
    broken["decoder.conv5.weight"] = np.zeros((1,), np.float32)
    broken["aspp.project.0.weight"] = np.zeros((256, 1024, 1, 1), np.float32)
    with pytest.raises(StateDictError) as caught:
        load_torch_state_dict(model, broken)
    message = str(caught.value)
    assert "1 missing: decoder.conv4.bias" in message
    assert "1 unexpected: decoder.conv5.weight" in message
    assert "aspp.project.0.weight (model (256, 1280, 1, 1), given (256, 1024, 1, 1))" in message
    report = caught.value.report
    assert report.missing == ["decoder.conv4.bias"] and report.unexpected == ["decoder.conv5.weight"]
    assert [key for key, _, _ in report.mismatched] == ["aspp.project.0.weight"]
    assert_equal_state_dicts(before, torch_state_dict(model))  # strict: nothing was assigned


def test_non_strict_loads_what_fits_and_reports_the_rest(models, state):
    model = models["refine"]
    partial = {key: value for key, value in state.items() if not key.startswith("refiner.")}
    report = load_torch_state_dict(model, partial, strict=False)
    assert report and len(report.missing) == 20 and not report.unexpected and not report.mismatched
    got = torch_state_dict(model)
    assert all(np.array_equal(got[key], value) for key, value in partial.items())


def test_hints_for_the_usual_mix_ups(models, state):
    with pytest.raises(StateDictError, match="load it into MattingRefine"):
        load_torch_state_dict(models["base"], state)
    base_only = {key: value for key, value in state.items() if not key.startswith("refiner.")}
    with pytest.raises(StateDictError, match="load it into MattingBase"):
        load_torch_state_dict(models["refine"], base_only)
    with pytest.raises(StateDictError, match="other refine_kernel_size"):
        load_torch_state_dict(models["refine_k1"], state)
    resnet = random_state_dict(pytorch_impl.MattingBase("resnet50"), 5)
    with pytest.raises(StateDictError, match="checkpoint's backbone"):
        load_torch_state_dict(models["base"], resnet)


# Keras' own HDF5 writer converts tensors with np.array(); TensorFlow's tensors warn about it under numpy 2.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_weights_h5_and_keras_files_load_back_equal(models, state, tmp_path):
    model = models["refine"]
    model.refiner.mode, model.refiner.threshold = "thresholding", 0.3
    load_torch_state_dict(model, state)
    src, bgr = (x.transpose(0, 2, 3, 1) for x in probe_pair(1, 64, 96, seed=1))
    expected = [np.asarray(o) for o in model(src, bgr)]

    model.save_weights(tmp_path / "model.weights.h5")
    fresh = tensorflow_impl.MattingRefine("mobilenetv2", refine_mode="thresholding", refine_threshold=0.3)
    fresh.load_weights(tmp_path / "model.weights.h5")
    assert_equal_state_dicts(state, torch_state_dict(fresh))

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is tensorflow_impl.MattingRefine
    assert (loaded.refiner.mode, loaded.refiner.threshold, loaded.backbone_scale) == ("thresholding", 0.3, 0.25)
    assert_equal_state_dicts(state, torch_state_dict(loaded))
    for x, y in zip(expected, loaded(src, bgr)):
        assert np.array_equal(x, np.asarray(y))


# bgmv2's parts by their second name: the knob table and the I/O contract are framework-free.
ALLOWED_IMPORTS = {"tensorflow", "keras", "numpy", "math", "typing", "dataclasses", "knobs", "contract"}
# The loader takes paths (and zoo names; pickle only to catch torch.load's refusal); model code takes none.
FILE_MODULES = {"checkpoint.py": {"os", "re", "pickle", "weights", "safetensors", "torch"},
                "resize.py": {"fractions", "functools"}}  # exact rational scale arithmetic, cached per scale


def test_package_imports_only_tensorflow_keras_numpy_and_tf_calls_stay_in_tf_ops():
    for path in sorted((ROOT / "tensorflow_impl").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[1] if name.startswith("bgmv2.") else name.split(".")[0]
                assert top in ALLOWED_IMPORTS | FILE_MODULES.get(path.name, set()), f"{path.name} imports {name}"
                if top == "tensorflow":
                    assert path.name == "tf_ops.py", f"{path.name} imports tensorflow; keep tf.* in tf_ops.py"
