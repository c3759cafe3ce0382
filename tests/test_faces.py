"""Face detection on the bundled astronaut photo and on pictures made here.

``tests/data/astronaut.jpg`` is scikit-image's ``astronaut`` (Eileen Collins, NASA; public
domain), re-encoded as JPEG. Her face box, measured once with MediaPipe's own TFLite
runtime, is about (174, 70, 279, 175).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from memegen.faces import Face, FaceDetector, default_detector, haar_faces, is_portrait

ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"
ASTRONAUT_FACE = (174.0, 70.0, 279.0, 175.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


def assert_inside(faces: list[Face], rgb: np.ndarray) -> None:
    height, width = rgb.shape[:2]
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def paste(canvas: np.ndarray, photo: np.ndarray, scale: float, left: int, top: int) -> tuple:
    """Paste ``photo`` scaled by ``scale`` at (left, top); return where its face box lands."""
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    x1, y1, x2, y2 = ASTRONAUT_FACE
    return (x1 * scale + left, y1 * scale + top, x2 * scale + left, y2 * scale + top)


def gray_noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(128, 30, (height, width, 3)).clip(0, 255).astype(np.uint8)


def test_finds_the_astronauts_face_with_a_box_around_her_head(astronaut):
    faces = default_detector().detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert iou(face.box, ASTRONAUT_FACE) > 0.8
    assert face.score > 0.8
    right_eye, left_eye, nose, mouth = face.landmarks[:4]
    assert len(face.landmarks) == 6
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert right_eye[0] < left_eye[0]  # the person's right eye is on the picture's left


def test_a_face_that_fills_the_frame_is_found(astronaut):
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE)
    close_up = cv2.resize(astronaut[y1:y2, x1:x2], (400, 400), interpolation=cv2.INTER_CUBIC)
    faces = default_detector().detect(close_up)
    assert len(faces) == 1 and faces[0].landmarks
    assert iou(faces[0].box, (0, 0, 400, 400)) > 0.5


@pytest.mark.parametrize(
    "picture",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        gray_noise(480, 640),
        gray_noise(1600, 2048, seed=1),
    ],
    ids=["black", "white", "noise", "big-noise"],
)
def test_pictures_without_faces_give_no_faces(picture):
    assert default_detector().detect(picture) == []


@pytest.mark.parametrize("shape", [(1, 1), (20, 20), (3, 500), (500, 3)])
def test_tiny_and_thin_pictures_work(shape, astronaut):
    picture = cv2.resize(astronaut, shape[::-1], interpolation=cv2.INTER_AREA)
    faces = default_detector().detect(picture)
    assert_inside(faces, picture)


@pytest.mark.parametrize("wide", [True, False], ids=["wide", "tall"])
def test_a_face_in_a_very_wide_or_tall_picture_is_found(wide, astronaut):
    canvas = gray_noise(200, 3000) if wide else gray_noise(3000, 200)
    truth = paste(canvas, astronaut, 200 / 512, *((1400, 0) if wide else (0, 1400)))
    faces = default_detector().detect(canvas)
    assert len(faces) == 1
    assert iou(faces[0].box, truth) > 0.5


def test_boxes_are_clipped_to_the_picture(astronaut):
    cut = np.ascontiguousarray(astronaut[40:, 220:])  # the left half of her face is gone
    faces = default_detector().detect(cut)
    assert faces
    assert faces[0].box[0] == 0.0
    assert_inside(faces, cut)


@pytest.fixture(scope="module")
def group_photo(astronaut) -> tuple[np.ndarray, list[tuple]]:
    """A 12 MP picture with faces of 300, 120 and 40 px, shrunk to 2048 px as the pipeline
    does; and the true face boxes in the shrunk picture, largest first."""
    canvas = gray_noise(3000, 4000, seed=2)
    truths = [
        paste(canvas, astronaut, 300 / 105, 200, 200),
        paste(canvas, astronaut, 120 / 105, 2300, 500),
        paste(canvas, astronaut, 40 / 105, 3100, 2300),
    ]
    shrunk = cv2.resize(canvas, (2048, 1536), interpolation=cv2.INTER_AREA)
    scale = 2048 / 4000
    return shrunk, [tuple(v * scale for v in truth) for truth in truths]


def test_a_40px_face_in_a_12mp_photo_is_found_by_the_tiled_pass(group_photo):
    picture, truths = group_photo
    small_face = truths[-1]
    faces = default_detector().detect(picture)
    assert len(faces) == 3
    assert any(iou(face.box, small_face) > 0.5 for face in faces)
    whole_picture_only = FaceDetector(tiled=False).detect(picture)
    assert not any(iou(face.box, small_face) > 0.1 for face in whole_picture_only)


def test_40px_faces_in_an_800px_web_photo_are_found_by_the_tiled_pass(astronaut):
    picture = gray_noise(600, 800, seed=3)
    truths = [
        paste(picture, astronaut, 40 / 105, 60, 300),
        paste(picture, astronaut, 45 / 105, 480, 40),
    ]
    faces = default_detector().detect(picture)
    assert len(faces) == 2
    assert all(any(iou(face.box, truth) > 0.5 for face in faces) for truth in truths)
    assert not FaceDetector(tiled=False).detect(picture)


def test_faces_come_largest_first(group_photo):
    picture, truths = group_photo
    faces = default_detector().detect(picture)
    assert [max(range(3), key=lambda i: iou(face.box, truths[i])) for face in faces] == [0, 1, 2]


def test_haar_takes_over_when_blazeface_sees_nothing(astronaut):
    # Salt-and-pepper noise over a close-up defeats BlazeFace but not the Haar cascade.
    crop = astronaut[49:196, 153:300].copy()
    rng = np.random.default_rng(0)
    noise = rng.random(crop.shape[:2])
    crop[noise < 0.1] = 0
    crop[noise > 0.9] = 255
    faces = default_detector().detect(crop)
    assert len(faces) == 1
    assert faces[0].landmarks == ()  # Haar gives boxes only
    assert iou(faces[0].box, (21, 21, 126, 126)) > 0.6


def test_haar_fallback_finds_a_clean_close_up(astronaut):
    faces = haar_faces(astronaut[30:220, 130:320])
    assert len(faces) == 1
    assert iou(faces[0].box, (44, 40, 149, 145)) > 0.6


def test_one_detector_serves_several_threads(astronaut):
    detector = default_detector()
    expected = detector.detect(astronaut)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: detector.detect(astronaut), range(8)))
    assert all(result == expected for result in results)


def test_rejects_arrays_that_are_not_rgb_pictures():
    with pytest.raises(ValueError, match="RGB"):
        default_detector().detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        default_detector().detect(np.zeros((10, 10, 3), np.float32))


def test_a_big_portrait_skips_the_tiled_pass_but_a_group_photo_does_not(astronaut, group_photo):
    detector = default_detector()
    portrait = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    assert is_portrait(detector._whole_picture(portrait, 192), portrait.shape)
    picture, _ = group_photo
    assert not is_portrait(detector._whole_picture(picture, 192), picture.shape)
