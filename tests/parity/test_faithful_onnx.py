"""Every faithful ONNX a user can have passes `bgmv2 parity`: the project's export saved with external
data (one data file, or one per tensor), run through ONNX Runtime's offline optimiser (basic,
extended) or onnxsim, its nodes renamed and its metadata dropped. A candidate whose data file is cut
short or missing, or whose weights exceed the memory available, is an ERROR row with the reason,
and the other candidates are still checked."""
import os

import pytest

from .conftest import SHIPPED

pytestmark = pytest.mark.onnx
SIZES = ((128, 128, 2, 5), (96, 128, 1, 21))


def check(paths, knobs=None):
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.converters.probes import default_probes
    return run_parity(SHIPPED, [CandidateRequest(p) for p in paths], default_probes(SIZES), knobs or {}, repeat=0,
                      threads=1).cases


def external(source, folder, **options):
    import onnx
    folder.mkdir(exist_ok=True)
    path = str(folder / "m.onnx")
    onnx.save_model(onnx.load(source), path, save_as_external_data=True, size_threshold=0, **options)
    return path


def ort_optimised(source, dest, level):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level.upper()}")
    options.optimized_model_filepath = str(dest)
    ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return str(dest)


def renamed_without_metadata(source, dest):
    import onnx
    model = onnx.load(source)
    for index, node in enumerate(model.graph.node):
        node.name = f"n{index}"
    del model.metadata_props[:]
    onnx.save(model, str(dest))
    return str(dest)


def simplified(source, dest):
    onnx = pytest.importorskip("onnx")
    onnxsim = pytest.importorskip("onnxsim")
    model, ok = onnxsim.simplify(onnx.load(source))
    assert ok
    onnx.save(model, str(dest))
    return str(dest)


def test_faithful_files_pass(exported, tmp_path):
    files = [external(exported, tmp_path / "one", all_tensors_to_one_file=True, location="m.onnx.data"),
             external(exported, tmp_path / "many", all_tensors_to_one_file=False),
             ort_optimised(exported, tmp_path / "basic.onnx", "basic"),
             ort_optimised(exported, tmp_path / "extended.onnx", "extended"),
             renamed_without_metadata(exported, tmp_path / "renamed.onnx")]
    for case in check(files):
        assert case.ok, (case.path, case.error, case.violations)


@pytest.mark.slow
def test_onnxsim_file_passes(exported, tmp_path):
    case, = check([simplified(exported, tmp_path / "sim.onnx")])
    assert case.ok, (case.error, case.violations)


def test_unreadable_candidates_are_error_rows_and_the_others_are_checked(exported, tmp_path, monkeypatch):
    cut = external(exported, tmp_path / "cut", all_tensors_to_one_file=True, location="m.onnx.data")
    data = os.path.join(os.path.dirname(cut), "m.onnx.data")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 3)
    missing = external(exported, tmp_path / "missing", all_tensors_to_one_file=True, location="m.onnx.data")
    os.remove(os.path.join(os.path.dirname(missing), "m.onnx.data"))
    cases = check([cut, missing, exported])
    assert [case.verdict for case in cases] == ["ERROR", "ERROR", "ok"]
    assert "is cut short" in cases[0].error and "which is missing beside it" in cases[1].error
    from bgmv2.converters import onnx_files
    monkeypatch.setattr(onnx_files, "available_memory", lambda: 1024)
    big, = check([exported])
    assert big.verdict == "ERROR" and "GiB of memory for its weights" in big.error
