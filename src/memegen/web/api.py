"""The JSON API, ``/api/v1``: make a meme, fetch it, analyse a photo, describe itself.

A thin shell around :class:`memegen.pipeline.Pipeline`: it checks the form, hands the
upload's bytes (never written to disk) to the pipeline, stores the finished meme and
answers JSON. Anything that goes wrong becomes an error from :mod:`memegen.web.errors`.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request, url_for
from PIL import Image
from werkzeug.datastructures import MultiDict

from memegen.imaging import EXTENSIONS, FORMATS, encode
from memegen.web.errors import ApiError
from memegen.web.openapi import build_openapi
from memegen.web.state import state

if TYPE_CHECKING:
    from memegen.pipeline import Meme

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORMAT_BY_EXTENSION = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}
"""Extensions a meme URL may end in (and ``format`` values a form may send)."""
DEFAULT_FORMAT = "jpeg"
MAX_TEXT_LENGTH = 200
"""Longer lines cannot be set legibly on a photo; refusing them beats shrinking to dust."""
SEED_LIMIT = 2**63
STYLE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"", "0", "false", "no", "off"}


@bp.before_request
def _rate_limit() -> None:
    """Count the expensive requests (every POST) against the client's per-minute budget."""
    if request.method != "POST":
        return
    limiter = state().limiter
    retry_after = limiter.hit(request.remote_addr or "unknown")
    if retry_after is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests: the limit is {limiter.limit} a minute. "
            f"Try again in {int(retry_after) + 1} s.",
            {"Retry-After": str(int(retry_after) + 1)},
        )


@bp.post("/memes")
def create_meme() -> tuple[Response, int, dict[str, str]]:
    """Make a meme from the uploaded photo, store it, and describe it (201 + Location)."""
    data, form = _read_upload()
    top = _text(form, "top")
    bottom = _text(form, "bottom")
    seed = _seed(form)
    style = _style(form)
    fmt = _format(form)
    app_state = state()
    meme = app_state.pipeline.make_meme(data, top=top, bottom=bottom, seed=seed, style=style)
    stored = app_state.store.save(encode(meme.image, fmt), EXTENSIONS[fmt])
    image_url = url_for("api.get_meme", meme_id=stored.id, ext=stored.suffix)
    width, height = meme.image.size
    body = {
        "id": stored.id,
        "image_url": image_url,
        "format": fmt,
        "width": width,
        "height": height,
        "source": {"width": meme.analysis.width, "height": meme.analysis.height},
        "faces": _faces_on_meme(meme),
        "caption": {"top": meme.caption.top, "bottom": meme.caption.bottom},
        "mood": meme.mood,
        "expires_at": _iso(stored.expires_at),
    }
    return jsonify(body), 201, {"Location": image_url, "Cache-Control": "no-store"}


@bp.get("/memes/<meme_id>.<ext>")
def get_meme(meme_id: str, ext: str) -> Response:
    """The meme's image; another extension than the stored one converts it on the fly."""
    fmt = FORMAT_BY_EXTENSION.get(ext.lower())
    store = state().store
    stored = store.get(meme_id) if fmt else None
    data = store.read(stored) if stored else None
    if stored is None or data is None or fmt is None:
        minutes = max(1, store.ttl_seconds // 60)
        raise ApiError(
            404,
            "meme_not_found",
            f"There is no such meme, or it has expired (memes are kept {minutes} min).",
        )
    if FORMAT_BY_EXTENSION[stored.suffix] != fmt:
        with Image.open(io.BytesIO(data)) as image:
            data = encode(image, fmt)
    response = Response(data, mimetype=FORMATS[fmt])
    # The bytes behind an id never change, and the id is the secret: cache privately, for
    # exactly as long as the meme lives.
    response.headers["Cache-Control"] = f"private, max-age={store.seconds_left(stored)}, immutable"
    if request.args.get("download", "").lower() in TRUE_WORDS:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="meme-{stored.id}.{EXTENSIONS[fmt]}"'
        )
    response.add_etag()
    return response.make_conditional(request)


@bp.post("/analyze")
def analyze() -> Response:
    """Faces and expression scores of the uploaded photo, without making a meme."""
    data, form = _read_upload()
    whole_image = _flag(form, "whole_image")
    analysis = state().pipeline.analyze(data, whole_image=whole_image)
    response = jsonify(analysis.to_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API, limits filled in from the settings."""
    return jsonify(build_openapi(state().settings))


def _read_upload() -> tuple[bytes, MultiDict[str, str]]:
    """The bytes of the ``image`` part and the other form fields, checked for shape."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the photo as multipart/form-data, the file in the field 'image'.",
        )
    upload = request.files.get("image")
    if upload is None:
        raise ApiError(400, "missing_field", "The form has no file in the field 'image'.")
    data = upload.read()
    limit = state().settings.max_upload_bytes
    if len(data) > limit:
        raise ApiError(
            413,
            "upload_too_large",
            f"The file is {len(data) / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB.",
        )
    return data, request.form


def _text(form: MultiDict[str, str], name: str) -> str | None:
    """A caption line: absent means "let MemeGen choose"; an empty string means "none"."""
    value = form.get(name)
    if value is not None and len(value) > MAX_TEXT_LENGTH:
        raise ApiError(
            400, "invalid_field", f"'{name}' is longer than {MAX_TEXT_LENGTH} characters."
        )
    return value


def _seed(form: MultiDict[str, str]) -> int | None:
    raw = form.get("seed", "").strip()
    if not raw:
        return None
    try:
        seed = int(raw)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_LIMIT:
        raise ApiError(400, "invalid_field", "'seed' must be a whole number from 0 to 2^63-1.")
    return seed


def _style(form: MultiDict[str, str]) -> str:
    style = form.get("style", "").strip().lower() or "classic"
    if STYLE_PATTERN.fullmatch(style) is None:
        raise ApiError(400, "invalid_field", f"'style' {style[:40]!r} is not a style name.")
    return style


def _format(form: MultiDict[str, str]) -> str:
    raw = form.get("format", "").strip().lower() or DEFAULT_FORMAT
    fmt = FORMAT_BY_EXTENSION.get(raw)
    if fmt is None:
        raise ApiError(400, "invalid_field", "'format' must be one of: jpeg, png, webp.")
    return fmt


def _flag(form: MultiDict[str, str], name: str) -> bool:
    raw = form.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ApiError(400, "invalid_field", f"'{name}' must be true or false.")


def _faces_on_meme(meme: Meme) -> list[dict]:
    """The faces with boxes in the meme's pixels, which are fewer than the photo's when the
    output size is capped; clients draw the boxes over the meme, not over the upload."""
    faces = meme.analysis.to_dict()["faces"]
    width, height = meme.image.size
    scale_x = width / meme.analysis.width
    scale_y = height / meme.analysis.height
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        face["box"] = [
            round(x1 * scale_x),
            round(y1 * scale_y),
            round(x2 * scale_x),
            round(y2 * scale_y),
        ]
    return faces


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z"
    )
