import numpy as np
import pytest

from memegen.facecrop import crop_face, square_box


def test_square_box_is_centred_and_widened_by_the_margin():
    assert square_box((10, 20, 30, 60), margin=0.0) == (0, 20, 40, 60)
    assert square_box((10, 20, 30, 60), margin=0.25) == (-10, 10, 50, 70)


def test_crop_has_the_requested_size_and_is_grey():
    image = np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8)
    crop = crop_face(image, (10, 10, 50, 60), size=48, margin=0.1)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8


def test_whole_image_box_without_margin_reproduces_a_square_image():
    image = np.tile(np.arange(48, dtype=np.uint8)[None, :] * 5, (48, 1))
    crop = crop_face(image, (0, 0, 48, 48), size=48, margin=0.0)
    np.testing.assert_array_equal(crop, image)


def test_box_past_the_edge_replicates_the_border_instead_of_black():
    image = np.full((50, 50), 200, dtype=np.uint8)
    crop = crop_face(image, (-20, -20, 30, 30), size=32, margin=0.2)
    assert crop.min() == 200


@pytest.mark.parametrize("box", [(500, 500, 600, 600), (10, 10, 10, 10)])
def test_degenerate_box_gives_a_crop_not_an_error(box):
    image = np.full((50, 50, 3), 90, dtype=np.uint8)
    assert crop_face(image, box, size=48, margin=0.1).shape == (48, 48)
