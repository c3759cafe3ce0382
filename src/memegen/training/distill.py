"""Training targets that mix the labels with an exported ensemble's vote (distillation).

FER2013 has one annotator's label per face, and ten FER+ annotators' majority picks
another class for about a third of them (8,923 of the 27,918 training and PublicTest
faces whose FER+ majority is one of our classes). A student that learns from the vote's
probabilities as well sees which faces are unclear, and how: a fearful face that
also looks surprised gets a target with some surprise in it.

The teacher is read through its manifest and ONNX files, as the app reads it, so
training needs none of the teacher's PyTorch code. The vote is taken without the
class bias: a student should learn the data's own class priors, and the bias is
fitted again for whatever ensemble the student joins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from memegen import LABELS
from memegen.errors import UserError
from memegen.expressions import ExpressionClassifier
from memegen.training.datasets import FaceDataset
from memegen.training.report import uncorrected_vote


def teacher_vote(manifest_path: Path, dataset: FaceDataset) -> np.ndarray:
    """The ensemble's vote (faces × labels) on every crop, without its class bias; a vote
    that is not finite (a broken graph or weight) is a ``UserError`` naming the manifest,
    since the student would learn nothing from it but NaN weights."""
    vote = uncorrected_vote(ExpressionClassifier(Path(manifest_path)), dataset)
    broken = int((~np.isfinite(vote).all(axis=1)).sum())
    if broken:
        raise UserError(
            f"{manifest_path}: the teacher's vote is not finite on {broken} of {len(vote)} "
            "training faces; give a teacher whose models read them"
        )
    return vote


def teacher_digest(manifest_path: Path) -> str:
    """A SHA-256 digest of the manifest and of the crop models' files it names, which a run
    records so that it resumes only with the teacher it began with: another manifest at
    the same path, or models exported again, would change the targets midway.

    A manifest that cannot be read for its files is digested alone:
    ``ExpressionClassifier`` says what is wrong with it when the vote is taken.
    """
    manifest = Path(manifest_path).read_bytes()
    digest = hashlib.sha256(manifest)
    try:
        files = [Path(manifest_path).parent / entry["file"]
                 for entry in json.loads(manifest)["models"]]
    except (ValueError, TypeError, KeyError):
        files = []
    for path in files:
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def blend_targets(dataset: FaceDataset, teacher: np.ndarray, share: float) -> np.ndarray:
    """``share`` of the teacher's probabilities plus the rest of the dataset's own targets
    (its soft labels where it has them, else its labels as one-hot rows)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the teacher's share must be between 0 and 1, not {share}")
    if teacher.shape != (len(dataset), len(LABELS)):
        raise ValueError(f"teacher probabilities of shape {teacher.shape} do not fit "
                         f"{len(dataset)} faces")
    own = dataset.soft_labels
    if own is None:
        own = np.eye(len(LABELS), dtype=np.float32)[dataset.labels]
    return ((1.0 - share) * own + share * teacher).astype(np.float32)


def with_teacher_targets(dataset: FaceDataset, manifest_path: Path, share: float) -> FaceDataset:
    """``dataset`` with blended soft labels; its hard labels stay for balancing and counts."""
    targets = blend_targets(dataset, teacher_vote(manifest_path, dataset), share)
    return dataclasses.replace(dataset, soft_labels=targets)
