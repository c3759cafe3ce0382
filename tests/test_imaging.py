import io

import numpy as np
import pytest
from PIL import Image

from memegen.imaging import (
    FORMATS,
    ImageError,
    encode,
    load_photo,
    over_limit,
    too_many_pixels,
)

from sample_images import BAD_INPUTS, ODD_IMAGES, astronaut_jpeg


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


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert load_photo(buffer.getvalue()).pixels.min() == 255


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
    "name", ["mpo_with_a_smaller_second_picture", "tiff_with_a_smaller_second_page"]
)
def test_further_pictures_of_a_still_format_are_not_an_animation(name):
    photo = load_photo(ODD_IMAGES[name](), max_frames=10)
    assert photo.animation is None
    assert photo.pixels.shape == (512, 512, 3), "the first picture is the photo"


def test_size_refusal_shows_sizes_that_differ_even_just_over_the_limit():
    assert over_limit(15 * 2**20 + 30_000, 15 * 2**20) == (
        "The file is 15,758,640 bytes; the limit is 15,728,640 bytes."
    )
    assert over_limit(40 * 2**20, 15 * 2**20) == "The file is 40 MB; the limit is 15 MB."


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
