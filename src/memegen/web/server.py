"""Run the app under waitress, the production WSGI server (pure Python, no C build)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import waitress
from flask import Flask

from memegen.web.state import EXTENSION_KEY

BODY_HEADROOM = 2
"""Waitress reads a whole body before the app sees it. Bodies up to this many times the
app's own limit still reach Flask, which answers 413 as JSON; only bigger ones are cut off
by waitress itself (413, plain text) before they cost more memory."""


def serve(app: Flask, host: str, port: int) -> None:
    """Serve ``app`` until interrupted (Ctrl-C) or asked to stop (SIGTERM, as systemd,
    ``docker stop`` and Kubernetes ask): either way, requests in progress are finished.

    Request bodies are buffered in memory (``inbuf_overflow`` = the body limit), because
    waitress would otherwise spool uploads over 512 KB to a temporary file, and uploaded
    photos must never touch the disk. The threads are enough for every costly request
    the app lets run or wait, and a few more for everything else.
    """
    max_body = app.config["MAX_CONTENT_LENGTH"] * BODY_HEADROOM
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_as_if_interrupted)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=app.extensions[EXTENSION_KEY].work.threads_needed,
        max_request_body_size=max_body,
        inbuf_overflow=max_body,
        ident="memegen",
        clear_untrusted_proxy_headers=True,
    )


def _stop_as_if_interrupted(signum: int, frame: FrameType | None) -> None:
    """Waitress finishes the requests in progress on KeyboardInterrupt, and only then."""
    raise KeyboardInterrupt
