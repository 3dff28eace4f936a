"""Shared fixtures: realistic probes and weights with populated BatchNorm statistics. Also a guard: a
module of the toolkit imported by its folder's bare name (`pytorch_impl`, which works from the
repository root) instead of `bgmv2.pytorch_impl` fails the test run, since it would be a second copy."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from bgmv2.parity_tests.calibrated import standardise as standardise_output
from probes import probe_pair

PARTS = ("pytorch_impl", "tensorflow_impl", "converters", "parity_tests", "weights", "scripts")


class BareNameGuard:
    """A meta path finder that refuses the parts' bare top-level names (`bgmv2.<part>` is the one name)."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname.split(".")[0] in PARTS:
            raise ImportError(f"`{fullname}` imported by its bare name; import bgmv2.{fullname} (one name per module)")
        return None


sys.meta_path.insert(0, BareNameGuard)

# The tests never read or write the user's cache (~/.cache/bgmv2: fetched weights, the fast backend's
# choices, parity's reference runs): one fresh BGMV2_HOME per session, inherited by the commands they run.
SESSION_HOME = tempfile.mkdtemp(prefix="bgmv2-tests-home-")
os.environ["BGMV2_HOME"] = SESSION_HOME


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


SHARED_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def torch_probe(batch: int, height: int, width: int, seed: int = 0):
    src, bgr = probe_pair(batch, height, width, seed)
    return torch.from_numpy(src), torch.from_numpy(bgr)


def realistic_weights(model: torch.nn.Module, seed: int = 0, size=(192, 256)) -> torch.nn.Module:
    """Seeded weights, BatchNorm statistics measured on probe images, in eval mode.

    Convolutions get He-scaled random weights and BatchNorms random affine parameters; then one
    train-mode pass over probes records each BatchNorm's real input statistics (as training would),
    so activations stay in range through every backbone and a layout or epsilon mistake shows.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            elif isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.75 + 0.5 * torch.rand(n, generator=generator))
                if name.startswith("backbone.") and name.endswith(("bn3", "conv.3", "conv.2")):
                    module.weight.mul_(0.2)  # residual branches end small in trained networks
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(1000)
        src, bgr = torch_probe(2, size[0], size[1], seed=seed + 100)
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the calibration pass
            elif isinstance(module, torch.nn.Dropout):
                module.eval()
        model(src, bgr)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 0.1
        model.eval()
        for head in [m for name, m in model.named_modules() if name.endswith("conv4")]:
            standardise_output(model, head, src, bgr)
    return model


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The tiers (tests/tiers.py) before `-m` selects: slow and smoke marks by node id."""
    import tiers
    tiers.apply(items, pytest)


@pytest.fixture(scope="session")
def matrix_knobs():
    from bgmv2.parity_tests.matrix import default_knobs
    return default_knobs()


@pytest.fixture(scope="session")
def matrix(tmp_path_factory, matrix_knobs):
    """The session's exported files (tests/exported_files.py): the parity matrix's, built once."""
    from exported_files import Matrix
    found = Matrix(str(tmp_path_factory.mktemp("parity-matrix")), matrix_knobs)
    yield found
    found.close()


@pytest.fixture(scope="session")
def shipped_onnx(matrix) -> Path:
    """The shipped model as ONNX (fp32, static variant, the matrix's knobs, recorded in the file): the
    session's one export of it."""
    pytest.importorskip("onnx")
    builder, _ = matrix.side("mobilenetv2")
    return Path(builder.path("onnx-static"))


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"reference key lists not found at {SHARED_REFERENCE} (../shared/reference beside the checkout)")
    return SHARED_REFERENCE


@pytest.fixture(autouse=True, scope="session")
def few_threads():
    # Small inputs: a couple of threads is fastest and keeps CI machines responsive.
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def restore_threads():
    """The apps set torch's thread count (--threads); put it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """A folder with refine.pth (realistic BatchNorm statistics) and base.pth, MobileNetV2, for the apps."""
    from bgmv2.pytorch_impl import MattingBase, MattingRefine
    folder = tmp_path_factory.mktemp("models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    refine = realistic_weights(MattingRefine("mobilenetv2").eval(), size=(64, 96))
    torch.save(refine.state_dict(), folder / "refine.pth")
    torch.save(MattingBase("mobilenetv2").eval().state_dict(), folder / "base.pth")
    torch.set_num_threads(threads)
    return folder


@pytest.fixture(autouse=True)
def signal_stack_intact():
    """A test that leaves the main thread's signal stack unmapped fails here, by name, and the stack is
    switched off, instead of the suite dying with SIGSEGV at the next signal (tests/signal_stack.py)."""
    yield
    import signal_stack
    problem = signal_stack.dangling()
    if problem:
        signal_stack.disable()
        pytest.fail(problem)
