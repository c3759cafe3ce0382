"""The Flask app: the page, the JSON API and their shared state, built by :func:`create_app`.

A factory (not a module-level app) so that each test, and each server, gets its own
settings, store and rate limiter, while the expensive :class:`Pipeline` can be shared.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Flask, Request, Response

from memegen.config import Settings
from memegen.imaging import EXTENSIONS
from memegen.pipeline import Pipeline
from memegen.storage import MemeStore
from memegen.web import api, pages
from memegen.web.conversions import Conversions
from memegen.web.errors import register_error_handlers
from memegen.web.ratelimit import RateLimiter
from memegen.web.state import EXTENSION_KEY, WebState
from memegen.web.workslots import WorkSlots

MULTIPART_OVERHEAD = 64 * 1024
"""Room above ``max_upload_bytes`` for multipart boundaries, headers and the text fields."""
CLEANUP_INTERVAL_SECONDS = 60.0

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Only our own assets may load: no CDN, no inline script (a second line against XSS)."""


class InMemoryRequest(Request):
    """A request whose file parts stay in memory instead of Werkzeug's temporary files.

    The body is already capped by ``MAX_CONTENT_LENGTH``, so memory use is bounded, and
    uploaded photos never touch the disk.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> Flask:
    """Build the app; ``settings`` default to the environment, ``pipeline`` to a new one.

    Starts the store's cleanup thread; stop it with
    ``app.extensions["memegen"].store.stop_cleanup()`` when the app is thrown away early.
    """
    settings = settings or Settings.from_env()
    pipeline = pipeline or Pipeline(settings)
    store = MemeStore(
        settings.storage_dir, settings.meme_ttl_seconds, suffixes=tuple(EXTENSIONS.values())
    )
    store.start_cleanup(CLEANUP_INTERVAL_SECONDS)

    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + MULTIPART_OVERHEAD
    app.json.sort_keys = False
    app.extensions[EXTENSION_KEY] = WebState(
        settings=settings,
        pipeline=pipeline,
        store=store,
        limiter=RateLimiter(settings.rate_limit_per_minute),
        conversions=Conversions(),
        work=WorkSlots(running=settings.threads, waiting=settings.threads),
    )
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    register_error_handlers(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response
