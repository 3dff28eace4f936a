"""The Keras model as a graph: one `tf.function` trace serves every batch, height and width, equal to
eager; size checks inside the graph; mixed precision."""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from bgmv2 import pytorch_impl  # noqa: E402
from bgmv2 import tensorflow_impl  # noqa: E402
from conftest import realistic_weights  # noqa: E402
from probes import probe_pair  # noqa: E402

pytestmark = pytest.mark.tf

OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
ANY_IMAGE = tf.TensorSpec([None, None, None, 3], tf.float32)


@pytest.fixture(scope="module")
def torch_model():
    return realistic_weights(pytorch_impl.MattingRefine("mobilenetv2", refine_sample_pixels=16 * 60), seed=5)


@pytest.fixture(scope="module")
def state(torch_model):
    return {key: value.numpy() for key, value in torch_model.state_dict().items()}


@pytest.fixture(scope="module")
def model(state):
    keras_model = tensorflow_impl.MattingRefine("mobilenetv2", refine_sample_pixels=16 * 60)
    tensorflow_impl.load_torch_state_dict(keras_model, state)
    return keras_model


def inputs(batch, height, width, seed=0):
    return tuple(tf.constant(x.transpose(0, 2, 3, 1)) for x in probe_pair(batch, height, width, seed))


@pytest.mark.parametrize("mode, static", [("sampling", False), ("sampling", True), ("thresholding", False),
                                          ("full", False)], ids=["sampling", "sampling-static", "thresholding", "full"])
def test_one_trace_serves_every_size_and_matches_eager_and_pytorch(model, torch_model, mode, static):
    """Graph rewrites (fused and reordered operations) round differently from eager: both within 1e-4 of
    PyTorch and of each other, with identical refined cells."""
    model.refiner.mode, model.refiner.static_shapes = mode, static
    torch_model.refiner.mode = mode
    try:
        graph = tf.function(lambda src, bgr: model(src, bgr), input_signature=[ANY_IMAGE, ANY_IMAGE])
        concrete = graph.get_concrete_function()
        assert concrete.structured_outputs[0].shape.as_list() == [None, None, None, 1]
        for batch, height, width in [(2, 64, 96), (1, 96, 96)]:
            src, bgr = inputs(batch, height, width, seed=height)
            traced = concrete(src, bgr)
            eager = model(src, bgr)
            assert traced[0].shape == (batch, height, width, 1)
            assert traced[5].shape == (batch, height // 4, width // 4, 1)
            with torch.no_grad():
                expected = torch_model(*(torch.from_numpy(x.numpy().transpose(0, 3, 1, 2)) for x in (src, bgr)))
            for name, x, y, z in zip(OUTPUTS, traced, eager, expected):
                x, y, z = x.numpy(), y.numpy(), z.numpy().transpose(0, 2, 3, 1)
                if name == "ref_sm":
                    assert np.array_equal(x, y) and np.array_equal(x, z)
                else:
                    assert np.abs(x - y).max() <= 1e-4 and np.abs(x - z).max() <= 1e-4, name
            if mode == "sampling":
                assert 0 < traced[5].numpy().sum() <= batch * 60
        assert graph.experimental_get_tracing_count() == 1
    finally:
        model.refiner.mode, model.refiner.static_shapes = "sampling", False
        torch_model.refiner.mode = "sampling"


def test_graph_checks_sizes_it_could_not_see_when_traced(model):
    graph = tf.function(lambda src, bgr: model(src, bgr), input_signature=[ANY_IMAGE, ANY_IMAGE])
    graph = graph.get_concrete_function()
    odd = tf.zeros([1, 66, 96, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="height and width must be divisible by 4"):
        graph(odd, odd)
    with pytest.raises(tf.errors.InvalidArgumentError, match="src and bgr must have the same shape"):
        graph(tf.zeros([1, 64, 96, 3]), tf.zeros([1, 64, 100, 3]))


def test_static_shapes_in_the_signature_are_checked_when_tracing(model):
    with pytest.raises(ValueError, match="divisible by 4; got 66x96"):
        tf.function(lambda src, bgr: model(src, bgr)).get_concrete_function(
            tf.TensorSpec([1, 66, 96, 3]), tf.TensorSpec([1, 66, 96, 3]))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(model, state, policy):
    """float16 / bfloat16 compute, float32 weights. The random network is chaotic, so the bound is
    loose; `full` mode avoids a different choice of cells turning rounding into large differences."""
    mixed = tensorflow_impl.MattingRefine("mobilenetv2", refine_mode="full", dtype=policy)
    tensorflow_impl.load_torch_state_dict(mixed, state)
    assert mixed.refiner.conv1.compute_dtype == policy.split("_")[1]
    assert mixed.refiner.conv1.kernel.dtype == "float32"
    src, bgr = inputs(2, 64, 96, seed=2)
    model.refiner.mode = "full"
    try:
        expected = model(src, bgr)
    finally:
        model.refiner.mode = "sampling"
    try:
        graph = tf.function(lambda s, b: mixed(s, b), input_signature=[ANY_IMAGE, ANY_IMAGE])
        got = graph(src, bgr)
    except tf.errors.NotFoundError as error:  # no kernel for this dtype on this device
        pytest.skip(f"{policy} is not supported here: {str(error).splitlines()[0]}")
    assert got[0].dtype == policy.split("_")[1]
    difference = np.abs(got[0].numpy().astype(np.float32) - expected[0].numpy())
    assert np.isfinite(difference).all()
    assert difference.mean() < 0.05 and np.median(difference) < 0.02
    for mode in ("sampling", "thresholding"):
        mixed.refiner.mode = mode
        pha, *_, ref = mixed(src, bgr)
        assert np.isfinite(pha.numpy().astype(np.float32)).all() and ref.numpy().sum() > 0
