"""How many costly requests (making a meme, reading a photo, converting an animation) run
at once, and how many may wait for a turn.

Waitress hands requests to its threads first come, first served. Without a bound, a
burst of uploads took every thread and the page and ``/healthz`` queued behind them for
seconds (14 s with 16 uploads of 40 MP photos), so a load balancer would have marked a
busy server dead. With one, costly requests hold at most ``running + waiting`` threads,
the server runs a few more, and a request that finds no turn is answered 503 at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Threads beyond the costly requests' own, for the page, static files and health checks.
SPARE_THREADS = 2


class Busy(Exception):
    """No turn came: the waiting line was full or the server is stopping (``waited`` False),
    or no slot freed in time (``waited`` True: the request held a place in line)."""

    def __init__(self, waited: bool = False) -> None:
        super().__init__()
        self.waited = waited


class WorkSlots:
    """``running`` slots for costly work; up to ``waiting`` requests wait ``wait_seconds``
    for one, and any more are refused. Thread-safe."""

    def __init__(self, running: int, waiting: int, wait_seconds: float = 30.0) -> None:
        self.running = running
        self.waiting = waiting
        self.wait_seconds = wait_seconds
        self._busy = 0
        self._in_line = 0
        self._closed = False
        self._condition = threading.Condition()

    @property
    def threads_needed(self) -> int:
        """Server threads for every costly request that may hold one, plus the spares."""
        return self.running + self.waiting + SPARE_THREADS

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the block; raise :class:`Busy` if none comes in time."""
        self._take()
        try:
            yield
        finally:
            with self._condition:
                self._busy -= 1
                self._condition.notify_all()  # the line, and a wait for idle

    def close(self) -> None:
        """Take no new work (it is refused as :class:`Busy`); what runs or waits in line
        goes on. For a server that is stopping."""
        with self._condition:
            self._closed = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing runs or waits in line; False if some still did at ``timeout``."""
        with self._condition:
            return self._condition.wait_for(lambda: not (self._busy or self._in_line), timeout)

    def _take(self) -> None:
        with self._condition:
            if self._closed:
                raise Busy
            if self._busy < self.running:
                self._busy += 1
                return
            if self._in_line >= self.waiting:
                raise Busy
            self._in_line += 1
            try:
                if not self._condition.wait_for(lambda: self._busy < self.running,
                                                self.wait_seconds):
                    raise Busy(waited=True)
                self._busy += 1
            finally:
                self._in_line -= 1
                self._condition.notify_all()
