"""Bytes in, a clean upright RGB array out; and a finished picture back to bytes.

Everything a stranger can upload passes through ``load_photo`` first, so this is
where bad input is stopped with a clear, typed error. Big JPEGs are decoded at
a reduced DCT scale straight away: no later stage needs more than
``decode_max_side`` pixels, and a full 12 MP decode would cost more than the
rest of the pipeline together.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}

_ROTATING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class ImageError(Exception):
    """An upload we refuse; ``status`` is the HTTP status that says why."""

    code = "bad_image"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmptyUpload(ImageError):
    code, status = "empty_upload", 400


class UnsupportedImage(ImageError):
    code, status = "unsupported_image", 415


class CorruptImage(ImageError):
    code, status = "corrupt_image", 422


class ImageTooSmall(ImageError):
    code, status = "image_too_small", 422


class ImageTooLarge(ImageError):
    code, status = "image_too_large", 413


@dataclass(frozen=True)
class Photo:
    """An upright RGB picture ready for the pipeline, with the size of the original."""

    pixels: np.ndarray
    width: int
    height: int
    format: str

    @property
    def scale(self) -> float:
        """How many working pixels one original pixel became (≤ 1)."""
        return self.pixels.shape[1] / self.width


def load_photo(
    data: bytes,
    *,
    max_bytes: int = 15 * 1024 * 1024,
    max_pixels: int = 40_000_000,
    max_side: int = 2048,
    min_side: int = 16,
) -> Photo:
    """Decode an upload, or raise the ``ImageError`` that explains what is wrong with it."""
    if not data:
        raise EmptyUpload("The upload is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise UnsupportedImage(
            "This is not an image we can read; send a JPEG, PNG, GIF, WebP, BMP or TIFF."
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge("The image has far too many pixels.") from error

    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"The image is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
                f"the limit is {max_pixels / 1e6:.0f} megapixels."
            )
        if min(width, height) < min_side:
            raise ImageTooSmall(
                f"The image is {width}×{height}; each side must be at least {min_side} pixels."
            )
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in _ROTATING_ORIENTATIONS:
            width, height = height, width
        image_format = image.format or "unknown"
        _reduce_while_decoding(image, max_side)
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
            pixels = _to_rgb_array(image)
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise CorruptImage(f"The image is damaged or cut short ({error}).") from error

    return Photo(_shrink(pixels, max_side), width, height, image_format)


def _reduce_while_decoding(image: Image.Image, max_side: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) that keeps at least
    three quarters of ``max_side``.

    A 4000×3000 photo then decodes at 1/2 to 2000×1500 and needs no resize at all;
    asking for the full ``max_side`` would force a full-size decode for 2000 pixels more.
    """
    long_side = max(image.size)
    if image.format != "JPEG" or long_side <= max_side:
        return
    ratio = 0.75 * max_side / long_side
    image.draft(image.mode, (math.ceil(image.width * ratio), math.ceil(image.height * ratio)))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """RGB uint8 for any mode: CMYK, 16-bit, float, palette, alpha (over white)."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in ("P", "LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _shrink(pixels: np.ndarray, max_side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    ratio = max_side / max(height, width)
    if ratio >= 1:
        return np.ascontiguousarray(pixels)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` as PNG, JPEG or WebP bytes, with no metadata carried over."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=1)
    else:
        image.save(buffer, "WEBP", quality=85, method=2)
    return buffer.getvalue()
