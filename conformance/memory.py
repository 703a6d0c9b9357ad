"""The runner's memory: large response buffers go back to the system once freed."""

from __future__ import annotations

import ctypes
import sys

__all__ = ["return_large_buffers", "MMAP_THRESHOLD"]

# glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3

# Buffers from this size up get a mapping of their own. Smaller than the runner's
# receive size (wire.RECV_SIZE, 256 KiB) so that every response buffer that grows
# past a read is one.
MMAP_THRESHOLD = 128 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold so a freed large buffer is returned at once; True if set.

    Why: glibc raises its threshold each time a mapped buffer is freed (up to 32 MiB
    on 64-bit systems), so after the first large response the next ones of 8 MiB come
    from the heaps of the threads that read them, and a heap keeps what is freed in
    it. With a thread per connection, a default run grew to about 350 MB of RSS while
    its largest case needs about 190 MB; with a fixed threshold the run's peak is that
    case's (measured with tools/bench_broken.py, which prints each run's peak). Other
    C libraries have no such threshold to raise, or no mallopt; they are left alone.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
