"""OpenVINO beside signals: compiled models made and dropped in any order leave the process able to
take SIGTERM (the CPU plugin's signal stack, see converters/openvino_core.py), and
OpenVINO's telemetry neither forks nor prints through our SIGTERM handler. Each check runs in a
subprocess: the failure it guards against kills the interpreter."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install '.[openvino]')")
REPO = Path(__file__).resolve().parents[1]

SIGNAL_AFTER_TWO_CORES = r'''
import gc, os, signal
import numpy as np
import openvino as ov
from bgmv2.converters.openvino_format import compile_pinned

def tiny():
    p = ov.opset13.parameter([1, 3, 8, 8], np.float32)
    return ov.Model([ov.opset13.relu(p)], [p])

signal.signal(signal.SIGTERM, lambda *a: print("handled", flush=True))
first = compile_pinned(tiny(), "fp32", 1, "first")
second = compile_pinned(tiny(), "fp32", 1, "second")
del first; gc.collect()  # dropped in the order they were made
del second; gc.collect()
os.kill(os.getpid(), signal.SIGTERM)
print("survived", flush=True)
'''


def test_sigterm_after_openvino_runners_are_dropped_in_creation_order():
    result = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_TWO_CORES], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"exit {result.returncode} (-11: SIGSEGV)\n{result.stderr[-2000:]}"
    assert result.stdout.split() == ["handled", "survived"]


def test_only_one_core_in_the_code():
    """Every OpenVINO Core is the process's one (`openvino_core.core()`): no other `ov.Core()`."""
    found = [f"{path.relative_to(REPO)}:{number}" for folder in ("converters", "parity_tests", "scripts", "benchmarks")
             for path in (REPO / folder).rglob("*.py") if path.name != "openvino_core.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bCore\(\)", line)]
    assert not found, found


TELEMETRY = r'''
import multiprocessing, os, sys
from bgmv2.scripts.exits import install_signal_handlers
install_signal_handlers()
started = []
original = multiprocessing.Process.start
multiprocessing.Process.start = lambda self: (started.append(self), original(self))[1]
from bgmv2.converters.openvino_core import convert_model
import torch
convert_model(torch.nn.ReLU(), example_input=torch.zeros(1, 3, 8, 8))
print("forked", len(started), flush=True)
'''


def test_our_conversions_send_no_telemetry(tmp_path):
    """No telemetry process is forked (OpenVINO's converter would fork one per event), whatever the
    user's consent file says (HOME is a fresh folder: no file, which OpenVINO takes as consent)."""
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", TELEMETRY], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "forked 0" in result.stdout and "Traceback" not in result.stderr, result.stdout + result.stderr


FORKED_CHILD = r'''
import multiprocessing, os, signal, time
from bgmv2.scripts.exits import install_signal_handlers
install_signal_handlers()
child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
child.start()
time.sleep(0.5)
child.terminate()
child.join(10)
print("child exit", child.exitcode, flush=True)
'''


def test_a_forked_child_dies_quietly_on_sigterm():
    """Our SIGTERM handler acts in the process that installed it: a forked child (OpenVINO's telemetry
    sender, any multiprocessing fork) terminated by its parent exits without a traceback."""
    result = subprocess.run([sys.executable, "-c", FORKED_CHILD], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "child exit -15" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Terminated" not in result.stderr, result.stderr
