"""Run the app under waitress, the production WSGI server (pure Python, no C build)."""

from __future__ import annotations

import logging

import waitress
from flask import Flask

BODY_HEADROOM = 2
"""Waitress reads a whole body before the app sees it. Bodies up to this many times the
app's own limit still reach Flask, which answers 413 as JSON; only bigger ones are cut off
by waitress itself (413, plain text) before they cost more memory."""


def serve(app: Flask, host: str, port: int, threads: int) -> None:
    """Serve ``app`` until interrupted.

    Request bodies are buffered in memory (``inbuf_overflow`` = the body limit), because
    waitress would otherwise spool uploads over 512 KB to a temporary file, and uploaded
    photos must never touch the disk.
    """
    max_body = app.config["MAX_CONTENT_LENGTH"] * BODY_HEADROOM
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=max_body,
        inbuf_overflow=max_body,
        ident="memegen",
        clear_untrusted_proxy_headers=True,
    )
