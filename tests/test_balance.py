import numpy as np
import pytest

from memegen.training.balance import balance, inverse_frequency_weights, oversample, undersample

LABELS = np.array([0] * 6 + [1] * 3 + [2] * 1)


def test_undersample_cuts_every_class_to_the_smallest():
    chosen = undersample(LABELS, seed=0)
    assert np.bincount(LABELS[chosen]).tolist() == [1, 1, 1]


def test_undersample_to_a_given_count_keeps_smaller_classes_whole():
    chosen = undersample(LABELS, seed=0, per_class=3)
    assert np.bincount(LABELS[chosen]).tolist() == [3, 3, 1]


def test_oversample_fills_every_class_to_the_largest():
    chosen = oversample(LABELS, seed=0)
    assert np.bincount(LABELS[chosen]).tolist() == [6, 6, 6]


def test_oversample_uses_every_member_before_repeating_any():
    chosen = oversample(LABELS, seed=0)
    class_one = chosen[LABELS[chosen] == 1]
    assert np.bincount(class_one, minlength=10)[6:9].tolist() == [2, 2, 2]


def test_inverse_frequency_weights_are_exact():
    # 10 examples, 3 classes: 10/(3·6), 10/(3·3), 10/(3·1)
    np.testing.assert_allclose(
        inverse_frequency_weights(LABELS, 4), [10 / 18, 10 / 9, 10 / 3, 0.0]
    )


def test_balanced_labels_get_unit_weights():
    np.testing.assert_allclose(inverse_frequency_weights(np.array([0, 1, 2, 0, 1, 2]), 3), 1.0)


def test_balance_dispatches_each_strategy():
    assert len(balance(LABELS, "none", 3, 0)[0]) == 10
    assert len(balance(LABELS, "undersample", 3, 0)[0]) == 3
    assert len(balance(LABELS, "oversample", 3, 0)[0]) == 18
    indices, weights = balance(LABELS, "weighted", 3, 0)
    assert len(indices) == 10 and weights is not None
    with pytest.raises(ValueError, match="unknown balancing"):
        balance(LABELS, "smote", 3, 0)
