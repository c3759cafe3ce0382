"""Keeping the server's C heaps small: few of them, and their free memory given back to
the system once each costly request is answered.

glibc's malloc serves each server thread from heaps of its own, and seldom hands their
free pages back: the blocks that held a big photo's pixels stay counted against the
server after the photo is gone. Measured with 36 MP uploads one after another, the
server grew by about 64 MB for every thread that had read one, to 722 MB once all ten
had, and kept it while idle; trimming the heaps after each costly request kept it at
184 MB. `benchmarks/server_memory.py` (big photos one at a time, then four at once) went
from 500 and 882 MB to 236 and 283 MB.

What trimming cannot return is the scraps left in each heap, so the server also keeps no
more heaps than it has cores: glibc makes up to eight a core, but no more threads than
cores run at any one moment. On 2 cores, with the four photos at once, that
took the server from 234 to 153 MB, and back-to-back requests, one or four at a time,
took 0.92-1.02 times as long (`benchmarks/server_memory.py`, and three alternating
runs of 12 requests of 1 MP and 12 MP photos, one and four at a time).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

#: glibc's ``mallopt`` parameter for the most heaps (arenas) malloc keeps.
M_ARENA_MAX = -8


def _glibc_function(name: str, argtypes: list[type]) -> Callable[..., int] | None:
    try:
        own_symbols = ctypes.CDLL(None)  # the C library's among them, where there is one
    except (OSError, TypeError):  # Windows has no such handle
        return None
    function = getattr(own_symbols, name, None)  # glibc only; musl and macOS lack these
    if function is not None:
        function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


_MALLOC_TRIM = _glibc_function("malloc_trim", [ctypes.c_size_t])
_MALLOPT = _glibc_function("mallopt", [ctypes.c_int, ctypes.c_int])
#: Whether :func:`limit_heaps` can do anything here (glibc only).
CAN_LIMIT_HEAPS = _MALLOPT is not None


def limit_heaps(threads: int) -> int | None:
    """Let malloc keep no more heaps than there are threads that can run at once: the
    server's costly ``threads`` or the cores it may use, the fewer. Call it before those
    threads start. The limit set, or None where the C library has no such setting."""
    if _MALLOPT is None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    heaps = max(1, min(threads, cores or 1))
    return heaps if _MALLOPT(M_ARENA_MAX, heaps) == 1 else None


def release_free_memory() -> None:
    """Return the C heaps' free pages to the system (glibc's ``malloc_trim``). It takes
    milliseconds after a big photo, so it runs once the response has been sent."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
