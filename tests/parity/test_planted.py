"""Planted export bugs fail with the right diagnosis; faithful candidates pass (MobileNetV2, small probes).

The broader set (more layers and strengths, another backbone) is in the slow tier."""
import pytest

from .conftest import SHIPPED
from bgmv2.parity_tests.planted import default_set, slow_set

SIZES = ((128, 128, 2, 5), (96, 128, 1, 21))  # synthetic probes whose subjects fill enough cells


@pytest.fixture(scope="module")
def setup():
    from bgmv2.parity_tests.candidates import Reference
    from bgmv2.parity_tests.matrix import default_knobs
    from bgmv2.converters.probes import default_probes
    return Reference(SHIPPED), default_probes(SIZES), default_knobs(96, 128)


def check(setup, planted):
    from bgmv2.parity_tests.engine import check_candidate
    reference, probes, knobs = setup
    used = dict(knobs, **(planted.knobs or {}))
    candidate = planted.make(reference.spec, used)
    return check_candidate(reference, candidate, used, {k: "flag" for k in used}, probes)


@pytest.mark.parametrize("planted", default_set(), ids=lambda p: p.name)
def test_planted_bug_fails_with_its_diagnosis(setup, planted):
    result = check(setup, planted)
    assert result.error is None, result.error
    assert not result.ok, f"{planted.name} passed: {result.limits.ratios(result.metrics)}"
    assert result.diagnosis["code"] == planted.expected, result.diagnosis


@pytest.mark.slow
@pytest.mark.parametrize("planted", slow_set(), ids=lambda p: p.name)
def test_more_planted_bugs(setup, planted):
    result = check(setup, planted)
    assert not result.ok and result.diagnosis["code"] == planted.expected, result.diagnosis


def test_knob_diagnosis_names_the_value(setup):
    planted = next(p for p in default_set() if p.name == "knob-threshold")
    result = check(setup, planted)
    assert "refine_threshold=0.05" in result.diagnosis["detail"], result.diagnosis


def test_the_same_model_passes_and_weights_already_fp16_are_not_a_bug(setup):
    """The shipped weights are stored in fp16: rounding them to fp16 again changes nothing and passes."""
    from bgmv2.parity_tests.planted import build, rounded_weights, torch_candidate
    from bgmv2.parity_tests.engine import check_candidate
    reference, probes, knobs = setup
    for candidate in (torch_candidate("same", build(reference.spec, knobs)),
                      rounded_weights("fp16")(reference.spec, knobs)):
        result = check_candidate(reference, candidate, knobs, {}, probes)
        assert result.ok and result.diagnosis is None, result.violations


def test_limits_follow_the_measured_noise(setup):
    """The fp32 limits are factor x the reference's float32-vs-float64 error (+ floor), per output."""
    from bgmv2.converters.acceptance import RULES
    reference, probes, knobs = setup
    noise = reference.noise(knobs, probes, "fp32")
    limits = RULES["fp32"].limits(noise)
    pha_max, pha_mean = limits.noise["pha"]
    assert 0 < pha_mean < pha_max < 1e-4  # float32 rounding, not a difference of models
    assert limits.per_output["pha"] == (30 * pha_max + 1e-6, 20 * pha_mean + 1e-8)
    assert set(limits.per_output) == {"pha", "fgr", "pha_sm", "fgr_sm", "err_sm"}
    fp16 = RULES["fp16"].limits(reference.noise(knobs, probes, "fp16"))
    assert fp16.noise["pha"][1] > 100 * pha_mean  # float16's own error is far larger, and so its limits


# -- small edits of a real upstream-style ONNX file ----------------------------------------------------
@pytest.fixture(scope="module")
def legacy_onnx(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from bgmv2 import pytorch_impl
    from bgmv2.parity_tests.upstream import write_legacy_onnx
    from bgmv2.converters.probes import synthetic_probe
    import torch
    path = str(tmp_path_factory.mktemp("legacy") / "legacy.onnx")
    model = pytorch_impl.load_model(SHIPPED, refine_sample_pixels=16 * 300)
    probe = synthetic_probe(96, 128, 1, seed=99)
    write_legacy_onnx(model, path, (torch.from_numpy(probe.src), torch.from_numpy(probe.bgr)), opset=12)
    return path


def edited(path: str, folder, name: str, edit) -> str:
    import onnx
    model = onnx.load(path)
    edit(model.graph)
    out = str(folder / name)
    onnx.save(model, out)
    return out


def swap_inputs(graph):
    for node in graph.node:
        node.input[:] = [{"src": "bgr", "bgr": "src"}.get(name, name) for name in node.input]


def align_corners(graph):
    for node in graph.node:
        if node.op_type == "Resize" and node.input[0] in ("src", "bgr"):
            for attribute in node.attribute:
                if attribute.name == "coordinate_transformation_mode":
                    attribute.s = b"align_corners"


def run(path, knobs=None, sizes=SIZES):
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.converters.probes import default_probes
    return run_parity(SHIPPED, [CandidateRequest(path)], default_probes(sizes), knobs or {}, repeat=0).cases[0]


@pytest.mark.onnx
def test_upstream_onnx_knobs_are_read_from_the_graph(legacy_onnx):
    case = run(legacy_onnx)
    assert case.ok, case.error or case.violations
    assert case.knobs["refine_sample_pixels"] == 16 * 300 and case.recorded_from == "ONNX graph (inferred)"
    assert any("TopK k = 300" in note for note in case.notes)


@pytest.mark.onnx
def test_too_small_builtin_probes_are_enlarged_and_user_sizes_refused(legacy_onnx):
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.converters.probes import synthetic_probe
    case = run(legacy_onnx, sizes=((32, 48, 1, 5),))  # 96 cells < k = 300
    assert case.ok and any("checked at" in note for note in case.notes), case.notes
    mine = synthetic_probe(32, 48, 1, seed=5, builtin=False)
    refused = run_parity(SHIPPED, [CandidateRequest(legacy_onnx)], [mine], {}, repeat=0).cases[0]
    assert refused.verdict == "ERROR" and "needs at least 300 cells" in refused.error and "--size" in refused.error


@pytest.mark.onnx
@pytest.mark.parametrize("name, edit, code", [("swapped.onnx", swap_inputs, "inputs-swapped"),
                                              ("align_corners.onnx", align_corners, "convention")])
def test_edited_onnx_files_fail_with_their_diagnosis(legacy_onnx, tmp_path, name, edit, code):
    case = run(edited(legacy_onnx, tmp_path, name, edit))
    assert case.verdict == "FAIL" and case.diagnosis["code"] == code, (case.error, case.diagnosis)


@pytest.mark.onnx
def test_a_flag_that_contradicts_the_file_is_diagnosed_as_knobs(legacy_onnx):
    case = run(legacy_onnx, {"refine_sample_pixels": 16 * 200})
    assert case.verdict == "FAIL" and case.diagnosis["code"] == "knobs"
    assert "refine_sample_pixels=4800" in case.diagnosis["detail"], case.diagnosis
