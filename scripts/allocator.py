"""Keep freed memory in the process (glibc), so big per-frame tensors stop costing page faults.

glibc hands allocations above 32 MiB straight to mmap and returns them to the system on free, so a
1080p frame's large temporaries are faulted in page by page on every call. `keep_freed_memory()`
turns that off for the rest of the process (heap allocations only, no trimming). On other C
libraries it does nothing. Measured by `benchmarks/pytorch_speed.py` (rows marked `+keep-memory`).
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
GLIBC_DEFAULT_MMAP_MAX = 65536


def libc():
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return library if library is not None and hasattr(library, "mallopt") else None


def keep_freed_memory(enable: bool = True) -> bool:
    """Switch glibc to heap-only allocation without trimming (or back to its defaults); True if applied."""
    library = libc()
    if library is None:
        return False
    if enable:
        ok = library.mallopt(M_MMAP_MAX, 0) and library.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    else:
        ok = library.mallopt(M_MMAP_MAX, GLIBC_DEFAULT_MMAP_MAX) and library.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
    return bool(ok)
