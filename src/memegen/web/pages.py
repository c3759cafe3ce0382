"""The one HTML page (the app itself runs in ``static/app.js``) and the health check."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from memegen import LABELS, __version__
from memegen.imaging import describe_size
from memegen.render import STYLES
from memegen.web.errors import describe_duration
from memegen.web.forms import DEFAULT_STYLE
from memegen.web.state import state

#: What each style looks like, in a few words, for the page's style picker.
STYLE_HINTS = {
    "classic": "White outlined type",
    "modern": "Caption band on top",
    "poster": "Black poster frame",
    "faces": "A word on each face",
}

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    """The page; limits are passed in so it can refuse a too-big file before uploading it."""
    settings = state().settings
    return render_template(
        "index.html",
        labels=LABELS,
        styles=[(name, STYLE_HINTS.get(name, "")) for name in STYLES],
        default_style=DEFAULT_STYLE,
        max_upload_bytes=settings.max_upload_bytes,
        max_upload_size=describe_size(settings.max_upload_bytes),
        meme_lifetime=describe_duration(settings.meme_ttl_seconds),
        version=__version__,
    )


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness for load balancers and for tests waiting on a fresh server."""
    response = jsonify({"status": "ok", "version": __version__})
    response.headers["Cache-Control"] = "no-store"
    return response
