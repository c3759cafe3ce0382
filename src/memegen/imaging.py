"""Bytes in, a clean upright RGB array out; and a finished picture back to bytes.

Everything a stranger can upload passes through ``load_photo`` first, so this is
where bad input is stopped with a clear, typed error. Big JPEGs are decoded at
a reduced DCT scale straight away: no later stage needs more than
``decode_max_side`` pixels, and a full 12 MP decode would cost more than the
rest of the pipeline together. The pixel limit is there to bound memory, so it
counts what decoding holds: for a JPEG that libjpeg reads a row of blocks at a
time (as phones write them) the reduced picture, which lets a 50 MP phone photo
in; for every other picture the whole of it.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np
import pi_heif
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
#: Formats that can hold an animation; an animated meme saved in any other is its first frame.
ANIMATED_FORMATS = frozenset({"gif", "webp"})
DEFAULT_FRAME_MS = 100  # what browsers show a GIF frame for when it asks for less than 20 ms
MIN_FRAME_MS = 20
SCAN_FACTOR = 4  # frames read per frame kept, at most: longer animations are cut
FRAME_PIXEL_BUDGET = 200_000_000  # original pixels decoded across all frames, at most
#: Long side over short side, at most: on a thinner strip a caption is a line of dust.
MAX_ASPECT = 10

#: Formats whose extra frames are an animation; others' (an MPO's second picture, a TIFF's
#: further pages) are separate pictures, and the upload is read as its first.
_ANIMATED_SOURCES = frozenset({"GIF", "WEBP", "PNG"})
#: What Pillow raises for a file that starts like an image but cannot be decoded.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
#: Pillow's own words ("Truncated File Read") would mean nothing to the person who sent it.
_DAMAGED = "The image is damaged or cut short; try saving it again."
_ROTATING_ORIENTATIONS = {5, 6, 7, 8}
#: JPEG markers: baseline and extended sequential Huffman frames, and the start of a scan.
_SEQUENTIAL_FRAMES = frozenset({0xC0, 0xC1})
_START_OF_SCAN = 0xDA
#: Every start-of-frame marker (C0 to CF, less DHT, JPG and DAC, which share the range).
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers with no length after them, as libjpeg reads them: TEM, the restarts and SOI.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_END_OF_IMAGE = 0xD9
#: Markers read before the first scan, at most: cameras write a few dozen. A file padded
#: with millions of empty segments is counted whole rather than walked in Python to the end.
_MAX_HEADER_MARKERS = 1000
_EXIF_ORIENTATION = 0x0112
_FORMATS_WE_READ = "JPEG, HEIC, PNG, GIF, WebP, BMP or TIFF"
#: How each format we read starts, so a file that starts like one but that its reader
#: could not open is called damaged rather than foreign. HEIF is told by its brand.
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
               *_TIFF_SIGNATURES)
#: A TIFF that Pillow cannot open may be cut short, or of a kind it has no reader for
#: (32-bit float colour, as OpenCV writes it); the file cannot tell which.
_UNOPENABLE_TIFF = (
    "This TIFF is damaged, or of a kind we cannot read (such as floating-point colour); "
    "save it as PNG or JPEG and send that."
)
#: Major brands of the ISO base media files that pi-heif reads. A file that starts with
#: one of them but that it could not open is cut short in its header, not a kind of file
#: we do not read.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_UNDECODABLE_HEIF = (
    "This HEIF file holds its picture in a coding we cannot decode (HEIC from a phone or "
    "a camera is fine); save it as JPEG or PNG and send that."
)
#: Brands that make a file an AVIF, which libavif (the only way it decodes) requires.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: An AVIF is refused before anything decodes it: libavif decodes the whole AV1 frame,
#: whatever size the file's ispe box declares and our limits are held against, so a 3 KB
#: AVIF claiming 1000×1000 made the server take 1 GB (Pillow gives no way to cap it).
_AVIF_REFUSED = (
    "AVIF pictures are not read here yet; save it as JPEG, PNG or WebP and send that."
)

# load_photo holds Pillow's decompression-bomb limit itself (see there), so the warning
# Pillow gives on the way would only be noise on the command line and in server logs.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning, module=r"PIL\.Image")
# Pillow's own plugins (AVIF among them) are registered first, so that they are asked
# first: pi-heif claims every file whose major brand is mif1, an AVIF too, and would
# fail on its AV1 picture; Pillow opens it as the AVIF it is, for load_photo to refuse.
Image.init()
# Only the main picture is read: thumbnails, depth maps and other auxiliary images
# would cost time at open for nothing.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
#: The only readers an upload is offered to. Pillow has dozens more (DDS, EPS, JPEG 2000,
#: SGI...), each a parser a stranger's bytes could reach, and EPS hands the file to
#: Ghostscript where it is installed. AVIF is opened only to be refused by name.
_READERS = tuple(
    name for name in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF")
    if name in Image.OPEN
)


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


class DecompressionBomb(ImageTooLarge):
    """More pixels than Pillow opens at all (``Image.MAX_IMAGE_PIXELS``), a limit that no
    setting of ours lifts."""


@dataclass(frozen=True)
class Animation:
    """The frames of an animated upload, small, with how long each one shows.

    Frames are full pictures (GIF's partial frames already composed) at most
    ``max_side`` on their long side, and at most ``max_frames`` of them: a longer
    animation keeps evenly spaced frames, each shown for the time of those it
    stands for, so the whole plays as long as the original.
    """

    frames: tuple[np.ndarray, ...]
    durations: tuple[int, ...]  # milliseconds, one per frame
    loop: int | None  # times to play after the first; 0 for ever, None for once only


@dataclass(frozen=True)
class Photo:
    """An upright RGB picture ready for the pipeline, with the size of the original.

    ``pixels`` is the first frame of an animation; ``animation`` holds all of
    them when the caller asked for frames and the upload has more than one.
    """

    pixels: np.ndarray
    width: int
    height: int
    format: str
    animation: Animation | None = None

    @property
    def scale(self) -> float:
        """How many working pixels one original pixel became (≤ 1)."""
        return self.pixels.shape[1] / self.width


def load_photo(
    data: bytes,
    *,
    max_bytes: int = 25 * 1024 * 1024,
    max_pixels: int = 40_000_000,
    max_side: int = 2048,
    min_side: int = 16,
    max_frames: int = 0,
    frame_max_side: int = 480,
) -> Photo:
    """Decode an upload, or raise the ``ImageError`` that explains what is wrong with it.

    ``max_pixels`` applies to the pixels decoding holds at once (see the module's
    docstring); Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, about
    89.5 MP) applies to every picture's declared size.

    With ``max_frames`` above zero an animated upload also gives its frames, at
    most ``frame_max_side`` px: an animated meme is drawn on every frame, so its
    frames are kept small. EXIF-rotated animations are read as still pictures.
    """
    if not data:
        raise EmptyUpload("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageTooLarge(over_limit(len(data), max_bytes))
    if _ftyp_brands(data) & _AVIF_BRANDS:
        raise UnsupportedImage(_AVIF_REFUSED)
    try:
        image = Image.open(io.BytesIO(data), formats=_READERS)
    except UnidentifiedImageError as error:
        if data.startswith(_TIFF_SIGNATURES):
            raise CorruptImage(_UNOPENABLE_TIFF) from error
        if _starts_like_ours(data):
            raise CorruptImage(_DAMAGED) from error
        raise UnsupportedImage(
            f"This is not an image we can read; send a {_FORMATS_WE_READ}."
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _over_pillows_limit() from error
    except _DECODE_ERRORS as error:
        raise CorruptImage(_DAMAGED) from error
    except RuntimeError as error:
        # What pi-heif raises for a HEIF whose boxes do not hold together.
        if _major_brand(data) is None:
            raise
        raise CorruptImage(_DAMAGED) from error

    with image:
        if image.format == "AVIF":
            raise UnsupportedImage(_AVIF_REFUSED)
        width, height = image.size
        # Pillow only warns from its limit up to twice it. Turning that warning into an
        # error with ``warnings`` would change the whole process's filters, which the
        # server's other threads share: one leaving its ``catch_warnings`` let another's
        # bomb through. So the limit is held here, whatever the filters say.
        _hold_pillows_limit(width * height)
        _reduce_while_decoding(image, max_side)
        held = image.size if _decoded_row_by_row(image, data) else (width, height)
        if held[0] * held[1] > max_pixels:
            raise ImageTooLarge(too_many_pixels(width, height, max_pixels, decoded=held))
        if min(width, height) < min_side:
            raise ImageTooSmall(
                f"The image is {width}×{height}; each side must be at least {min_side} pixels."
            )
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise ImageTooSmall(
                f"The image is {width}×{height}, a strip too thin to caption; its short side "
                f"must be at least 1/{MAX_ASPECT} of its long side."
            )
        image_format = image.format or "unknown"
        animation = None
        try:
            # Reading EXIF decodes a whole PNG, so it may meet the damage too. A HEIC comes
            # out of libheif already turned by its irot and imir boxes, and pi-heif sets its
            # EXIF orientation to 1 so that it is not turned a second time here.
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            image.load()
            # exif_transpose copies the picture even when it is upright: skip it then.
            upright = image if orientation == 1 else ImageOps.exif_transpose(image)
            pixels = _to_rgb_array(upright)
            if max_frames > 0 and orientation == 1:
                animation = _read_frames(image, max_frames, frame_max_side, max_pixels)
        except _DECODE_ERRORS as error:
            raise CorruptImage(_DAMAGED) from error
        except RuntimeError as error:
            # pi-heif's word for a HEIF whose picture libheif has no decoder for (AV1 or
            # JPEG inside a HEIF container, say), or whose coded picture breaks libheif's
            # limits because it is bigger than its boxes declared.
            if image_format != "HEIF":
                raise
            if any(words in str(error) for words in ("Unsupported", "not been built in")):
                raise UnsupportedImage(_UNDECODABLE_HEIF) from error
            raise CorruptImage(_DAMAGED) from error
        if orientation in _ROTATING_ORIENTATIONS:
            width, height = height, width

    return Photo(_shrink(pixels, max_side), width, height, image_format, animation)


def describe_size(size: int) -> str:
    """A byte count the way people read it in a message: "15 MB", "1.5 MB", "20 KB"."""
    if size >= 2**20:
        return f"{size / 2**20:.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(size / 1024))} KB"


def describe_pixels(count: int) -> str:
    """A pixel count the way people read it in a message: "12 megapixels", "0.3 megapixels",
    "1 megapixel"."""
    number = f"{count / 1e6:.1f}".removesuffix(".0")
    return f"{number} megapixel" if number == "1" else f"{number} megapixels"


def _unlike(value: int, limit: int, describe: Callable[[int], str], unit: str) -> tuple[str, str]:
    """``value`` and ``limit`` as ``describe`` rounds them, or exactly when rounding would
    make a value just over the limit look no bigger than it."""
    shown, allowed = describe(value), describe(limit)
    if shown == allowed or describe(0) == allowed:
        return f"{value:,} {unit}", f"{limit:,} {unit}"
    return shown, allowed


def over_limit(size: int, limit: int) -> str:
    """Why a file of ``size`` bytes is refused."""
    shown, allowed = _unlike(size, limit, describe_size, "bytes")
    return f"The file is {shown}; the limit is {allowed}."


def declared_pixel_limit() -> int | None:
    """Pillow's decompression-bomb limit, which every picture's declared size is held to
    (None when whoever runs MemeGen has switched Pillow's check off)."""
    return Image.MAX_IMAGE_PIXELS


def _hold_pillows_limit(pixels: int) -> None:
    """Raise :class:`DecompressionBomb` for a picture of more ``pixels`` than Pillow's limit."""
    limit = declared_pixel_limit()
    if limit is not None and pixels > limit:
        raise _over_pillows_limit()


def _over_pillows_limit() -> DecompressionBomb:
    return DecompressionBomb(
        f"The image has far too many pixels: more than {describe_pixels(declared_pixel_limit())}."
    )


def too_many_pixels(
    width: int, height: int, limit: int, decoded: tuple[int, int] | None = None,
    *, subject: str = "The image",
) -> str:
    """Why a ``width``×``height`` picture is refused; ``decoded`` is the size it would be
    read at, when the limit was held against that smaller size and still met, and
    ``subject`` what has that size (one frame of an animation, say)."""
    if decoded is None or decoded == (width, height):
        shown, allowed = _unlike(width * height, limit, describe_pixels, "pixels")
        return f"{subject} is {width}×{height} ({shown}); the limit is {allowed}."
    shown, allowed = _unlike(decoded[0] * decoded[1], limit, describe_pixels, "pixels")
    return (
        f"The image is {width}×{height}; even read at reduced scale it is "
        f"{decoded[0]}×{decoded[1]} ({shown}), and the limit is {allowed}."
    )


def _read_frames(
    image: Image.Image, max_frames: int, max_side: int, max_pixels: int
) -> Animation | None:
    """The frames of an animated ``image`` (None for a still one), bounded in count and size.

    Each frame's size is held to the limits again once it is found, before it is
    decoded: a GIF frame may be far bigger than the screen its file declares, and
    Pillow grows the picture to hold it (a 75 KB GIF of 100×100 whose second frame was
    10000×10000 took 1.5 GB).
    """
    if image.format not in _ANIMATED_SOURCES:
        return None  # asked before ``n_frames``, which walks every page of a TIFF
    count = getattr(image, "n_frames", 1)
    if count < 2:
        return None
    frames: list[np.ndarray] = []
    durations: list[int] = []
    decoded = 0
    for index in range(min(count, max_frames * SCAN_FACTOR)):
        try:
            image.seek(index)  # Pillow holds a GIF frame to its limit here, as it opens
        except Image.DecompressionBombError as error:
            raise _over_pillows_limit() from error
        pixels = image.width * image.height
        _hold_pillows_limit(pixels)
        if pixels > max_pixels:
            raise ImageTooLarge(too_many_pixels(
                image.width, image.height, max_pixels,
                subject=f"Frame {index + 1} of the animation",
            ))
        if len(frames) >= 2 and decoded + pixels > FRAME_PIXEL_BUDGET:
            break
        decoded += pixels
        frames.append(_shrink(_to_rgb_array(image), max_side))
        duration = int(image.info.get("duration") or 0)
        durations.append(duration if duration >= MIN_FRAME_MS else DEFAULT_FRAME_MS)
    loop = repeats(image)
    image.seek(0)
    scanned = len(frames)
    if scanned <= max_frames:
        return Animation(tuple(frames), tuple(durations), loop)
    # Keep the first frame of each of ``max_frames`` even groups, for the group's time.
    bounds = np.linspace(0, scanned, max_frames + 1).round().astype(int)
    return Animation(
        tuple(frames[start] for start in bounds[:-1]),
        tuple(sum(durations[start:end]) for start, end in pairwise(bounds)),
        loop,
    )


def _reduce_while_decoding(image: Image.Image, max_side: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) that keeps at least
    three quarters of ``max_side``.

    A 4000×3000 photo then decodes at 1/2 to 2000×1500 and needs no resize at all;
    asking for the full ``max_side`` would force a full-size decode for 2000 pixels more.
    """
    long_side = max(image.size)
    if image.format not in ("JPEG", "MPO") or long_side <= max_side:
        return
    ratio = 0.75 * max_side / long_side
    image.draft(image.mode, (math.ceil(image.width * ratio), math.ceil(image.height * ratio)))


def _decoded_row_by_row(image: Image.Image, data: bytes) -> bool:
    """Whether libjpeg decodes ``image`` one row of 8×8 blocks at a time, so that its memory
    follows the reduced size it is decoded to rather than the size the file declares.

    So it does for a sequential JPEG (SOF0 or SOF1) whose first scan holds every colour
    component, as cameras and phones write them. A progressive JPEG, or one whose
    components come in separate scans, makes libjpeg keep the DCT coefficients of the
    whole picture until its last scan: 2 bytes a sample at full size, however small the
    output (measured: 155 MB for a progressive 50 MP JPEG, 277 MB for a flat 89 MP one of
    1.3 MB with its components in turn, against 30 and 53 MB read row by row).
    """
    if image.format not in ("JPEG", "MPO") or image.info.get("progressive"):
        return False
    components = None
    at = 2  # after SOI
    for _ in range(_MAX_HEADER_MARKERS):
        # Bytes between segments, which libjpeg would skip, end the walk: when in doubt
        # the picture is counted at its declared size.
        if at + 4 > len(data) or data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
        elif marker in _STANDALONE_MARKERS:
            at += 2
        elif marker == _END_OF_IMAGE:
            return False
        elif marker == _START_OF_SCAN:
            return components is not None and data[at + 4 : at + 5] == components
        else:
            if marker in _FRAMES:
                if components is not None or marker not in _SEQUENTIAL_FRAMES:
                    return False
                components = data[at + 9 : at + 10]
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return False


def _starts_like_ours(data: bytes) -> bool:
    """Whether ``data`` starts the way a file of a format we read does."""
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return webp or data.startswith(_SIGNATURES) or _major_brand(data) in _HEIF_BRANDS


def _major_brand(data: bytes) -> bytes | None:
    """The major brand of an ISO base media file (HEIF, AVIF), or None for other files."""
    return data[8:12] if data[4:8] == b"ftyp" else None


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file, or none."""
    major = _major_brand(data)
    if major is None:
        return set()
    end = min(len(data), int.from_bytes(data[:4], "big"))
    return {major} | {data[at : at + 4] for at in range(16, end - 3, 4)}


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """RGB uint8 of the current frame, for any mode: CMYK, 16-bit, float, palette,
    alpha (over white)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        brightest = values.max(initial=0.0)
        if mode.startswith("I;16") or brightest > 255:
            top = 65535.0
        elif mode == "F" and brightest <= 1:
            top = 1.0  # floating-point pictures usually run from 0 to 1
        else:
            top = 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in ("P", "LA", "La", "PA") or (mode in ("RGB", "L") and "transparency" in image.info):
        image = image.convert("RGBA")  # a PNG's tRNS colour is transparent too
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


def encode(
    image: Image.Image,
    fmt: str,
    *,
    frames: Sequence[Image.Image] = (),
    durations: Sequence[int] = (),
    loop: int | None = 0,
) -> bytes:
    """``image`` as PNG, JPEG, WebP or GIF bytes, with no metadata carried over.

    Given ``frames`` (the first being ``image``) and their ``durations`` in ms,
    GIF and WebP hold the whole animation; PNG and JPEG hold ``image`` alone. ``loop``
    is as :func:`repeats` gives it: plays after the first, 0 for ever, None for none.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    animation: dict = {}
    if len(frames) > 1 and fmt in ANIMATED_FORMATS:
        animation = {
            "save_all": True,
            "append_images": list(frames[1:]),
            "duration": list(durations),
        }
        if fmt == "webp":  # WebP counts every play, 0 meaning for ever
            animation["loop"] = 0 if loop == 0 else (loop or 0) + 1
        elif loop is not None:  # a GIF without its loop block plays once
            animation["loop"] = loop
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=1)
    elif fmt == "gif":
        image.save(buffer, "GIF", optimize=False, **animation)
    else:
        image.save(buffer, "WEBP", quality=85, method=2, **animation)
    return buffer.getvalue()


def transcode(data: bytes, fmt: str) -> bytes:
    """An encoded meme in another format, its animation kept where ``fmt`` can hold one."""
    frames: list[Image.Image] = []
    durations: list[int] = []
    with Image.open(io.BytesIO(data)) as image:
        for frame in ImageSequence.Iterator(image):
            rgb = frame.convert("RGB")  # loads the frame, and with it its duration
            durations.append(int(frame.info.get("duration") or DEFAULT_FRAME_MS))
            rgb.info.clear()  # Pillow's GIF writer would take a WebP's loop count from it
            frames.append(rgb)
            if fmt not in ANIMATED_FORMATS:
                break
        loop = repeats(image)
    return encode(frames[0], fmt, frames=frames, durations=durations, loop=loop)


def repeats(image: Image.Image) -> int | None:
    """How many times an animation plays after its first time: 0 for ever, None for
    none. GIF says it so (and plays once without its loop block); WebP and APNG count
    every play, 0 being for ever."""
    count = image.info.get("loop")
    if image.format == "GIF":
        return None if count is None else int(count)
    count = int(count or 0)
    return 0 if count == 0 else count - 1 or None
