"""Keeping a long-running server's resident memory near what it uses (glibc's allocator only).

glibc serves a freed large block's address space back to the system only while blocks that large
are mmap'd; after the first such free it raises that threshold (up to 32 MB), so later feature and
log-prob arrays come from the heap and their pages stay resident after the request that needed them.
A fixed threshold keeps large arrays mmap'd: freed, they leave the process (a few MiB of a server's
resident memory after 200 requests of `edgescribe bench-engines`). Elsewhere (musl, macOS) this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 64 * 1024


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Make glibc mmap every block of ``nbytes`` or more, for good; False where that cannot be done."""
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
    ok = mallopt(M_MMAP_THRESHOLD, nbytes) == 1
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
