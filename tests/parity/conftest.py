"""Session fixtures of the parity suite: probes, reference weights per backbone, the matrix's files
(built once per session, in order of need), and a summary table of every case at the end."""
import os
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
SHIPPED = os.path.join(ROOT, "weights", "bgmv2_mobilenetv2_synthetic_fp16.safetensors")
RESULTS = []  # CaseResult of every matrix case run this session, for the summary
from exported_files import WANTED  # noqa: E402 - backbone -> matrix labels the collected cases need
# One thread per runtime: the inputs are small, and the matrix's files are built by worker processes
# beside the tests; more threads than cores (or a busy neighbour) makes OpenMP spin-wait, measured
# 40x slower for PyTorch at 2 threads on a shared 2-core machine. BGMV2_PARITY_THREADS overrides.
THREADS = int(os.environ.get("BGMV2_PARITY_THREADS", "1"))
for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(name, str(THREADS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True, scope="session")
def quiet_frameworks():
    import torch
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def probes():
    from bgmv2.converters.probes import default_probes
    return default_probes()


@pytest.fixture(scope="session")
def exported(shipped_onnx) -> str:
    """The shipped model's ONNX export (static), as the path parity takes."""
    pytest.importorskip("onnxruntime")
    return str(shipped_onnx)


def pytest_collection_finish(session):
    """Note which matrix files the selected cases need, so they are built in parallel from the start."""
    from bgmv2.converters.devices import cuda_unavailable
    from bgmv2.parity_tests.matrix import missing_modules
    runnable = {}
    for item in session.items:
        spec = getattr(item, "callspec", None)
        if spec is None or "entry" not in spec.params:
            continue
        entry, device = spec.params["entry"], spec.params["device"]
        if missing_modules(entry):
            continue
        if device != "cpu":
            if entry.runtime not in runnable:
                runnable[entry.runtime] = cuda_unavailable(entry.runtime) is None
            if not runnable[entry.runtime]:
                continue
        labels = WANTED.setdefault(spec.params["backbone"], [])
        if entry.label not in labels:
            labels.append(entry.label)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    from bgmv2.parity_tests.engine import Report
    from bgmv2.parity_tests.report import text_table
    report = Report({}, [], "cpu", {}, cases=list(RESULTS))
    terminalreporter.section("parity matrix (this session)")
    terminalreporter.write_line(text_table(report))
