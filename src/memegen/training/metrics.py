"""Classification metrics in plain numpy, shared by the ensemble step and the report.

Kept here (not scikit-learn) so the training extra stays small and every
number in a manifest or report comes from one definition: a class nobody
predicted has precision 0, a class absent from the labels has recall 0, and
macro-F1 averages over the classes present in the labels.
"""

from __future__ import annotations

import numpy as np

from memegen import LABELS


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts (true class × predicted class)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    hits = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


CALIBRATION_BINS = 10


def mean_nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped at 1e-12)."""
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error: the gap between top probability and accuracy in ten
    equal-width bins of top probability, averaged with each bin weighted by its faces."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    error = 0.0
    for index in np.unique(bins):
        members = bins == index
        error += members.mean() * abs(right[members].mean() - confidence[members].mean())
    return float(error)


def summarise(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, macro-F1, mean negative log-likelihood, calibration error and per-class
    numbers, JSON-ready."""
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, probabilities.shape[1])
    classes = per_class(matrix)
    present = classes["support"] > 0
    return {
        "examples": len(labels),
        "accuracy": round(float((predicted == labels).mean()), 6),
        "macro_f1": round(float(classes["f1"][present].mean()), 6),
        "nll": round(mean_nll(probabilities, labels), 6),
        "calibration_error": round(calibration_error(probabilities, labels), 6),
        "per_class": {
            label: {
                "precision": round(float(classes["precision"][i]), 6),
                "recall": round(float(classes["recall"][i]), 6),
                "f1": round(float(classes["f1"][i]), 6),
                "support": int(classes["support"][i]),
            }
            for i, label in enumerate(LABELS)
        },
        "confusion": matrix.tolist(),
    }
