"""Reading and checking the multipart forms of the API, so handlers get clean values.

Every refusal here is an :class:`ApiError` with a stable code (``unsupported_media_type``,
``missing_field``, ``invalid_field``, ``upload_too_large``); the image itself is judged
later, by :mod:`memegen.imaging`, inside the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from werkzeug.datastructures import MultiDict

from memegen.captions import SEED_LIMIT, Caption
from memegen.imaging import over_limit
from memegen.render import STYLES
from memegen.typeset import UndrawableText, check_drawable
from memegen.web.errors import ApiError

FORMAT_BY_EXTENSION = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "gif": "gif"}
"""Extensions a meme URL may end in, and the ``format`` values a form may send."""
DEFAULT_FORMAT = "jpeg"
DEFAULT_STYLE = "classic"
MAX_TEXT_LENGTH = 200
"""Longer lines cannot be set legibly on a photo; refusing them beats shrinking to dust."""
MAX_RECENT = 10
"""How many ``recent`` captions a form may name: enough to stop a re-roll streak repeating,
few enough that a mood of 30 captions never runs out of fresh ones."""
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class MemeForm:
    """A checked ``POST /api/v1/memes`` form; ``None`` lines mean "let MemeGen choose"."""

    data: bytes
    top: str | None
    bottom: str | None
    seed: int | None
    style: str
    format: str
    recent: tuple[Caption, ...]


@dataclass(frozen=True)
class AnalyzeForm:
    """A checked ``POST /api/v1/analyze`` form."""

    data: bytes
    whole_image: bool


def meme_form(max_upload_bytes: int) -> MemeForm:
    """The current request's meme form, or the ApiError that says what is wrong with it."""
    data, form = _upload(max_upload_bytes)
    return MemeForm(
        data=data,
        top=_text(form, "top"),
        bottom=_text(form, "bottom"),
        seed=_seed(form),
        style=_style(form),
        format=_format(form),
        recent=_recent(form),
    )


def analyze_form(max_upload_bytes: int) -> AnalyzeForm:
    """The current request's analyze form, or the ApiError that says what is wrong with it."""
    data, form = _upload(max_upload_bytes)
    return AnalyzeForm(data=data, whole_image=_flag(form, "whole_image"))


def is_true(raw: str) -> bool:
    """Whether a query or form value means yes (``1``, ``true``, ``yes``, ``on``)."""
    return raw.strip().lower() in TRUE_WORDS


def _upload(max_upload_bytes: int) -> tuple[bytes, MultiDict[str, str]]:
    """The bytes of the ``image`` part (kept in memory) and the other fields."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the photo as multipart/form-data, the file in the field 'image'.",
        )
    upload = request.files.get("image")
    if upload is None and not request.files and not request.form and request.content_length:
        # Werkzeug drops a form it cannot parse, for one a part name or file name that is
        # not UTF-8: say so, rather than that the file is missing.
        raise ApiError(
            400,
            "missing_field",
            "The form could not be read, so it has no file in the field 'image'. "
            "Is it well-formed multipart/form-data, with UTF-8 names and file names?",
        )
    if upload is None:
        raise ApiError(400, "missing_field", "The form has no file in the field 'image'.")
    data = upload.read()
    if len(data) > max_upload_bytes:
        raise ApiError(
            413,
            "upload_too_large",
            over_limit(len(data), max_upload_bytes),
        )
    return data, request.form


def _text(form: MultiDict[str, str], name: str) -> str | None:
    """A caption line: absent means "let MemeGen choose"; an empty string means "none"."""
    value = form.get(name)
    if value is None:
        return None
    if len(value) > MAX_TEXT_LENGTH:
        raise ApiError(
            400, "invalid_field", f"'{name}' is longer than {MAX_TEXT_LENGTH} characters."
        )
    try:
        check_drawable(value)
    except UndrawableText as error:
        raise ApiError(400, "invalid_field", f"The {name} text {error}") from error
    return value


def _recent(form: MultiDict[str, str]) -> tuple[Caption, ...]:
    """The captions the client showed last, each sent as ``TOP | BOTTOM``, to pick around."""
    values = form.getlist("recent")
    if len(values) > MAX_RECENT:
        raise ApiError(
            400, "invalid_field", f"'recent' may be given at most {MAX_RECENT} times."
        )
    captions = []
    for value in values:
        sides = [side.strip() for side in value.split("|")]
        if len(sides) != 2 or any(len(side) > MAX_TEXT_LENGTH for side in sides):
            raise ApiError(
                400,
                "invalid_field",
                "Each 'recent' must be one caption as 'TOP | BOTTOM' (one '|',"
                f" each side at most {MAX_TEXT_LENGTH} characters).",
            )
        captions.append(Caption(*sides))
    return tuple(captions)


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
    style = form.get("style", "").strip().lower() or DEFAULT_STYLE
    if style not in STYLES:
        raise ApiError(400, "invalid_field", f"'style' must be one of: {', '.join(STYLES)}.")
    return style


def _format(form: MultiDict[str, str]) -> str:
    fmt = FORMAT_BY_EXTENSION.get(form.get("format", "").strip().lower() or DEFAULT_FORMAT)
    if fmt is None:
        raise ApiError(400, "invalid_field", "'format' must be one of: jpeg, png, webp, gif.")
    return fmt


def _flag(form: MultiDict[str, str], name: str) -> bool:
    raw = form.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ApiError(400, "invalid_field", f"'{name}' must be true or false.")
