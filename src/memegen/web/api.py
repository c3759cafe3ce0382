"""The JSON API, ``/api/v1``: make a meme, fetch it, analyse a photo, describe itself.

A thin shell around :class:`memegen.pipeline.Pipeline`: :mod:`memegen.web.forms` checks
the form, the upload's bytes (never written to disk) go to the pipeline, the finished
meme goes to the store. Anything that goes wrong becomes an error from
:mod:`memegen.web.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, after_this_request, g, jsonify, request, url_for

from memegen.imaging import ANIMATED_FORMATS, EXTENSIONS, FORMATS, transcode
from memegen.web import forms
from memegen.web.errors import ApiError, describe_duration, log
from memegen.web.memory import release_free_memory
from memegen.web.openapi import build_openapi
from memegen.web.ratelimit import RateLimited, client_key
from memegen.web.state import state
from memegen.web.workslots import Busy

if TYPE_CHECKING:
    from memegen.pipeline import Meme
    from memegen.storage import StoredMeme

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _rate_limit_posts() -> None:
    """Every POST is costly, and counts against the client's per-minute budget."""
    if request.method == "POST":
        _rate_limit()


def _rate_limit() -> None:
    """Count one costly request against the client's budget, or answer 429."""
    limiter = state().limiter
    key = client_key(request.remote_addr)
    try:
        g.counted_hit = (key, limiter.hit(key))
    except RateLimited as refusal:
        seconds = int(refusal.retry_after) + 1
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests (the limit is {limiter.limit} a minute); try again in {seconds} s.",
            {"Retry-After": str(seconds)},
        ) from None


@bp.post("/memes")
def create_meme() -> tuple[Response, int, dict[str, str]]:
    """Make a meme from the uploaded photo, store it, and describe it (201 + Location)."""
    app_state = state()
    with _work_slot():
        form = forms.meme_form(app_state.settings.max_upload_bytes)
        meme = app_state.pipeline.make_meme(
            form.data,
            top=form.top,
            bottom=form.bottom,
            seed=form.seed,
            style=form.style,
            animate=form.format in ANIMATED_FORMATS,
            recent=form.recent,
        )
        _stop_if_the_client_left("before the meme was kept")
        stored = _store(meme.encode(form.format), EXTENSIONS[form.format])
    image_url = url_for("api.get_meme", meme_id=stored.id, ext=stored.suffix)
    width, height = meme.image.size
    body = {
        "id": stored.id,
        "image_url": image_url,
        "format": form.format,
        "width": width,
        "height": height,
        "source": {"width": meme.analysis.width, "height": meme.analysis.height},
        "faces": _faces_on_meme(meme),
        "caption": {"top": meme.caption.top, "bottom": meme.caption.bottom},
        "mood": meme.mood,
        "frames": max(1, len(meme.frames)),
        "expires_at": _iso(stored.expires_at),
    }
    return jsonify(body), 201, {"Location": image_url, "Cache-Control": "no-store"}


@contextmanager
def _work_slot() -> Iterator[None]:
    """Hold one of the server's slots for costly work, or answer 503 ``server_busy``. A
    request refused at once gives back the rate-limit hit it was counted for (it cost the
    server nothing); one that held a place in line until it gave up keeps it, or a client
    could hold the line for free. Work done, the memory it freed goes back to the system
    after the response is sent."""
    app_state = state()
    try:
        with app_state.work.slot():
            _stop_if_the_client_left()
            after_this_request(_release_memory_when_sent)
            yield
    except Busy as busy:
        if not busy.waited and "counted_hit" in g:
            app_state.limiter.take_back(*g.pop("counted_hit"))
        raise ApiError(
            503,
            "server_busy",
            "The server is busy with other photos; please try again in a few seconds.",
            {"Retry-After": "5"},
        ) from None


def _stop_if_the_client_left(moment: str = "before its turn") -> None:
    """Drop a request whose client hung up (while it waited for its turn, or while its
    meme was made): nobody would get the meme, so it is neither made nor kept. Only
    waitress tells (see ``serve``); other servers always go on."""
    client_disconnected = request.environ.get("waitress.client_disconnected")
    if client_disconnected is not None and client_disconnected():
        log.info("%s %s dropped: the client hung up %s", request.method, request.path, moment)
        raise ApiError(499, "client_closed_request", f"The connection was closed {moment}.")


def _release_memory_when_sent(response: Response) -> Response:
    response.call_on_close(release_free_memory)
    return response


def _store(data: bytes, suffix: str) -> StoredMeme:
    """Save the meme, or a 503 when the disk will not take it (full, read-only, gone):
    a condition of the server, not a bug, logged in one line rather than a traceback."""
    store = state().store
    try:
        return store.save(data, suffix)
    except OSError as error:
        log.error("cannot store a meme in %s: %s", store.directory, error.strerror or error)
        raise ApiError(
            503,
            "storage_unavailable",
            "The server cannot store memes right now; please try again later.",
            {"Retry-After": "60"},
        ) from None


@bp.get("/memes/<meme_id>.<ext>")
def get_meme(meme_id: str, ext: str) -> Response:
    """The meme's image; an extension other than the stored one converts it on the fly,
    so one meme can be downloaded as PNG and as JPEG (an animation stays one as GIF or
    WebP, and is its first frame as PNG or JPEG)."""
    app_state = state()
    store = app_state.store
    fmt = forms.FORMAT_BY_EXTENSION.get(ext.lower())
    stored = store.get(meme_id) if fmt else None
    if fmt is None or stored is None:
        raise _no_such_meme()
    # The bytes behind an id never change, so the id and the format asked for tag them: a
    # client that has the meme already gets 304 before it is read, let alone converted.
    etag = f"{stored.id}.{EXTENSIONS[fmt]}"
    headers = {
        # The id is the secret: cache privately, for exactly as long as the meme lives.
        "Cache-Control": f"private, max-age={store.seconds_left(stored)}, immutable",
    }
    if request.if_none_match.contains_weak(etag):
        not_modified = Response(status=304, headers=headers)
        not_modified.set_etag(etag)
        return not_modified
    data = store.read(stored)
    if data is None:  # the sweeper removed it since
        raise _no_such_meme()
    if forms.FORMAT_BY_EXTENSION.get(stored.suffix) != fmt:
        data = app_state.conversions.get(stored.id, fmt, partial(_convert, data, fmt))
    response = Response(data, mimetype=FORMATS[fmt], headers=headers)
    if forms.is_true(request.args.get("download", "")):
        response.headers["Content-Disposition"] = (
            f'attachment; filename="meme-{stored.id}.{EXTENSIONS[fmt]}"'
        )
    response.set_etag(etag)
    return response.make_conditional(request)


def _no_such_meme() -> ApiError:
    return ApiError(
        404,
        "meme_not_found",
        "There is no such meme, or it has expired "
        f"(memes are kept {describe_duration(state().store.ttl_seconds)}).",
    )


def _convert(data: bytes, fmt: str) -> bytes:
    """The meme re-encoded for download. For an animation that costs as much as making it,
    so a conversion not kept counts against the rate limit and takes a work slot."""
    _rate_limit()
    with _work_slot():
        return transcode(data, fmt)


@bp.post("/analyze")
def analyze() -> Response:
    """Faces and expression scores of the uploaded photo, without making a meme."""
    app_state = state()
    with _work_slot():
        form = forms.analyze_form(app_state.settings.max_upload_bytes)
        analysis = app_state.pipeline.analyze(form.data, whole_image=form.whole_image)
    response = jsonify(analysis.to_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API, limits filled in from the settings."""
    return jsonify(build_openapi(state().settings))


def _faces_on_meme(meme: Meme) -> list[dict[str, Any]]:
    """The faces with boxes in the meme's pixels, which differ from the photo's when the
    output size is capped or a small photo enlarged, and shifted where a style puts a band
    or a frame around the photo: clients draw the boxes over the meme, not over the upload."""
    faces = meme.analysis.to_dict()["faces"]
    left, top, right, bottom = meme.photo_box
    scale_x = (right - left) / meme.analysis.width
    scale_y = (bottom - top) / meme.analysis.height
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        face["box"] = [
            left + round(x1 * scale_x),
            top + round(y1 * scale_y),
            left + round(x2 * scale_x),
            top + round(y2 * scale_y),
        ]
    return faces


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
