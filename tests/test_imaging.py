import contextlib
import io
import threading

import cv2
import numpy as np
import pytest
from PIL import Image

from memegen.imaging import (
    FORMATS,
    ImageError,
    describe_pixels,
    encode,
    load_photo,
    over_limit,
    too_many_pixels,
)

from sample_images import (
    BAD_INPUTS,
    ODD_IMAGES,
    astronaut_jpeg,
    avif,
    avif_branded_mif1,
    avif_declaring_a_smaller_picture,
    behind_a_decoy_frame,
    black_png,
    fifty_megapixel_phone_jpeg,
    flat_jpeg,
    heic,
    heic_declaring_48_megapixels,
    heif_coded_in_av1,
    jpeg_components_in_turn,
    jpeg_declaring_ninety_megapixels,
    png_with_a_transparent_colour,
)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def astronaut_pixels(size: int = 512) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(astronaut_jpeg())).convert("RGB").resize((size, size)))


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_its_typed_error(name):
    make, status, code = BAD_INPUTS[name]
    with pytest.raises(ImageError) as raised:
        load_photo(make())
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.message


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_image_becomes_rgb_uint8(name):
    photo = load_photo(ODD_IMAGES[name]())
    assert photo.pixels.dtype == np.uint8
    assert photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3
    assert photo.pixels.std() > 10, "the picture must not come out blank"


def test_sixteen_bit_grey_keeps_its_tones():
    photo = load_photo(ODD_IMAGES["grey16_png"]())
    reference = load_photo(astronaut_jpeg()).pixels.mean()
    assert abs(photo.pixels.mean() - reference) < 10


def test_exif_orientation_is_applied():
    upright = load_photo(astronaut_jpeg())
    rotated = load_photo(ODD_IMAGES["exif_rotated_jpeg"]())
    assert rotated.pixels.shape == upright.pixels.shape
    assert (rotated.width, rotated.height) == (upright.width, upright.height)
    difference = np.abs(rotated.pixels.astype(int) - upright.pixels.astype(int)).mean()
    assert difference < 8


def test_heic_is_read_at_its_size_with_the_pixels_of_its_source():
    photo = load_photo(heic())
    assert (photo.format, photo.width, photo.height) == ("HEIF", 512, 512)
    assert mean_difference(photo.pixels, astronaut_pixels()) < 6


def test_rotated_heic_comes_out_upright_turned_exactly_once():
    """Stored lying on her side with an irot box and EXIF orientation 6, as an iPhone
    writes a portrait: libheif turns it, and nothing may turn it again."""
    photo = load_photo(heic("astronaut-rotated"))
    assert (photo.width, photo.height) == (384, 512)
    assert photo.pixels.shape == (512, 384, 3)
    upright = astronaut_pixels()[:, 64:448]
    assert mean_difference(photo.pixels, upright) < 6
    assert mean_difference(photo.pixels[::-1, ::-1], upright) > 50, "not upside down"


def test_ten_bit_heic_keeps_its_tones():
    photo = load_photo(heic("astronaut-10bit"))
    assert photo.pixels.dtype == np.uint8
    assert mean_difference(photo.pixels, astronaut_pixels(256)) < 8


def test_transparent_half_of_a_heic_becomes_white():
    photo = load_photo(heic("astronaut-alpha"))
    assert photo.pixels[:, :128].min() == 255
    assert mean_difference(photo.pixels[:, 128:], astronaut_pixels(256)[:, 128:]) < 8


@pytest.mark.parametrize("make", [avif, avif_branded_mif1, avif_declaring_a_smaller_picture])
def test_an_avif_is_refused_by_name_before_anything_decodes_it(make):
    with pytest.raises(ImageError) as raised:
        load_photo(make())
    assert raised.value.status == 415
    assert raised.value.message.startswith("AVIF pictures are not read here yet")


def test_heic_pixel_limit_is_checked_on_the_declared_size_before_decoding():
    with pytest.raises(ImageError) as raised:
        load_photo(heic_declaring_48_megapixels())
    assert raised.value.status == 413
    assert str(raised.value) == (
        "The image is 8000×6000 (48 megapixels); the limit is 40 megapixels."
    )


def test_heif_in_a_coding_pi_heif_cannot_decode_is_refused_by_name():
    with pytest.raises(ImageError) as raised:
        load_photo(heif_coded_in_av1())
    assert raised.value.status == 415
    assert "HEIF" in raised.value.message


def test_the_refusal_of_a_foreign_file_names_heic():
    with pytest.raises(ImageError) as raised:
        load_photo(b"%PDF-1.4\n" * 50)
    assert "HEIC" in raised.value.message


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert load_photo(buffer.getvalue()).pixels.min() == 255


def test_the_transparent_colour_of_an_rgb_png_becomes_white():
    """A tRNS chunk names one colour as see-through; it is made white like any alpha."""
    pixels = load_photo(png_with_a_transparent_colour()).pixels
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 63].tolist() == [0, 0, 255]


def test_a_tiff_pillow_cannot_open_says_it_may_be_of_a_kind_we_do_not_read():
    """OpenCV writes colour as 32-bit floats, which Pillow has no reader for: the file is
    not necessarily damaged, so the message says what to do either way."""
    ok, tiff = cv2.imencode(".tiff", np.random.default_rng(0).random((32, 32, 3), np.float32))
    assert ok
    with pytest.raises(ImageError, match="TIFF is damaged, or of a kind we cannot read"):
        load_photo(tiff.tobytes())


def test_big_jpeg_is_decoded_at_reduced_scale_but_reports_its_true_size():
    image = Image.new("RGB", (6000, 4000), (120, 60, 30))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    photo = load_photo(buffer.getvalue(), max_side=2048)
    assert (photo.width, photo.height) == (6000, 4000)
    assert max(photo.pixels.shape[:2]) == 2048
    assert photo.scale == pytest.approx(2048 / 6000, rel=1e-3)


def test_twelve_megapixel_jpeg_decodes_at_half_scale_without_a_resize():
    image = Image.new("RGB", (4000, 3000), (30, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    assert load_photo(buffer.getvalue(), max_side=2048).pixels.shape == (1500, 2000, 3)


def test_twelve_megapixel_mpo_decodes_at_half_scale_like_a_plain_jpeg():
    image = Image.new("RGB", (4000, 3000), (30, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, "MPO", save_all=True, append_images=[image.resize((400, 300))])
    assert load_photo(buffer.getvalue(), max_side=2048).pixels.shape == (1500, 2000, 3)


@pytest.mark.parametrize(
    "name", ["mpo_with_a_smaller_second_picture", "tiff_with_a_smaller_second_page",
             "tiff_with_a_second_page_of_no_size"]
)
def test_further_pictures_of_a_still_format_are_not_an_animation(name):
    photo = load_photo(ODD_IMAGES[name](), max_frames=10)
    assert photo.animation is None
    assert photo.pixels.shape == (512, 512, 3), "the first picture is the photo"


def test_fifty_megapixel_phone_jpeg_is_let_in_and_read_at_a_quarter_of_its_size():
    """Over the 40 MP limit as declared, but libjpeg reads it a row of blocks at a time
    straight to 2040×1530: the limit counts those pixels."""
    photo = load_photo(fifty_megapixel_phone_jpeg())
    assert (photo.width, photo.height) == (8160, 6120)
    assert photo.pixels.shape == (1530, 2040, 3)


def test_fifty_megapixel_png_is_still_refused_naming_the_limit():
    with pytest.raises(ImageError) as raised:
        load_photo(black_png(8160, 6120))
    assert raised.value.status == 413
    assert str(raised.value) == (
        "The image is 8160×6120 (49.9 megapixels); the limit is 40 megapixels."
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: flat_jpeg(512, 384, progressive=True),
        jpeg_components_in_turn,
        lambda: behind_a_decoy_frame(flat_jpeg(512, 384, progressive=True)),
        lambda: behind_a_decoy_frame(jpeg_components_in_turn()),
    ],
    ids=["progressive", "components_in_turn", "progressive_decoyed", "in_turn_decoyed"],
)
def test_a_jpeg_that_libjpeg_holds_whole_is_limited_by_its_declared_size(make):
    """Both make libjpeg keep the whole picture's coefficients, however small the output."""
    limits = {"max_side": 64, "max_pixels": 100_000}
    assert load_photo(flat_jpeg(512, 384), **limits).pixels.shape == (48, 64, 3), "read at 1/8"
    with pytest.raises(ImageError) as raised:
        load_photo(make(), **limits)
    assert str(raised.value) == (
        "The image is 512×384 (0.2 megapixels); the limit is 0.1 megapixels."
    )


def test_a_jpeg_padded_with_empty_segments_is_counted_whole_not_walked_to_its_end():
    limits = {"max_side": 64, "max_pixels": 100_000}
    data = flat_jpeg(512, 384)
    comment = b"\xff\xfe\x00\x02"  # an empty comment segment, put before the frame
    assert load_photo(data[:2] + comment * 900 + data[2:], **limits).width == 512
    with pytest.raises(ImageError) as raised:
        load_photo(data[:2] + comment * 1000 + data[2:], **limits)
    assert raised.value.status == 413


def test_a_jpeg_over_the_limit_even_read_at_reduced_scale_says_so():
    with pytest.raises(ImageError) as raised:
        load_photo(flat_jpeg(4000, 3000), max_pixels=1_000_000)
    assert raised.value.status == 413
    assert str(raised.value) == (
        "The image is 4000×3000; even read at reduced scale it is 2000×1500 (3 megapixels), "
        "and the limit is 1 megapixel."
    )


def test_a_jpeg_over_pillows_bomb_limit_is_refused_though_it_would_be_read_small():
    with pytest.raises(ImageError) as raised:
        load_photo(jpeg_declaring_ninety_megapixels(), max_pixels=10**9)
    assert raised.value.status == 413
    assert str(raised.value) == "The image has far too many pixels: more than 89.5 megapixels."


def test_pillows_bomb_limit_holds_while_other_threads_load_pictures(monkeypatch):
    # Between Pillow's limit and twice it Pillow only warns, and a server thread leaving
    # a ``catch_warnings`` block once reset the filters of another mid-open: a few of
    # these 8,000 loads got through. A small limit keeps each load quick.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 1000), "white").save(buffer, "JPEG")
    data, accepted = buffer.getvalue(), []

    def load_many() -> None:
        for _ in range(1000):
            with contextlib.suppress(ImageError):
                accepted.append(load_photo(data))

    threads = [threading.Thread(target=load_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not accepted


def test_size_refusal_shows_sizes_that_differ_even_just_over_the_limit():
    assert over_limit(15 * 2**20 + 30_000, 15 * 2**20) == (
        "The file is 15,758,640 bytes; the limit is 15,728,640 bytes."
    )
    assert over_limit(40 * 2**20, 15 * 2**20) == "The file is 40 MB; the limit is 15 MB."


def test_megapixels_read_as_people_say_them():
    assert [describe_pixels(count) for count in (300_000, 1_000_000, 1_400_000, 12_000_000)] == [
        "0.3 megapixels", "1 megapixel", "1.4 megapixels", "12 megapixels",
    ]


def test_pixel_refusal_shows_counts_that_differ_even_for_small_limits():
    assert too_many_pixels(8000, 6000, 40_000_000) == (
        "The image is 8000×6000 (48 megapixels); the limit is 40 megapixels."
    )
    assert too_many_pixels(6400, 6252, 40_000_000) == (
        "The image is 6400×6252 (40,012,800 pixels); the limit is 40,000,000 pixels."
    )
    assert too_many_pixels(512, 512, 100_000) == (
        "The image is 512×512 (0.3 megapixels); the limit is 0.1 megapixels."
    )
    assert too_many_pixels(200, 200, 10_000) == (
        "The image is 200×200 (40,000 pixels); the limit is 10,000 pixels."
    )


def test_pixel_limit_is_enforced_before_decoding():
    with pytest.raises(ImageError) as raised:
        load_photo(astronaut_jpeg(), max_pixels=100_000)
    assert raised.value.status == 413
    assert str(raised.value) == (
        "The image is 512×512 (0.3 megapixels); the limit is 0.1 megapixels."
    )


def test_byte_limit_is_enforced_before_decoding():
    with pytest.raises(ImageError) as raised:
        load_photo(astronaut_jpeg(), max_bytes=1000)
    assert raised.value.status == 413


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_encode_round_trips_each_format_without_metadata(fmt):
    image = Image.fromarray(load_photo(ODD_IMAGES["exif_rotated_jpeg"]()).pixels)
    data = encode(image, fmt)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format.lower() == fmt
        assert decoded.size == image.size
        assert not decoded.getexif()


def test_encode_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        encode(Image.new("RGB", (4, 4)), "bmp")
