"""Process-wide settings that make long CPU runs faster. Nothing here runs on import.

:func:`keep_freed_memory` asks glibc's allocator to keep freed memory instead of returning
large blocks to the OS at once. Training allocates many same-sized buffers of tens of MB
per step; with the default settings each is ``mmap``-ed, page-faulted in and unmapped
every step (measured: ~45% of a pixel-MNIST training step on 2 cores, before the model-owned
buffer workspace of :mod:`noisyrnn.engine.aten` recycled the largest of them). It changes the
whole process, so nothing calls it unless asked: ``noisyrnn --keep-freed-memory COMMAND``,
``bench_recurrence.py`` (``--default-malloc`` skips it), or a library user once at start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 34,
                      top_pad: int = 1 << 28) -> bool:
    """Raise glibc's mmap and trim thresholds; returns False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(min(mmap_threshold, 2**31 - 1)))
        ok &= libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(min(trim_threshold, 2**31 - 1)))
        ok &= libc.mallopt(M_TOP_PAD, ctypes.c_int(min(top_pad, 2**31 - 1)))
        return bool(ok)
    except (OSError, AttributeError):
        return False
