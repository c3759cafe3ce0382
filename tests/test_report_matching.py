"""End to end on labelled photos: matching labelled face boxes to detections when the two are
drawn to different conventions, and splitting the accuracy by face size."""

from __future__ import annotations

import numpy as np
import pytest

from memegen.training.report import (
    BoxConvention,
    LabelledPhoto,
    accuracy_by_face_side,
    best_overlaps,
    fit_box_convention,
    found_in_fitted_convention,
    one_to_one_matches,
)

#: The way the photos below label a face, relative to the detector's box (about ExpW's).
LABELS_DRAWN = BoxConvention(scale=1.15, shift=-0.1)


def _photo(offset: float) -> LabelledPhoto:
    """Three labelled faces: one found as drawn, one missed only by its much bigger label
    box, one the detector missed; the detector also finds one unlabelled face."""
    found = np.array([[offset, 0.0, offset + 100, 100]])
    missed_by_convention = np.array([[offset + 300, 0.0, offset + 400, 100]])
    detected = np.concatenate([found, missed_by_convention, [[offset, 600, offset + 80, 680]]])
    labelled = np.concatenate([
        LABELS_DRAWN.apply(found),
        BoxConvention(scale=1.7, shift=-0.2).apply(missed_by_convention),
        [[offset + 900, 0, offset + 1000, 100]],
    ])
    return LabelledPhoto(labelled, detected)


def test_a_convention_widens_the_detectors_square_and_moves_it_up():
    mapped = BoxConvention(scale=1.2, shift=-0.1).apply(np.array([[0.0, 0.0, 10.0, 10.0]]))
    np.testing.assert_allclose(mapped, [[-1.0, -2.0, 11.0, 10.0]])


def test_the_fitted_convention_is_the_median_of_the_faces_found_as_drawn():
    convention = fit_box_convention([_photo(0.0), _photo(2000.0)], iou_threshold=0.4)
    assert convention.scale == pytest.approx(1.15)
    assert convention.shift == pytest.approx(-0.1)


def test_without_faces_found_the_convention_is_the_detectors_own():
    photo = LabelledPhoto(np.array([[0.0, 0.0, 10.0, 10.0]]), np.zeros((0, 4)))
    assert fit_box_convention([photo], iou_threshold=0.4) == BoxConvention()
    assert best_overlaps(photo).tolist() == [0.0]


def test_one_detection_spanning_two_labelled_faces_stands_for_one_of_them():
    """It used to count both as found, and its crop was read once under each label."""
    labelled = np.array([[0.0, 0.0, 100, 100], [100, 0, 200, 100]])
    spanning = np.array([[0.0, 0.0, 200, 100]])  # IoU 0.5 with each
    assert one_to_one_matches(labelled, spanning) == [(0, pytest.approx(0.5)), None]
    # Drawn as the detector's square (200×200), it overlaps the first face by a quarter.
    assert best_overlaps(LabelledPhoto(labelled, spanning)).tolist() == [0.25, 0.0]


def test_the_pairs_that_overlap_most_are_matched_first():
    labelled = np.array([[0.0, 0.0, 100, 100], [20, 0, 120, 100]])
    detected = np.array([[15.0, 0, 115, 100], [-30, 0, 70, 100]])
    # The first face overlaps the first detection most (0.74, the second 0.54), but the
    # second face overlaps it more still (0.90): it takes it, the first the other.
    matches = one_to_one_matches(labelled, detected)
    assert [match[0] for match in matches] == [1, 0]
    np.testing.assert_allclose([match[1] for match in matches], [0.538, 0.905], atol=1e-3)


def test_a_face_missed_only_by_its_box_convention_is_found_once_boxes_are_mapped():
    photos = [_photo(2000.0 * index) for index in range(4)]
    as_drawn = sum(int((best_overlaps(photo) >= 0.4).sum()) for photo in photos)
    found, conventions = found_in_fitted_convention(photos, iou_threshold=0.4)
    assert as_drawn == 4
    assert found == 8
    np.testing.assert_allclose([(c.scale, c.shift) for c in conventions], [(1.15, -0.1)] * 2)


def test_accuracy_by_face_side_counts_each_face_in_the_band_its_side_falls_in():
    sides = np.array([20.0, 47.9, 48.0, 100.0, 129.0, 400.0])
    predicted = np.array([1, 2, 3, 4, 5, 6])
    labels = np.array([1, 0, 3, 4, 0, 6])
    bands = accuracy_by_face_side(sides, predicted, labels, edges=(48, 130, 250))
    assert bands == [
        {"side": "0–47 px", "faces": 2, "accuracy": 0.5},
        {"side": "48–129 px", "faces": 3, "accuracy": pytest.approx(2 / 3)},
        {"side": "130–249 px", "faces": 0, "accuracy": None},
        {"side": "≥ 250 px", "faces": 1, "accuracy": 1.0},
    ]
