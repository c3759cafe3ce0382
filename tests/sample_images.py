"""Small images made on the fly for tests: odd-but-valid uploads and bad ones.

Each bad input carries the HTTP status and error code that the API must answer
with, so the API tests and the CLI tests check the same list.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).parent / "data"


def astronaut_jpeg() -> bytes:
    """A public-domain portrait of a smiling astronaut (scikit-image's ``astronaut``)."""
    return (DATA / "astronaut.jpg").read_bytes()


def heic(name: str = "astronaut") -> bytes:
    """A HEIC made from the astronaut by pillow-heif (tests/data/README.md says how)."""
    return (DATA / f"{name}.heic").read_bytes()


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _astronaut() -> Image.Image:
    return Image.open(io.BytesIO(astronaut_jpeg())).convert("RGB")


def cmyk_jpeg() -> bytes:
    return _save(_astronaut().convert("CMYK"), "JPEG")


def grey16_png() -> bytes:
    grey = np.asarray(_astronaut().convert("L"), dtype=np.uint16) * 257
    return _save(Image.fromarray(grey), "PNG")


def alpha_png() -> bytes:
    image = _astronaut().convert("RGBA")
    image.putalpha(200)
    return _save(image, "PNG")


def palette_png() -> bytes:
    return _save(_astronaut().convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def animated_gif() -> bytes:
    frames = [_astronaut().resize((128, 128)).rotate(angle) for angle in (0, 10, 20)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def still_gif() -> bytes:
    return _save(_astronaut().resize((128, 128)), "GIF")


def exif_rotated_jpeg() -> bytes:
    """The astronaut stored lying on her side, with EXIF orientation 6 to stand her up."""
    image = _astronaut().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(image, "JPEG", exif=exif.tobytes())


def avif() -> bytes:
    return _save(_astronaut(), "AVIF", quality=50)


def _declaring(data: bytes, width: int, height: int) -> bytes:
    """A HEIF or AVIF whose ispe box says ``width``×``height``, whatever its picture is."""
    at = data.index(b"ispe") + 8  # after the box type, its version and its flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def _first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def avif_declaring_a_smaller_picture() -> bytes:
    """The astronaut's AVIF with its ispe box saying 64×64: libavif would still decode the
    whole 512×512 frame, so the size it declares is no bound on what decoding costs."""
    return _declaring(avif(), 64, 64)


def avif_branded_mif1() -> bytes:
    """An AVIF whose major brand is the generic mif1, which pi-heif claims as well."""
    data = avif()
    return data[:8] + b"mif1" + data[12:]


def truncated_jpeg() -> bytes:
    return _first_half(astronaut_jpeg())


def jpeg_cut_after_its_header() -> bytes:
    """Pillow meets the end of this one while still reading the header, in ``Image.open``."""
    return astronaut_jpeg()[:200]


def truncated_png() -> bytes:
    """Cut in its pixel data: Pillow finds out only when the whole picture is decoded."""
    return _first_half(_save(_astronaut(), "PNG"))


def truncated_webp() -> bytes:
    return _first_half(_save(_astronaut(), "WEBP"))


def png_with_a_broken_header_checksum() -> bytes:
    """A PNG whose IHDR checksum is wrong: no reader of Pillow's will open it, but it is
    a damaged PNG, not a file of another kind."""
    data = bytearray(_save(_astronaut(), "PNG"))
    data[29] ^= 0xFF  # the last byte of IHDR's CRC (8 signature + 8 + 13 data)
    return bytes(data)


def dds() -> bytes:
    """A DirectDraw Surface: Pillow reads it, but it is not one of the formats we take."""
    return _save(_astronaut().resize((64, 64)), "DDS")


def gif_with_a_frame_bigger_than_its_screen(frame_side: int = 7000) -> bytes:
    """A 100×100 GIF whose second frame is ``frame_side`` px square: Pillow grows the
    picture to hold it once it reaches that frame. One colour, so it stays a small file
    (37 KB at the default side, 49 megapixels)."""
    screen = _save(Image.new("P", (100, 100), 0), "GIF")
    big = _save(Image.new("P", (frame_side, frame_side), 1), "GIF")
    return screen[:-1] + big[_gif_first_block(big):]


def gif_declaring_a_frame_past_pillows_limit() -> bytes:
    """A 100×100 GIF of 200 bytes or so whose second frame says it is 60000×60000: Pillow
    refuses that frame as a decompression bomb as soon as it is sought."""
    data = bytearray(gif_with_a_frame_bigger_than_its_screen(frame_side=16))
    screen_end = len(_save(Image.new("P", (100, 100), 0), "GIF")) - 1
    at = screen_end
    while data[at] == 0x21:  # extensions before the frame: label, then sized sub-blocks
        at += 2
        while data[at]:
            at += data[at] + 1
        at += 1
    assert data[at] == 0x2C, "an image descriptor"
    data[at + 5:at + 9] = (60000).to_bytes(2, "little") * 2
    return bytes(data)


def png_with_a_transparent_colour() -> bytes:
    """An RGB PNG whose pure red is transparent (a tRNS chunk), red on its left half."""
    image = Image.new("RGB", (64, 64), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 32, 64))
    return _save(image, "PNG", transparency=(255, 0, 0))


def _gif_first_block(data: bytes) -> int:
    """Where a GIF's first block (extension or image) starts: after its 6-byte header, its
    7-byte screen descriptor and the global colour table that descriptor announces."""
    flags = data[10]
    return 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)


def truncated_heic() -> bytes:
    """Cut in its picture data: libheif finds out only when it decodes."""
    return _first_half(heic())


def heic_cut_in_its_header() -> bytes:
    """Cut inside the boxes that describe the picture: no reader can open it at all."""
    return heic()[:200]


def truncated_avif() -> bytes:
    return _first_half(avif())


def heic_declaring_48_megapixels() -> bytes:
    """The astronaut's HEIC with its ispe box saying 8000×6000: the 512×512 picture inside
    would fail to decode, so it is refused as too large only if the check comes first."""
    return _declaring(heic(), 8000, 6000)


def heif_coded_in_av1() -> bytes:
    """An AVIF whose ftyp box says HEIC: pi-heif opens it, and has no AV1 decoder."""
    data = avif()
    end = struct.unpack(">I", data[:4])[0]
    return data[:8] + data[8:end].replace(b"avif", b"heic") + data[end:]


def thin_strip_png() -> bytes:
    """2000×40: tall enough for the minimum side, too thin for any caption to be read."""
    return _save(Image.new("RGB", (2000, 40), "white"), "PNG")


def float_tiff() -> bytes:
    """Floating-point grey from 0 to 1, as scientific software writes it."""
    grey = np.asarray(_astronaut().convert("L"), dtype=np.float32) / 255
    return _save(Image.fromarray(grey, mode="F"), "TIFF")


def mpo_with_a_smaller_second_picture() -> bytes:
    """A JPEG that holds a second, smaller picture, as phones and 3D cameras write them."""
    small = _astronaut().resize((128, 128))
    return _save(_astronaut(), "MPO", save_all=True, append_images=[small])


def tiff_with_a_smaller_second_page() -> bytes:
    small = _astronaut().resize((128, 128))
    return _save(_astronaut(), "TIFF", save_all=True, append_images=[small])


def tiff_with_a_second_page_of_no_size() -> bytes:
    """A TIFF whose second page lacks its width and height tags: counting its pages
    raises ``TypeError`` in Pillow, but it is read as its first page and never counted."""
    data = bytearray(tiff_with_a_smaller_second_page())
    assert data[:2] == b"II", "the offsets below are read little-endian"
    first = int.from_bytes(data[4:8], "little")
    entries = int.from_bytes(data[first : first + 2], "little")
    after_first = first + 2 + 12 * entries
    second = int.from_bytes(data[after_first : after_first + 4], "little")
    for index in range(int.from_bytes(data[second : second + 2], "little")):
        at = second + 2 + 12 * index
        if int.from_bytes(data[at : at + 2], "little") in (256, 257):  # width, height
            data[at : at + 2] = (65000 + index).to_bytes(2, "little")  # a tag nobody reads
    return bytes(data)


def not_an_image() -> bytes:
    return b"%PDF-1.4\nthis is not a picture at all\n" * 20


def tiny_png() -> bytes:
    return _save(Image.new("RGB", (8, 8), "white"), "PNG")


def decompression_bomb_png() -> bytes:
    """A valid 10000×10000 PNG of zeros: about 100 KB on the wire, 100 MP decoded."""
    return black_png(10000, 10000)


def black_png(width: int, height: int) -> bytes:
    """A grey PNG of zeros, compressed row by row: small and quick to make at any size."""
    row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def flat_jpeg(width: int, height: int, **options) -> bytes:
    """One colour: quick to encode and decode at any size, with the structure of a photo."""
    return _save(Image.new("RGB", (width, height), (120, 90, 60)), "JPEG", quality=90, **options)


@functools.cache
def fifty_megapixel_phone_jpeg() -> bytes:
    """8160×6120, a 50 MP phone mode, as a baseline JPEG (flat: 0.8 MB, not 13-24 MB)."""
    return flat_jpeg(8160, 6120)


def jpeg_components_in_turn() -> bytes:
    """A sequential 512×384 JPEG whose colour components come in three separate scans."""
    return (DATA / "flat-components-in-turn.jpg").read_bytes()


def behind_a_decoy_frame(jpeg: bytes) -> bytes:
    """``jpeg`` with a restart marker after SOI, then an APP1 segment hiding a baseline frame
    whose first scan holds all three components. libjpeg reads the restart marker as having
    no length; a walker that gives it one lands on the decoy instead of the real frame."""
    app1_length = 0xFFFF
    lands_at = 2 + 2 + 0xFFE1  # the APP1 marker's bytes read as the restart's length
    decoy = (
        b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 16, 16, 3)
        + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
        + b"\xff\xda\x00\x0c\x03"
    )
    payload = bytearray(app1_length - 2)
    start = lands_at - (2 + 2 + 2 + 2)  # SOI, restart, APP1 marker and length come first
    payload[start : start + len(decoy)] = decoy
    segment = b"\xff\xe1" + struct.pack(">H", app1_length) + bytes(payload)
    return jpeg[:2] + b"\xff\xd0" + segment + jpeg[2:]


def jpeg_declaring_ninety_megapixels() -> bytes:
    """The astronaut's JPEG with its frame header saying 10944×8192: over Pillow's
    decompression-bomb limit of 89.5 MP, which holds for JPEGs read at reduced scale too."""
    data = astronaut_jpeg()
    at = data.index(b"\xff\xc0") + 5  # after the marker, the length and the sample precision
    return data[:at] + struct.pack(">HH", 8192, 10944) + data[at + 4 :]


def huge_dimensions_png() -> bytes:
    """9000×5000 = 45 MP: over the 40 MP default, under Pillow's own bomb guard."""
    return _save(Image.new("L", (9000, 5000)), "PNG", optimize=False, compress_level=9)


def empty() -> bytes:
    return b""


ODD_IMAGES: dict[str, Callable[[], bytes]] = {
    "cmyk_jpeg": cmyk_jpeg,
    "grey16_png": grey16_png,
    "alpha_png": alpha_png,
    "palette_png": palette_png,
    "animated_gif": animated_gif,
    "exif_rotated_jpeg": exif_rotated_jpeg,
    "float_tiff": float_tiff,
    "mpo_with_a_smaller_second_picture": mpo_with_a_smaller_second_picture,
    "tiff_with_a_smaller_second_page": tiff_with_a_smaller_second_page,
    "tiff_with_a_second_page_of_no_size": tiff_with_a_second_page_of_no_size,
    "heic": heic,
    "heic_10_bit": lambda: heic("astronaut-10bit"),
    "heic_with_alpha": lambda: heic("astronaut-alpha"),
    "exif_rotated_heic": lambda: heic("astronaut-rotated"),
}

BAD_INPUTS: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "empty": (empty, 400, "empty_upload"),
    "not_an_image": (not_an_image, 415, "unsupported_image"),
    "truncated_jpeg": (truncated_jpeg, 422, "corrupt_image"),
    "jpeg_cut_after_its_header": (jpeg_cut_after_its_header, 422, "corrupt_image"),
    "truncated_png": (truncated_png, 422, "corrupt_image"),
    "truncated_webp": (truncated_webp, 422, "corrupt_image"),
    "png_with_a_broken_header_checksum": (png_with_a_broken_header_checksum, 422,
                                          "corrupt_image"),
    "dds": (dds, 415, "unsupported_image"),
    "truncated_heic": (truncated_heic, 422, "corrupt_image"),
    "heic_cut_in_its_header": (heic_cut_in_its_header, 422, "corrupt_image"),
    "avif": (avif, 415, "unsupported_image"),
    "avif_branded_mif1": (avif_branded_mif1, 415, "unsupported_image"),
    "truncated_avif": (truncated_avif, 415, "unsupported_image"),
    "heif_coded_in_av1": (heif_coded_in_av1, 415, "unsupported_image"),
    "thin_strip": (thin_strip_png, 422, "image_too_small"),
    "tiny": (tiny_png, 422, "image_too_small"),
    "decompression_bomb": (decompression_bomb_png, 413, "image_too_large"),
    "too_many_pixels": (huge_dimensions_png, 413, "image_too_large"),
    "heic_declaring_too_many_pixels": (heic_declaring_48_megapixels, 413, "image_too_large"),
    "jpeg_declaring_too_many_pixels": (jpeg_declaring_ninety_megapixels, 413, "image_too_large"),
}
