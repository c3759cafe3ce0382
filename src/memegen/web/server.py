"""Run the app under waitress, the production WSGI server (pure Python, no C build)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import waitress
from flask import Flask

from memegen.web.memory import limit_heaps
from memegen.web.state import EXTENSION_KEY
from memegen.web.workslots import WorkSlots

log = logging.getLogger("memegen.web")

DRAIN_SECONDS = 60
"""How long a stopping server lets running and waiting requests finish (a request waits
up to 30 s for a work slot, then takes seconds)."""
BODY_HEADROOM = 2
"""Waitress reads a whole body before the app sees it. Bodies up to this many times the
app's own limit still reach Flask, which answers 413 as JSON; only bigger ones are cut off
by waitress itself (413, plain text) before they cost more memory."""


def serve(app: Flask, host: str, port: int) -> bool:
    """Serve ``app`` until interrupted (Ctrl-C) or asked to stop (SIGTERM, as systemd,
    ``docker stop`` and Kubernetes ask). False if it stopped with requests unfinished.

    Request bodies are buffered in memory (``inbuf_overflow`` = the body limit), because
    waitress would otherwise spool uploads over 512 KB to a temporary file, and uploaded
    photos must never touch the disk. The threads are enough for every costly request
    the app lets run or wait, and a few more for everything else; malloc keeps a heap for
    each costly request that can run at once, no more (:func:`limit_heaps`).
    """
    max_body = app.config["MAX_CONTENT_LENGTH"] * BODY_HEADROOM
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    drain = _Drain(app.extensions[EXTENSION_KEY].work)
    limit_heaps(drain.work.running)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, drain.on_sigterm) if in_main_thread else None
    try:
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=drain.work.threads_needed,
            max_request_body_size=max_body,
            inbuf_overflow=max_body,
            ident="memegen",
            clear_untrusted_proxy_headers=True,
            # Keep reading a connection while its request waits or runs, so that a client
            # that hangs up is noticed (``waitress.client_disconnected``) and its photo,
            # still in line for a work slot, is dropped rather than made for nobody.
            channel_request_lookahead=1,
        )
    finally:
        drain.stopped = True
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return drain.finished


class _Drain:
    """Stopping on SIGTERM without dropping work: new costly requests get 503 while those
    running or in line finish (up to ``DRAIN_SECONDS``), then waitress is stopped as by
    Ctrl-C. Waitress alone waits only 5 s for its threads, and dropped an 8 s request."""

    def __init__(self, work: WorkSlots) -> None:
        self.work = work
        self.started = False
        self.finished = True
        self.stopped = False  # waitress has stopped (Ctrl-C during the drain, say)

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.started:  # the drain is over, or asked again: stop now
            raise KeyboardInterrupt
        self.started = True
        self.work.close()
        threading.Thread(target=self._stop_when_idle, name="memegen-drain", daemon=True).start()

    def _stop_when_idle(self) -> None:
        self.finished = self.work.wait_idle(DRAIN_SECONDS)
        if not self.finished:
            log.warning("stopping with requests unfinished after %d s", DRAIN_SECONDS)
        if not self.stopped:
            os.kill(os.getpid(), signal.SIGTERM)  # back in the main thread: stop
