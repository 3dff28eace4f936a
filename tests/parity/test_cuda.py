"""CUDA pieces of the parity engine: `.pt2` programs saved on the CPU run on a GPU, reports state TF32.

The CPU-runnable parts run everywhere; the GPU checks are marked `cuda` (scripts/gpu_check.sh)."""
import numpy as np
import pytest

from .conftest import SHIPPED


def cuda_reason():
    from bgmv2.converters.devices import cuda_unavailable
    return cuda_unavailable("torch")


SMALL = dict(refine_mode="sampling", backbone_scale=0.25, refine_sample_pixels=16 * 64)


@pytest.fixture(scope="module")
def pt2_file(tmp_path_factory):
    from bgmv2.parity_tests.matrix import quiet_convert
    path = str(tmp_path_factory.mktemp("pt2") / "m.pt2")
    quiet_convert(SHIPPED, path, knobs=SMALL)
    return path


@pytest.mark.slow
def test_pt2_module_moved_by_the_program_pass_matches(pt2_file):
    """The device pass leaves a CPU program's results unchanged (the path taken for CUDA)."""
    import torch
    from bgmv2 import converters
    from bgmv2.converters.probes import synthetic_probe
    from bgmv2.converters.torch_formats import pt2_module_class, read_pt2_program
    probe = synthetic_probe(96, 128, 1, seed=3)
    module = pt2_module_class()(read_pt2_program(pt2_file)[0])
    module.device = torch.device("meta")  # force the pass to run, as for a move to CUDA
    module = module.to("cpu")
    with torch.inference_mode():
        moved = module(torch.from_numpy(probe.src), torch.from_numpy(probe.bgr))
    loaded = converters.load(pt2_file)(probe.src, probe.bgr)
    assert np.array_equal(moved[0].numpy(), loaded["pha"])


def test_cpu_reports_say_tf32_is_not_used():
    from bgmv2.converters.devices import tf32_setting
    assert tf32_setting("cpu") == "not used (CPU)"


@pytest.mark.cuda
@pytest.mark.skipif(cuda_reason() is not None, reason=str(cuda_reason()))
def test_pt2_and_torchscript_pass_on_cuda_with_tf32_off(pt2_file, tmp_path):
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    from bgmv2.parity_tests.matrix import quiet_convert
    from bgmv2.converters.probes import synthetic_probe
    script = str(tmp_path / "m.pt")
    quiet_convert(SHIPPED, script, knobs=SMALL)
    probes = [synthetic_probe(96, 128, 2, seed=4)]
    report = run_parity(SHIPPED, [CandidateRequest(pt2_file), CandidateRequest(script)], probes, dict(SMALL),
                        device="cuda", repeat=1)
    assert report.environment["tf32"].startswith("off"), report.environment["tf32"]
    for case in report.cases:
        assert case.ok, f"{case.label}: {case.error or case.violations} {case.diagnosis}"
        assert case.device == "cuda"
