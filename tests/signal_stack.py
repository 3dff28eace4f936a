"""Whether the main thread's alternate signal stack is still mapped (Linux), so the suite can name the
test that freed it instead of dying with SIGSEGV at the next SIGTERM or Ctrl-C (OpenVINO Cores
dropped in creation order do that: see converters/openvino_core.py)."""
import ctypes
import ctypes.util
import sys
from typing import Optional

MS_ASYNC, SS_DISABLE, PAGE = 1, 2, 4096


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None


def dangling() -> Optional[str]:
    """A description of the current thread's signal stack when it is enabled but not mapped, else None."""
    if _libc is None:
        return None
    stack = _Stack()
    if _libc.sigaltstack(None, ctypes.byref(stack)) != 0 or stack.ss_flags & SS_DISABLE or not stack.ss_sp:
        return None
    page = stack.ss_sp // PAGE * PAGE
    if _libc.msync(ctypes.c_void_p(page), ctypes.c_size_t(PAGE), MS_ASYNC) == 0:
        return None
    return (f"the main thread's signal stack ({stack.ss_size} bytes at {stack.ss_sp:#x}) is no longer mapped: the "
            "next SIGTERM or Ctrl-C would kill the process with SIGSEGV (an OpenVINO Core made outside "
            "converters.openvino_core.core()?)")


def disable() -> None:
    """No alternate signal stack for this thread (Python's handlers then run on the normal stack)."""
    if _libc is not None:
        _libc.sigaltstack(ctypes.byref(_Stack(None, SS_DISABLE, 0)), None)
