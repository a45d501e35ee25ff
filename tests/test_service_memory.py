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



# The filterbank on 1 s chunks, 60 of them: its arrays (0.1-0.2 MB each, ~1.2 MB a chunk) must come back
# from the heap, not from fresh mmaps or a trimmed heap top that faults every page in again (which made the
# server's filterbank 4-6x slower than a plain process's). Prints the minor page faults per chunk.
CHUNK_PROBE = r"""
import resource, sys
import numpy as np
from model.fbank import Fbank, StreamingFbank
from service.memory import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
elif sys.argv[1] == "64k":
    assert fix_mmap_threshold(64 * 1024, 128 * 1024)
fbank = StreamingFbank(Fbank())
audio = np.random.default_rng(0).standard_normal(16000 * 65).astype(np.float32) * 0.1
for i in range(5):
    fbank.accept(audio[i * 16000 : (i + 1) * 16000])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(5, 65):
    fbank.accept(audio[i * 16000 : (i + 1) * 16000])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 60)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_chunks_filterbank_arrays_are_reused_not_faulted_in_again():
    def per_chunk(mode: str) -> float:
        r = subprocess.run([sys.executable, "-c", CHUNK_PROBE, mode], capture_output=True, text=True, check=True)
        return float(r.stdout.strip())

    assert per_chunk("64k") > 100  # thresholds under the chunk's arrays: ~500 pages faulted per chunk
    assert per_chunk("fixed") < 5


# Ten 0.4 MB arrays (under the mmap threshold: heap) freed below a live one, so the heap's top cannot
# shrink: the 4 MB stay resident until give_back_free_memory (malloc_trim) hands their pages back. Prints
# the resident drop it made, in MB.
TRIM_PROBE = r"""
import numpy as np
from service.memory import fix_mmap_threshold, give_back_free_memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
assert fix_mmap_threshold()
blocks = [np.ones(100_000, np.float32) for _ in range(10)]
pin = np.ones(75_000, np.float32)  # 0.3 MB: larger than any free block left from start-up, so it goes on top
del blocks
before = rss()
give_back_free_memory()
print(before - rss())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_free_heap_pages_are_given_back_after_a_request():
    r = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True)
    assert float(r.stdout.strip()) > 3
