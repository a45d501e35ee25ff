"""Keeping a long-running server's resident memory near what it uses (glibc's allocator only).

glibc serves a freed large block's address space back to the system only while blocks that large
are mmap'd; after the first such free it raises that threshold (up to 32 MB), so later feature and
log-prob arrays come from the heap and their pages stay resident after the request that needed them.
A fixed threshold keeps large arrays mmap'd: freed, they leave the process (a few MiB of a server's
resident memory after 200 requests of `edgescribe bench-engines`). Elsewhere (musl, macOS) this does
nothing.

The threshold is 512 KiB, above a 1 s upload chunk's working arrays (the filterbank's frames and
spectrum are 0.16-0.21 MB each), and the heap's top is trimmed only past 2 MiB free (a chunk frees
about 1.2 MB; with 1 MiB the top was trimmed and faulted in again at every chunk, ~200 page faults
each). Fixing any mallopt setting turns glibc's dynamic adjustment off, which leaves the trim
threshold at its 128 KiB default: as first set here, with a 64 KiB threshold alone, every chunk's
arrays were mmap'd or trimmed away and faulted in again (the tests' probe counts the faults), and the
filterbank ran 4-6x slower (a one-off timing) in the
server than in a plain process (0.0036 against 0.0006 of real time; the network 15% slower), a third
of a request's time (py-spy). Arrays the size of a whole upload's features or a long segment's
log-probs are still mmap'd and given back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
_trim = None  # glibc's malloc_trim, once fix_mmap_threshold has run

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 512 << 10
TRIM_THRESHOLD_BYTES = 2 << 20


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES, trim_bytes: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Make glibc mmap every block of ``nbytes`` or more, for good, and give the heap's top back once
    ``trim_bytes`` of it are free; False where that cannot be done."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, nbytes) == 1 and mallopt(M_TRIM_THRESHOLD, trim_bytes) == 1
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD or M_TRIM_THRESHOLD) refused")
        return False
    global _trim
    with contextlib.suppress(AttributeError):
        _trim = libc.malloc_trim
        _trim.argtypes = [ctypes.c_size_t]
        _trim.restype = ctypes.c_int
    return True


def give_back_free_memory() -> None:
    """After a request: hand the heap's free pages back (the 2 MiB the trim threshold lets a request
    reuse, and free pages inside the heap), under 1 ms. Nothing before fix_mmap_threshold, or off glibc."""
    if _trim is not None:
        _trim(0)
