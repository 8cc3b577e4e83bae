"""Memory management around the engine: the C allocator and Python's cycle collector.

keep_freed_memory(): keep the C allocator from handing freed array memory back to the kernel
between batched evaluations.

A batched evaluation allocates and frees arrays of a few megabytes dozens of times per fit.
With glibc's defaults those come from fresh mappings (or a heap top that is trimmed again on
free), so every evaluation pays a page fault per 4 KiB touched: on the 2-core CI machine that
was 60 % of an evaluation of the erjr batch (16.6 ms, 6.1 ms with the settings below; staus
32.5 ms and 16.8 ms; `benchmarks/evaluation_counts.py`). Raising the mmap and trim thresholds
lets freed memory be reused in place. The cost is that up to TRIM_THRESHOLD of freed memory
stays with the process; arrays above MMAP_THRESHOLD (the chunked batches of large models) are
still mapped and returned as before.

Only glibc has mallopt; elsewhere this does nothing.

collector_paused(): compiling a batch creates a few hundred thousand small objects (modifier
entries, parameter specs) while millions of objects of the parsed workspaces are alive, so
the cycle collector's full passes over all of them dominated compilation (1lbb: 12.7 ms per
point, 4.3 ms with the collector paused). Nothing compilation creates is cyclic garbage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024

_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; returns whether they are in effect."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            mallopt.restype = ctypes.c_int
            _tuned = bool(
                mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
    return _tuned


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for the block (restored as it was afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
