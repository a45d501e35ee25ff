"""service/memory.py: freed large arrays leave the process once the mmap threshold is fixed (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# A 16 MB block freed (which raises glibc's dynamic threshold to 16 MB), then an 8 MB one: with the
# dynamic threshold the second comes from the heap and stays resident after it is freed; fixed, it
# is mmap'd and given back. Prints the resident growth the freed 8 MB block left behind, in MB.
PROBE = r"""
import sys
import numpy as np
from service.memory import fix_mmap_threshold
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
big = np.ones(16 << 20, np.uint8); del big
before = rss()
block = np.ones(8 << 20, np.uint8); del block
print(rss() - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_fixed_mmap_threshold_gives_freed_arrays_back():
    def left(mode: str) -> float:
        r = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return float(r.stdout.strip())

    assert left("dynamic") > 6  # the allocator's default: the freed 8 MB stay resident
    assert left("fixed") < 1
