"""The OpenAPI 3.1 document for ``/api/v1``, built in code so the limits it states are the
limits the running server enforces (they come from :class:`Settings`)."""

from __future__ import annotations

from typing import Any

from memegen import LABELS, __version__
from memegen.captions import MOODS, SEED_LIMIT
from memegen.config import Settings
from memegen.imaging import declared_pixel_limit
from memegen.pipeline import GROUP_MIN_FACES, MIXED_TOP_BELOW
from memegen.render import STYLES
from memegen.web.forms import (
    DEFAULT_FORMAT,
    DEFAULT_STYLE,
    FORMAT_BY_EXTENSION,
    MAX_RECENT,
    MAX_TEXT_LENGTH,
)

REF = "#/components/schemas/"


def _error(description: str, example_code: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": REF + "Error"},
                "example": {"error": {"code": example_code, "message": "…"}},
            }
        },
    }


def _upload_errors(stores: bool) -> dict[str, Any]:
    return {
        "400": _error(
            "Missing `image` field, bad form value, or empty upload "
            "(`missing_field`, `invalid_field`, `empty_upload`).",
            "missing_field",
        ),
        "413": _error(
            "The upload is over the byte limit (`upload_too_large`) or the picture has too "
            "many pixels (`image_too_large`).",
            "image_too_large",
        ),
        "415": _error(
            "The body is not multipart/form-data (`unsupported_media_type`) or the file is "
            "not an image MemeGen can read (`unsupported_image`).",
            "unsupported_image",
        ),
        "422": _error(
            "The image is damaged or cut short (`corrupt_image`) or too small (`image_too_small`).",
            "corrupt_image",
        ),
        "429": _retry_later("Too many requests from this client (`rate_limited`).",
                            "rate_limited"),
        "500": _error("Unexpected server error (`internal_error`).", "internal_error"),
        "503": _busy(stores),
    }


def _retry_later(description: str, example_code: str) -> dict[str, Any]:
    return {
        **_error(description, example_code),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next request.",
                "schema": {"type": "integer"},
            }
        },
    }


def _busy(stores: bool = True) -> dict[str, Any]:
    """The 503 of a costly request; one that ``stores`` a meme may also find no room."""
    busy = ("Every slot for costly work is taken and the line for one is full, or the "
            "server is stopping (`server_busy`; not counted against the rate limit)")
    storage = ", or the server cannot store memes (`storage_unavailable`)" if stores else ""
    return _retry_later(f"{busy}{storage}.", "server_busy")


def _schemas(settings: Settings) -> dict[str, Any]:
    scores = {
        "type": "object",
        "description": "Probability of each expression; they sum to 1.",
        "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in LABELS},
        "required": list(LABELS),
        "additionalProperties": False,
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "description": "Stable, machine-readable reason.",
                            "examples": ["empty_upload", "corrupt_image", "meme_not_found"],
                        },
                        "message": {
                            "type": "string",
                            "description": "Human-readable explanation, safe to show.",
                        },
                    },
                }
            },
        },
        "Face": {
            "type": "object",
            "required": ["box", "score", "expression", "scores"],
            "properties": {
                "box": {
                    "type": "array",
                    "description": "[x1, y1, x2, y2] in pixels of the image described.",
                    "items": {"type": "integer"},
                    "minItems": 4,
                    "maxItems": 4,
                },
                "score": {
                    "type": "number",
                    "description": "Detector confidence that this is a face.",
                },
                "expression": {"type": "string", "enum": list(LABELS)},
                "scores": scores,
            },
        },
        "Analysis": {
            "type": "object",
            "required": ["width", "height", "faces"],
            "properties": {
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "faces": {
                    "type": "array",
                    "description": "Every face found, largest first; empty when none.",
                    "items": {"$ref": REF + "Face"},
                },
            },
        },
        "Caption": {
            "type": "object",
            "required": ["top", "bottom"],
            "properties": {"top": {"type": "string"}, "bottom": {"type": "string"}},
        },
        "Meme": {
            "type": "object",
            "required": [
                "id",
                "image_url",
                "format",
                "width",
                "height",
                "source",
                "faces",
                "caption",
                "mood",
                "frames",
                "expires_at",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
                "image_url": {
                    "type": "string",
                    "description": "Absolute path of the meme image.",
                    "examples": ["/api/v1/memes/3q2-7wHxkL0oVt1aZc9f_A.jpg"],
                },
                "format": {"type": "string", "enum": sorted(set(FORMAT_BY_EXTENSION.values()))},
                "frames": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Frames in the meme: above 1 when an animated upload was"
                    " asked for as gif or webp.",
                },
                "width": {"type": "integer", "description": "Width of the meme image."},
                "height": {"type": "integer", "description": "Height of the meme image."},
                "source": {
                    "type": "object",
                    "description": "Size of the uploaded photo, upright.",
                    "required": ["width", "height"],
                    "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
                },
                "faces": {
                    "type": "array",
                    "description": "Faces, largest first, boxes in pixels of the meme image.",
                    "items": {"$ref": REF + "Face"},
                },
                "caption": {"$ref": REF + "Caption"},
                "mood": {
                    "type": "string",
                    "enum": list(MOODS),
                    "description": "What the caption was chosen for: the main face's"
                    " expression; `noface` when there is none; `group` from"
                    f" {GROUP_MIN_FACES} faces; `mixed` when the main face's likeliest"
                    f" expression is under {MIXED_TOP_BELOW}.",
                    "examples": ["happy", "noface", "mixed"],
                },
                "expires_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": f"UTC time after which the image is gone "
                    f"({settings.meme_ttl_seconds} s after creation).",
                },
            },
        },
        "MemeForm": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "description": "The photo: JPEG, HEIC, PNG, GIF, WebP, BMP or TIFF, "
                    f"at most {settings.max_upload_bytes} bytes and {settings.max_pixels} pixels "
                    "(a baseline JPEG's pixels as it is decoded, at reduced scale); any "
                    f"picture's declared size at most {declared_pixel_limit():,} pixels.",
                },
                "top": {
                    "type": "string",
                    "maxLength": MAX_TEXT_LENGTH,
                    "description": "Top line. Omit to let MemeGen choose; empty for none.",
                },
                "bottom": {
                    "type": "string",
                    "maxLength": MAX_TEXT_LENGTH,
                    "description": "Bottom line. Omit to let MemeGen choose; empty for none.",
                },
                "seed": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": SEED_LIMIT - 1,
                    "description": "Makes the caption choice repeatable; a new seed re-rolls.",
                },
                "recent": {
                    "type": "array",
                    "maxItems": MAX_RECENT,
                    "items": {"type": "string", "examples": ["Feelings loading | Please wait"]},
                    "description": "Captions already shown, one part each, as `TOP | BOTTOM`"
                    " (one `|`). The pick avoids them while the mood has others, so a"
                    " re-roll shows a new caption.",
                },
                "style": {
                    "type": "string",
                    "enum": list(STYLES),
                    "default": DEFAULT_STYLE,
                    "description": "classic: white outlined type on the photo; modern: the"
                    " caption in a white band above it; poster: a black demotivational frame"
                    " with a title; faces: a word under each face for its expression.",
                },
                "format": {
                    "type": "string",
                    "enum": sorted(FORMAT_BY_EXTENSION),
                    "default": DEFAULT_FORMAT,
                    "description": "An animated upload (GIF, WebP) stays animated as gif or"
                    " webp, with the caption on every frame; jpeg and png take its first frame.",
                },
            },
        },
        "AnalyzeForm": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "contentMediaType": "application/octet-stream"},
                "whole_image": {
                    "type": "boolean",
                    "default": False,
                    "description": "Skip detection; treat the whole image as one face.",
                },
            },
        },
    }


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The whole document as a JSON-ready dict."""
    not_found = _error("No such meme, or it has expired (`meme_not_found`).", "meme_not_found")
    image_types = {
        media: {"schema": {"type": "string", "contentMediaType": media}}
        for media in ("image/jpeg", "image/png", "image/webp", "image/gif")
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MemeGen API",
            "version": __version__,
            "description": "Turns a photo into a meme that fits the faces in it. Every error "
            'is JSON `{"error": {"code", "message"}}`. POST requests, and downloads in '
            "another format than a meme was made in, are limited to "
            f"{settings.rate_limit_per_minute} a minute per client (an IPv6 client is its /64).",
        },
        "paths": {
            "/api/v1/memes": {
                "post": {
                    "operationId": "createMeme",
                    "summary": "Make a meme from a photo",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": {"$ref": REF + "MemeForm"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "The meme was made; `Location` is its image URL.",
                            "headers": {
                                "Location": {
                                    "description": "Same as `image_url`.",
                                    "schema": {"type": "string"},
                                }
                            },
                            "content": {"application/json": {"schema": {"$ref": REF + "Meme"}}},
                        },
                        **_upload_errors(stores=True),
                    },
                }
            },
            "/api/v1/memes/{id}.{ext}": {
                "get": {
                    "operationId": "getMemeImage",
                    "summary": "Fetch a meme image, in its own or another format",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
                        },
                        {
                            "name": "ext",
                            "in": "path",
                            "required": True,
                            "description": "An extension other than the stored one converts.",
                            "schema": {"type": "string", "enum": sorted(FORMAT_BY_EXTENSION)},
                        },
                        {
                            "name": "download",
                            "in": "query",
                            "required": False,
                            "description": "`1` adds `Content-Disposition: attachment`.",
                            "schema": {"type": "string", "enum": ["0", "1"]},
                        },
                    ],
                    "responses": {
                        "200": {"description": "The image.", "content": image_types},
                        "304": {"description": "Not modified (ETag matched)."},
                        "404": not_found,
                        "429": _retry_later(
                            "A conversion to another format counts against the client's "
                            "rate limit (`rate_limited`); one kept in memory, or a "
                            "revalidation answered 304, does not.",
                            "rate_limited",
                        ),
                        "500": _error("Unexpected server error.", "internal_error"),
                        "503": _busy(stores=False),
                    },
                }
            },
            "/api/v1/analyze": {
                "post": {
                    "operationId": "analyzePhoto",
                    "summary": "Find faces and read their expressions",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {"schema": {"$ref": REF + "AnalyzeForm"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Faces in pixels of the upright photo.",
                            "content": {"application/json": {"schema": {"$ref": REF + "Analysis"}}},
                        },
                        **_upload_errors(stores=False),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness check",
                    "responses": {
                        "200": {
                            "description": "The server is up.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {
                                            "status": {"type": "string", "const": "ok"},
                                            "version": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {"schemas": _schemas(settings)},
    }
