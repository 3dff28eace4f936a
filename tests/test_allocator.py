"""keep_freed_memory stops big temporaries from being faulted in afresh on every allocation."""
import platform
import resource

import pytest

from bgmv2.scripts.allocator import keep_freed_memory, libc

SIZE = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MiB)


def faults_of_second_allocation() -> int:
    block = bytearray(SIZE)  # zero-filled: touches every page
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(SIZE)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.system() != "Linux" or libc() is None, reason="needs glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    pages = SIZE // resource.getpagesize()
    assert faults_of_second_allocation() > pages // 2  # glibc default: mmap, unmap, mmap again
    try:
        assert keep_freed_memory(True)
        assert faults_of_second_allocation() < pages // 10  # served again from the process heap
    finally:
        assert keep_freed_memory(False)
