"""The run's memory: which pages NumPy asks for, and handing freed memory back.

Neither changes a number in any table; both only change how fast a large run gets its
memory from the operating system and how much of it the process keeps.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading

import numpy as np

try:  # NumPy >= 2
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:  # pragma: no cover - NumPy 1.x
    _set_madvise_hugepage = getattr(np.core.multiarray, "_set_madvise_hugepage", None)

_USER_CHOICE = "NUMPY_MADVISE_HUGEPAGE"
_lock = threading.Lock()
_inside = 0
_before = True


@contextlib.contextmanager
def small_pages():
    """Within the block, NumPy asks for ordinary 4 KiB pages instead of transparent huge pages.

    NumPy advises the kernel to back every array of 4 MiB or more with 2 MiB pages. A run
    allocates and frees such arrays chunk after chunk, and on a virtual machine whose
    kernel compacts memory to find each huge page (THP `defrag` = `madvise`, the usual
    default) the allocations cost more than the work on them: with huge pages a
    1,000,000-patient vector run spent 1.7-1.9 s joining its tables and 2.8-3.0 s in the
    kernel in all; with small pages 0.5-1.4 s and 1.6-2.5 s (benchmarks/README.md). A user who set
    NUMPY_MADVISE_HUGEPAGE keeps their choice. Safe to nest and to enter from several
    threads: the first to enter switches, the last to leave restores.
    """
    global _inside, _before
    if _set_madvise_hugepage is None or _USER_CHOICE in os.environ:
        yield
        return
    with _lock:
        if _inside == 0:
            _before = _set_madvise_hugepage(False)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                _set_madvise_hugepage(_before)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_LIBC = _libc()
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)  # glibc >= 2.33
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _Mallinfo2

#: Freed heap (MiB) a run may keep for its next chunk before handing it back.
KEEP_FREE_MIB = 128


def hand_back_freed_memory(keep_mib: float = KEEP_FREE_MIB) -> None:
    """Return the memory freed chunks left in the heap to the operating system once there
    is more than `keep_mib` MiB of it (glibc; elsewhere nothing)."""
    # A chunk's temporary arrays are below glibc's self-raising mmap threshold: once freed
    # they stay in the process as heap, so a million-patient run kept about 0.6 GB it did
    # not use on top of its tables. Handing it all back after every chunk made the next
    # chunk fault the same pages in again (about 20% of a 1M run's kernel time); keeping
    # up to 128 MiB saved 0.2-1.2 s of 6-11 s for 8-36 MiB more at the peak.
    if _LIBC is None:
        return
    if _MALLINFO2 is None or _MALLINFO2().fordblks > keep_mib * 2**20:
        _LIBC.malloc_trim(0)
