"""ONNX files as users have them (`converters/onnx_files.py`): external data in one file or many, small
tensors in external data (which ONNX Runtime cannot read from there by itself), data files past
2 GB, nodes not sorted; and the reasons a file cannot be loaded: a data file missing, cut short or
outside the model's folder, weights larger than the memory available."""
import os

import numpy as np
import pytest

from bgmv2.converters import ConversionError

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def tiny_model():
    """src, bgr -> pha (a 3x3 convolution over both, reshaped by a shape tensor), fgr (src): weights
    and a small int64 shape tensor, so external data holds both kinds."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    image = ["batch", 3, "height", "width"]
    weights = numpy_helper.from_array(rng.standard_normal((1, 6, 3, 3)).astype(np.float32), "conv.weight")
    shape = numpy_helper.from_array(np.asarray([0, 1, 0, 0], np.int64), "shape")
    nodes = [helper.make_node("Concat", ["src", "bgr"], ["both"], axis=1),
             helper.make_node("Conv", ["both", "conv.weight"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["conv", "shape"], ["shaped"]),
             helper.make_node("Sigmoid", ["shaped"], ["pha"]),
             helper.make_node("Identity", ["src"], ["fgr"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(n, TensorProto.FLOAT, image)
                                              for n in ("src", "bgr")],
                              [helper.make_tensor_value_info("pha", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("fgr", TensorProto.FLOAT, None)], [weights, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="tests")
    model.ir_version = 8
    return model


def save(model, path, **options):
    onnx.save_model(model, str(path), **options)
    return str(path)


def outputs(path):
    from bgmv2 import converters
    x = np.random.default_rng(1).random((2, 3, 8, 12)).astype(np.float32)
    return converters.load(path)(x, x[:, ::-1].copy())


@pytest.fixture
def files(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "ext").mkdir()
    (tmp_path / "many").mkdir()
    return {"one": save(tiny_model(), tmp_path / "one" / "m.onnx"),
            "ext": save(tiny_model(), tmp_path / "ext" / "m.onnx", save_as_external_data=True,
                        all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0),
            "many": save(tiny_model(), tmp_path / "many" / "m.onnx", save_as_external_data=True,
                         all_tensors_to_one_file=False, size_threshold=0)}


def test_external_data_loads_and_runs_as_the_one_file_model(files):
    from bgmv2 import converters
    from bgmv2.converters.onnx_files import data_files
    expected = outputs(files["one"])
    for name in ("ext", "many"):
        assert data_files(files[name]), name
        assert converters.detect(files[name]) == "onnx"
        got = outputs(files[name])
        assert all(np.array_equal(expected[k], got[k]) for k in expected), name
    assert "2 tensors" in converters.info(files["ext"])["external_data"]
    assert "external_data" not in converters.info(files["one"])


def test_onnx_runtime_gets_the_path_or_the_small_tensors_read_in(files):
    """A one-file model: its path. Small tensors in external data (ONNX Runtime's shape inference cannot
    read a Reshape's shape from there): the graph with those read in, large ones left to the folder."""
    import onnxruntime as ort
    from bgmv2.converters.onnx_files import parse, session_source
    options = ort.SessionOptions()
    assert session_source(files["one"], parse(files["one"]), options) == os.path.abspath(files["one"])
    source = session_source(files["ext"], parse(files["ext"]), options)
    assert isinstance(source, bytes) and len(source) < 2000
    with pytest.raises(Exception, match="(?i)external"):  # what ONNX Runtime does with the path alone
        ort.InferenceSession(files["ext"], providers=["CPUExecutionProvider"])


def test_a_data_file_past_2_gb(tmp_path):
    """Tensors at offsets beyond 2**31 in a data file larger than 2 GB (sparse: little disk used)."""
    from onnx.external_data_helper import ExternalDataInfo
    hole = 2 ** 31 + 4096
    model = tiny_model()
    path = save(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                location="m.data", size_threshold=0)
    data = (tmp_path / "m.data").read_bytes()
    parsed = onnx.load(path, load_external_data=False)
    for tensor in parsed.graph.initializer:
        offset = int(ExternalDataInfo(tensor).offset or 0)
        for entry in tensor.external_data:
            if entry.key == "offset":
                entry.value = str(offset + hole)
            if entry.key == "location":
                entry.value = "big.data"
    big = str(tmp_path / "big.onnx")
    onnx.save(parsed, big)
    with open(tmp_path / "big.data", "wb") as f:
        f.truncate(hole)
        f.seek(hole)
        f.write(data)
    assert os.path.getsize(tmp_path / "big.data") > 2 ** 31
    expected, got = outputs(save(tiny_model(), tmp_path / "one.onnx")), outputs(big)
    assert all(np.array_equal(expected[k], got[k]) for k in expected)


@pytest.mark.parametrize("damage, message", [("missing", "which is missing beside it"),
                                             ("cut", "is cut short"),
                                             ("outside", "not a file name inside the model's folder")])
def test_unreadable_external_data_is_one_error_with_the_fix(files, tmp_path, damage, message):
    from bgmv2 import converters
    path = files["ext"]
    data = os.path.join(os.path.dirname(path), "m.onnx.data")
    if damage == "missing":
        os.remove(data)
    elif damage == "cut":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    else:
        parsed = onnx.load(path, load_external_data=False)
        for tensor in parsed.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../elsewhere.data"
        onnx.save(parsed, path)
    for call in (converters.load, converters.info):
        with pytest.raises(ConversionError, match=message) as caught:
            call(path)
        assert "\n" not in str(caught.value)


def test_weights_larger_than_the_memory_available_are_refused(files, monkeypatch):
    from bgmv2 import converters
    from bgmv2.converters import onnx_files
    monkeypatch.setattr(onnx_files, "available_memory", lambda: 100)
    with pytest.raises(ConversionError, match="GiB of memory for its weights, more than the .* available"):
        converters.load(files["ext"])


def test_nodes_out_of_order_still_load(files, tmp_path):
    """The ONNX checker refuses graphs whose nodes are not sorted (onnxconverter-common's float16
    converter writes them so); ONNX Runtime runs them, and so does bgmv2."""
    model = tiny_model()
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    with pytest.raises(Exception):
        onnx.checker.check_model(model)
    expected, got = outputs(files["one"]), outputs(save(model, tmp_path / "unsorted.onnx"))
    assert all(np.array_equal(expected[k], got[k]) for k in expected)
