"""The photo weighting's fit: folds by photo, the strength chosen, and what it can undo."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from memegen import LABELS
from memegen.training.photo_weighting import (
    choose_photo_weighting,
    fit_photo_weighting,
    folds_by_group,
)

ANGRY, SURPRISE = LABELS.index("angry"), LABELS.index("surprise")


def _confused_readings(faces: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two models' readings (models × faces × labels) that get every class right except
    surprise, which both read as angry with surprise a distant second, as the members
    read shouting faces in web photos."""
    rng = np.random.default_rng(seed)
    labels = np.arange(faces) % len(LABELS)
    readings = np.zeros((2, faces, len(LABELS)))
    for model in range(2):
        for face, label in enumerate(labels):
            target = np.full(len(LABELS), 0.3)
            if label == SURPRISE:
                target[ANGRY], target[SURPRISE] = 6.0, 3.0
            else:
                target[label] = 6.0
            readings[model, face] = rng.dirichlet(target * 4)
    return readings, labels


def test_folds_keep_every_photo_whole_and_are_reproducible():
    photos = np.array([f"photo{number % 9}.jpg" for number in range(40)])
    fold = folds_by_group(photos, 4)
    for photo in np.unique(photos):
        assert len(set(fold[photos == photo])) == 1
    assert set(fold) == {0, 1, 2, 3}
    np.testing.assert_array_equal(fold, folds_by_group(photos, 4))


def test_the_weighting_undoes_a_confusion_the_crop_vote_keeps():
    readings, labels = _confused_readings(700, seed=0)
    fresh, fresh_labels = _confused_readings(350, seed=1)
    crop_vote_right = (fresh.mean(axis=0).argmax(axis=1) == fresh_labels).mean()
    assert crop_vote_right < 6.2 / 7  # every surprised face read as angry
    weighting = fit_photo_weighting(readings, labels, strength=1.0)
    right = weighting.vote(fresh).argmax(axis=1) == fresh_labels
    assert right.mean() > 0.95
    assert right[fresh_labels == SURPRISE].mean() > 0.9


def test_a_stronger_penalty_keeps_the_coefficients_smaller():
    readings, labels = _confused_readings(210, seed=2)
    loose = fit_photo_weighting(readings, labels, strength=10.0)
    tight = fit_photo_weighting(readings, labels, strength=0.01)
    assert np.abs(tight.coefficients).sum() < np.abs(loose.coefficients).sum() / 3


def test_the_strength_with_the_lowest_out_of_fold_loss_is_chosen_and_recorded():
    readings, labels = _confused_readings(280, seed=3)
    photos = np.array([f"photo{number // 2}.jpg" for number in range(280)])
    weighting, evidence = choose_photo_weighting(readings, labels, photos)
    best = min(evidence["candidates"], key=lambda candidate: candidate["out_of_fold_nll"])
    assert evidence["chosen_C"] == best["C"]
    refitted = fit_photo_weighting(readings, labels, best["C"])
    np.testing.assert_allclose(weighting.coefficients, refitted.coefficients, atol=1e-6)
