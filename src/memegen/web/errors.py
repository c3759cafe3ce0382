"""Every error leaves the app as JSON ``{"error": {"code", "message"}}`` with its real status.

Clients (the page included) branch on ``code`` and show ``message`` to people, so both
must be stable and free of internals: unexpected exceptions are logged here with their
traceback and answered with a generic 500 that names nothing of the server.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from memegen.imaging import ImageError, describe_size
from memegen.web.state import EXTENSION_KEY

log = logging.getLogger("memegen.web")

HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    413: ("upload_too_large", "The upload is larger than the server accepts."),
    415: ("unsupported_media_type", "Send the photo as multipart/form-data."),
    429: ("rate_limited", "Too many requests; wait a moment and try again."),
    500: ("internal_error", "Something went wrong on our side; please try again."),
}
"""Stable code and human message for the HTTP errors Werkzeug raises on our behalf."""


class ApiError(Exception):
    """An error the API means to answer with: a stable ``code``, a ``status`` and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The one JSON error shape, so no handler can drift from the contract."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    # Errors depend on the moment (limits, expiry): never let a cache replay one.
    response.headers["Cache-Control"] = "no-store"
    return response


def register_error_handlers(app: Flask) -> None:
    """Install handlers so no HTML error page or traceback can ever reach a client."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(ImageError)
    def _image_error(error: ImageError) -> Response:
        return error_response(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code, message = HTTP_CODES.get(status, (_slug(error.name), error.description or ""))
        if status == 413:
            message = _too_large_message()
        # Keep headers that carry meaning (Allow on 405); the body is ours, not Werkzeug's.
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() not in ("content-type", "content-length")
        }
        return error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return error_response(500, *HTTP_CODES[500])


def _too_large_message() -> str:
    """Why Werkzeug refused the body: too many bytes in all, or, for a body within that
    limit, a text field over Flask's form memory limit or too many parts (telling that
    sender the whole upload is over the upload limit would be false)."""
    config = current_app.config
    length = request.content_length
    if length is not None and length <= config["MAX_CONTENT_LENGTH"]:
        field_limit = describe_size(config["MAX_FORM_MEMORY_SIZE"])
        return (
            f"A text field of the form is larger than {field_limit}, "
            f"or the form has more than {config['MAX_FORM_PARTS']:,} parts."
        )
    limit = current_app.extensions[EXTENSION_KEY].settings.max_upload_bytes
    return f"The upload is larger than the {describe_size(limit)} limit."


def describe_duration(seconds: int) -> str:
    """How long memes live, for people: "45 seconds", "1 minute", "60 minutes"."""
    if seconds < 60:
        return f"{seconds} second" + ("" if seconds == 1 else "s")
    minutes = seconds // 60
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def _slug(name: str) -> str:
    return "_".join(name.lower().split())
