"""One OpenVINO Core for the whole process, and OpenVINO's telemetry off for the conversions we run.

One Core: OpenVINO's CPU plugin gives the thread that creates a plugin instance (one per Core) an
alternate signal stack of its own (20 KB, mmap'ed) and, when that instance is destroyed, unmaps it
and puts back the stack it replaced, but only if its own is still the current one. Two Cores
destroyed in the order they were made leave the thread with the first one's unmapped stack (the
first sees the second's stack current and unmaps its own; the second puts back the first's).
Python runs the handlers it installs (SIGINT, SIGTERM) with SA_ONSTACK, so the next such signal
kills the process with SIGSEGV (the kernel cannot write the signal frame: si_code SI_KERNEL). That
was the fast backend's "SIGSEGV once TensorFlow ran" and the suite's random exit 139 (the test
after the OpenVINO ones sent SIGTERM to itself; TensorFlow played no part). One Core made once and
kept for the process's life never puts back a freed stack. Every Core of ours comes from `core()`.

Telemetry: `import openvino` and `openvino.convert_model` send usage events (about 8 a conversion),
each from a forked process that is terminated after 3 s without an answer (no network); the fork
inherits our SIGTERM handler. These conversions are ours, not the user's use of OpenVINO's tools,
so they send nothing: OpenVINO's converter declines telemetry in CI (`disable_in_ci`, the `CI`
variable), which it reads at import and at each conversion; `openvino()` and `convert_model` here
set it for that moment only. OpenVINO's own opt-out, for its tools too: `opt_in_out --opt_out`.
"""
import contextlib
import os
import threading

_lock = threading.RLock()
_core = []


@contextlib.contextmanager
def no_telemetry():
    """OpenVINO's telemetry declines inside (its CI rule, read whenever its telemetry object is set up:
    at `import openvino` and at each `convert_model`)."""
    with _lock:
        previous = os.environ.get("CI")
        os.environ["CI"] = "true"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("CI", None)
            else:
                os.environ["CI"] = previous


def openvino():
    """The `openvino` package, imported without telemetry (ImportError when it is not installed)."""
    with no_telemetry():
        import openvino as ov
    return ov


def core():
    """The process's OpenVINO Core (made on first use, never destroyed before exit)."""
    with _lock:
        if not _core:
            _core.append(openvino().Core())
        return _core[0]


def convert_model(*args, **kwargs):
    """`openvino.convert_model` without telemetry."""
    ov = openvino()
    with no_telemetry():
        return ov.convert_model(*args, **kwargs)
