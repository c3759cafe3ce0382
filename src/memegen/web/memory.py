"""Giving the memory a photo took back to the system once its request is answered.

glibc's malloc serves each server thread from heaps of its own, and seldom hands their
free pages back: the blocks that held a big photo's pixels stay counted against the
server after the photo is gone. Measured with 36 MP uploads one after another, the
server grew by about 64 MB for every thread that had read one, to 722 MB once all ten
had, and kept it while idle; trimming the heaps after each costly request kept it at
184 MB. `benchmarks/server_memory.py` (big photos one at a time, then four at once) went
from 500 and 882 MB to 236 and 283 MB.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        own_symbols = ctypes.CDLL(None)  # the C library's among them, where there is one
    except (OSError, TypeError):  # Windows has no such handle
        return None
    trim = getattr(own_symbols, "malloc_trim", None)  # glibc only; musl and macOS lack it
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the C heaps' free pages to the system (glibc's ``malloc_trim``). It takes
    milliseconds after a big photo, so it runs once the response has been sent."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
