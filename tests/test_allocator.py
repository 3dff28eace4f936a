"""keep_freed_memory stops big temporaries from being faulted in afresh on every allocation.

Measured in a fresh interpreter: the apps switch the setting on for the rest of their process, so in the
test process the state depends on which tests ran before (the order dependence this replaces)."""
import json
import platform
import subprocess
import sys

import pytest

from bgmv2.scripts.allocator import libc

MEASURE = """
import json, resource
from bgmv2.scripts.allocator import keep_freed_memory

SIZE = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MiB)


def faults_of_second_allocation():
    block = bytearray(SIZE)  # zero-filled: touches every page
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(SIZE)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


default = faults_of_second_allocation()
kept_on = keep_freed_memory(True)
kept = faults_of_second_allocation()
back_off = keep_freed_memory(False)
again = faults_of_second_allocation()
print(json.dumps(dict(pages=SIZE // resource.getpagesize(), default=default, kept=kept, again=again,
                      kept_on=kept_on, back_off=back_off)))
"""


@pytest.mark.skipif(platform.system() != "Linux" or libc() is None, reason="needs glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    found = json.loads(subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                                      check=True).stdout)
    pages = found["pages"]
    assert found["kept_on"] and found["back_off"]
    assert found["default"] > pages // 2, found  # glibc default: mmap, unmap, mmap again
    assert found["kept"] < pages // 10, found  # served again from the process heap
    assert found["again"] > pages // 2, found  # and back to the defaults when switched off
