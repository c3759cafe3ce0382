"""Giving the memory a photo took back to the system once its request is answered.

glibc's malloc serves each server thread from heaps of its own, and seldom hands their
free pages back: the blocks that held a big photo's pixels stay counted against the
server after the photo is gone. Measured with 36 MP uploads one after another, the
server grew by about 64 MB for every thread that had read one, to 722 MB once all ten
had, and kept it while idle; `benchmarks/server_memory.py` left it at 882 MB. Trimming
the heaps after each costly request kept it at 184 and 283 MB.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        own_symbols = ctypes.CDLL(None)  # the C library's among them, where there is one
    except (OSError, TypeError):  # Windows has no such handle
        return None
    return getattr(own_symbols, "malloc_trim", None)  # glibc only; musl and macOS lack it


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the C heaps' free pages to the system (glibc's ``malloc_trim``). It takes
    milliseconds after a big photo, so it runs once the response has been sent."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
