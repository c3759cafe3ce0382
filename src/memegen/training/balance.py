"""Class balancing: which examples a model sees, and how much each class weighs.

FER2013 has 16 times more happy faces than disgusted ones. Three remedies,
selectable per run: ``undersample`` (drop examples of big classes),
``oversample`` (repeat examples of small classes; the augmentation in the
training loop makes the repeats differ) and ``weighted`` (keep the data,
weight the loss by inverse class frequency).
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("none", "undersample", "oversample", "weighted")


def undersample(labels: np.ndarray, seed: int, per_class: int | None = None) -> np.ndarray:
    """Indices with at most ``per_class`` examples of each class (default: the smallest count)."""
    counts = np.bincount(labels)
    present = counts[counts > 0]
    target = int(present.min()) if per_class is None else per_class
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == label))[:target]
        for label in np.flatnonzero(counts)
    ]
    return np.sort(np.concatenate(chosen))


def oversample(labels: np.ndarray, seed: int, per_class: int | None = None) -> np.ndarray:
    """Indices with every class filled up to ``per_class`` (default: the largest count).

    Each original example appears once before any appears twice, so small
    classes are spread evenly over their members rather than drawn at random.
    """
    counts = np.bincount(labels)
    target = int(counts.max()) if per_class is None else per_class
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.flatnonzero(counts):
        members = np.flatnonzero(labels == label)
        repeats, extra = divmod(target, len(members))
        chosen.append(np.tile(members, repeats))
        chosen.append(rng.permutation(members)[:extra])
    return np.sort(np.concatenate(chosen))


def inverse_frequency_weights(labels: np.ndarray, classes: int) -> np.ndarray:
    """Loss weight per class, ``n / (classes present × count)`` (scikit-learn's
    "balanced"): a balanced set gets all ones, and a class with no examples weight 0."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = np.zeros(classes)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


def balance(
    labels: np.ndarray, strategy: str, classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices of the examples to train on, loss weights per class or None) for ``strategy``."""
    if strategy == "none":
        return np.arange(len(labels)), None
    if strategy == "undersample":
        return undersample(labels, seed), None
    if strategy == "oversample":
        return oversample(labels, seed), None
    if strategy == "weighted":
        return np.arange(len(labels)), inverse_frequency_weights(labels, classes)
    raise ValueError(f"unknown balancing {strategy!r}; choose from {', '.join(STRATEGIES)}")
