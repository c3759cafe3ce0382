"""Train a gated member mostly on the faces it will be read on.

A gated member (``consult_below`` in its manifest entry) only ever sees the faces the
models before it are unsure of: about two in five FER2013 faces for the shipped vote.
Trained like the others it spends its capacity on every face alike, and the wider
members' gains turn out to lie largely on faces the gate never shows them. Repeating
the faces the gate would consult it on makes the training set look more like the
faces it will meet, while the rest keep it a sound reader of any face (the vote's
weights are still fitted with every model read on every face).

The gate is read through the manifest and ONNX files, as the app reads it, so the
choice is exactly the one inference makes. On the shipped width-56 member it did not
help (docs/training.md): the faces the vote is unsure of may be mostly those whose
label is doubtful.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from memegen.expressions import ExpressionClassifier, ManifestError
from memegen.training.datasets import FaceDataset
from memegen.training.report import crop_probabilities


def consulted_by_gate(manifest_path: Path, dataset: FaceDataset) -> np.ndarray:
    """Whether the manifest's gated last model would be read on each face of ``dataset``.

    The manifest is the one ``--focus`` names, so one whose last model is not gated is
    the user's to fix (:class:`ManifestError`).
    """
    classifier = ExpressionClassifier(Path(manifest_path))
    if classifier.models[-1].consult_below == math.inf:
        raise ManifestError(f"{manifest_path}: its last model is not gated, so every face "
                            "would be consulted; build the vote with `train gate` first")
    return classifier.consulted(crop_probabilities(classifier, dataset, gated=True))[-1]


def repeat_faces(dataset: FaceDataset, chosen: np.ndarray, copies: int) -> FaceDataset:
    """``dataset`` with ``copies`` more of each ``chosen`` face (a boolean mask) appended;
    the copies are augmented afresh each time they are drawn, so none is seen twice alike.

    ``TrainConfig`` has refused a negative ``--focus-copies`` already, so a bad argument
    here is the caller's bug: a ``ValueError``, not a ``UserError``.
    """
    if copies < 0:
        raise ValueError(f"copies must be 0 or more, not {copies}")
    if chosen.shape != (len(dataset),):
        raise ValueError(f"a mask of shape {chosen.shape} does not fit {len(dataset)} faces")
    repeated = np.tile(np.flatnonzero(chosen), copies)
    return dataset.subset(np.concatenate([np.arange(len(dataset)), repeated]))
