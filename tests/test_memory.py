"""How the server keeps its C heaps small (:mod:`memegen.web.memory`), checked in a fresh
interpreter, where no test has set malloc's limits yet."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from memegen.web import memory

pytestmark = pytest.mark.skipif(not memory.CAN_LIMIT_HEAPS, reason="needs glibc's mallopt")

# Four threads allocate at the same moment, then glibc's malloc_info counts the heaps.
HEAPS_AFTER_FOUR_THREADS = """
import ctypes, sys, tempfile, threading
from memegen.web.memory import limit_heaps
if len(sys.argv) > 1:
    limit_heaps(int(sys.argv[1]))
together = threading.Barrier(4)
def allocate():
    together.wait()
    blocks = [bytearray(1000) for _ in range(20000)]
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(report.name).read().count("<heap nr="))
"""


def run_python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, check=True)
    return done.stdout


def heaps_after_four_threads(*limit: str) -> int:
    return int(run_python(HEAPS_AFTER_FOUR_THREADS, *limit))


def test_malloc_keeps_no_more_heaps_than_the_limit() -> None:
    assert heaps_after_four_threads() > 1, "without a limit, threads allocating at once spread"
    assert heaps_after_four_threads("1") == 1


def test_the_heap_limit_is_the_threads_or_the_cores_whichever_is_fewer() -> None:
    limits = run_python("from memegen.web.memory import limit_heaps\n"
                        "print(limit_heaps(10_000), limit_heaps(1), limit_heaps(0))")
    cores = len(os.sched_getaffinity(0))
    assert limits.split() == [str(cores), "1", "1"], "and one heap at least"
