"""A small in-memory, per-client sliding-window rate limit.

Making a meme costs real CPU, so one client must not be able to starve the others. The
state lives in this process only: enough for one waitress process; several processes or
hosts would need a shared store. It is keyed by the socket's peer address (see
:func:`client_key`); behind a reverse proxy, configure the proxy (or waitress's
``trusted_proxy``) so that address is the real client's.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

#: Clients remembered at most (about 1 KB each): past this, the one idle longest is
#: forgotten, so a flood from many addresses cannot grow the table without bound.
MAX_CLIENTS = 100_000


def client_key(address: str | None) -> str:
    """The client an address belongs to: an IPv4 address, or an IPv6 address's /64, which
    one subscriber usually holds whole (counting each of its addresses apart would give
    one machine 2^64 budgets)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class RateLimited(Exception):
    """Over the limit; ``retry_after`` seconds until a hit would be allowed."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.1f} s")
        self.retry_after = retry_after


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds for each key; ``limit <= 0`` disables it."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def hit(self, key: str) -> float:
        """Count one request for ``key`` and return the time it was counted at, which
        :meth:`take_back` needs; raise :class:`RateLimited` if ``key`` is over the limit."""
        now = self._clock()
        if self.limit <= 0:
            return now
        start = now - self.window
        with self._lock:
            if now >= self._next_prune:
                self._prune(start)
                self._next_prune = now + self.window
            hits = self._hits.setdefault(key, deque())
            self._hits.move_to_end(key)
            if len(self._hits) > self.max_clients:
                self._hits.popitem(last=False)
            while hits and hits[0] <= start:
                hits.popleft()
            if len(hits) >= self.limit:
                raise RateLimited(max(hits[0] - start, 0.0))
            hits.append(now)
            return now

    def take_back(self, key: str, at: float) -> None:
        """Forget the hit ``key`` was counted for at ``at`` (what :meth:`hit` returned): for
        a request that was turned away before any work was done, so being refused does not
        spend the budget. Naming the hit matters when one client has several requests in
        flight: only the refused one's comes back. A hit already out of the window, or
        never counted, is left as it is."""
        with self._lock:
            hits = self._hits.get(key)
            if hits and at in hits:
                hits.remove(at)

    def _prune(self, start: float) -> None:
        """Forget clients idle for a whole window, so memory follows active clients only."""
        idle = [key for key, hits in self._hits.items() if not hits or hits[-1] <= start]
        for key in idle:
            del self._hits[key]
