"""`.pt2` exports read with torch's own API (`torch.export.load`), not ours: the contract, any frame
size giving `bgmv2.pytorch_impl.matte`'s alpha, lowering after loading, and nothing pinned to the CPU."""
import json
import zipfile

import pytest
import torch

from conftest import realistic_weights, torch_probe
from bgmv2.converters.api import convert, load
from bgmv2.pytorch_impl import MattingRefine, matte, save_state_dict

KNOBS = {"refine_sample_pixels": 16 * 100}
OUTPUTS = ["pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm"]


@pytest.fixture(scope="module")
def model():
    return realistic_weights(MattingRefine("mobilenetv2", **KNOBS), seed=21).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("pt2_export")
    save_state_dict(model, folder / "m.pth")
    convert(folder / "m.pth", folder / "m.pt2", knobs=KNOBS, probe_size=(64, 96), log=None)
    return folder / "m.pt2"


@pytest.fixture(scope="module")
def program(exported):
    return torch.export.load(str(exported))


def test_contract_inputs_outputs_and_metadata(exported, program):
    assert list(program.graph_signature.user_inputs) == ["src", "bgr"]
    assert len(program.graph_signature.user_outputs) == 6
    with zipfile.ZipFile(exported) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/extra/bgmv2.json"))
        metadata = json.loads(archive.read(name))
    assert metadata["inputs"] == "src, bgr" and metadata["outputs"] == ", ".join(OUTPUTS)
    assert metadata["layout"] == "NCHW" and metadata["frame_sizes"] == "any"


@pytest.mark.parametrize("height, width", [(61, 95), (66, 98)])
def test_any_frame_size_gives_the_alpha_of_matte(program, model, height, width):
    src, bgr = torch_probe(2, height, width, seed=11)
    expected = matte(model, src, bgr)
    with torch.no_grad():
        got = program.module()(src, bgr)
    assert got[0].shape == (2, 1, height, width)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)
    assert torch.equal(got[5], expected[5])


@pytest.mark.slow
def test_runner_takes_odd_sizes_too(exported, model):
    """Slow tier (16 s on the shared 2-core machine, loading the runner): the default tier checks odd
    sizes on the program itself (test_any_frame_size_gives_the_alpha_of_matte)."""
    src, bgr = torch_probe(1, 62, 94, seed=4)
    got = load(exported)(src, bgr)["pha"]
    torch.testing.assert_close(torch.from_numpy(got), matte(model, src, bgr)[0], rtol=0, atol=1e-5)


def test_nothing_is_pinned_to_the_cpu(program):
    """What a CUDA run needs, checked without a GPU: no device-checking asserts, and once
    `move_to_device_pass` has rewritten the created tensors the program runs on another device
    (the meta device: any tensor left on the CPU would make it fail)."""
    from torch.export.passes import move_to_device_pass
    asserts = [n for n in program.graph.nodes if n.target is torch.ops.aten._assert_tensor_metadata.default]
    assert asserts == []
    src, bgr = torch_probe(1, 61, 95, seed=3)
    outputs = move_to_device_pass(program, "meta").module()(src.to("meta"), bgr.to("meta"))
    assert [o.device.type for o in outputs] == ["meta"] * 6 and outputs[0].shape == (1, 1, 61, 95)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_a_program_saved_on_the_cpu_runs_on_cuda(exported, model):
    src, bgr = torch_probe(1, 61, 95, seed=3)
    runner = load(exported)
    module = runner.model.to("cuda")
    with torch.no_grad():
        got = module(src.cuda(), bgr.cuda())
    torch.testing.assert_close(got[0].cpu(), matte(model, src, bgr)[0], rtol=0, atol=1e-3)


@pytest.mark.slow
def test_the_loaded_program_can_be_lowered(program):
    """Before: `run_decompositions()` on a loaded program failed (`expected sympy.Symbol`): the
    heights were declared as 4 * Dim, derived dims that do not survive saving."""
    lowered = program.run_decompositions()
    src, bgr = torch_probe(1, 61, 95, seed=3)
    torch.testing.assert_close(lowered.module()(src, bgr)[0], program.module()(src, bgr)[0], rtol=0, atol=1e-6)
