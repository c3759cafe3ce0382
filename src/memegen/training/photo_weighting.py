"""Fit the photo weighting: how the members' readings are combined for faces found in photos.

The crop vote (``ensemble``, ``mirror``, ``gate``, ``bias``) is fitted on held-out
FER2013 crops, and on those it is as good as these members get. Faces the detector
finds in web photos differ in framing, light, resolution and in how their annotators
named expressions, and there the members make mistakes of their own: on ExpW's
photos they call surprised and shouting faces angry, and almost never say surprise.
``memegen.expressions.PhotoWeighting`` gives every (member, class read, class scored)
a weight, fitted here on labelled faces found in photos that none of the members
trained on, by multinomial logistic regression on the members' log-probabilities.

Why log-probabilities and not the members' features: a head on features fits a few
points better in the cross-validation recorded in
``experiments/expw-photo-weighting``, but would need every member's graph to expose
its features; this is numbers in the manifest over the graphs that ship.

The L2 strength is chosen by cross-validation with folds by photo: faces in one photo
share its light, camera and often its mood, so folds that split a photo would reward
learning the photo rather than the expression.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from memegen import LABELS
from memegen.expressions import LOG_FLOOR, ExpressionClassifier, PhotoWeighting
from memegen.training.datasets import DatasetSpec, expw_boxes
from memegen.training.export import save_manifest
from memegen.training.metrics import mean_nll
from memegen.training.report import match_photos

#: Inverse L2 strengths tried, as scikit-learn's ``C``: the penalty is
#: sum(coefficients²) / (2 · C · faces), added to the mean log-loss.
STRENGTHS = (0.01, 0.03, 0.1, 0.3, 1.0)
FOLDS = 4
METHOD = (
    "multinomial logistic regression of each found face's label on every model's "
    f"log-probabilities (floored at {LOG_FLOOR}), intercepts unpenalised, coefficients "
    "L2-penalised; the inverse strength C is the one of "
    f"{list(STRENGTHS)} with the lowest out-of-fold log-loss over {FOLDS} folds by photo, "
    "then refitted on every face"
)


def fit_photo_weighting(
    model_probabilities: np.ndarray, labels: np.ndarray, strength: float
) -> PhotoWeighting:
    """The weighting (L2 inverse strength ``strength``) that best reads ``labels`` from
    every model's probabilities (models × faces × labels)."""
    models, faces, classes = model_probabilities.shape
    logs = torch.as_tensor(np.log(np.clip(model_probabilities, LOG_FLOOR, None)),
                           dtype=torch.float64)
    targets = torch.as_tensor(labels, dtype=torch.long)
    coefficients = torch.zeros(models, classes, classes, dtype=torch.float64, requires_grad=True)
    intercepts = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [coefficients, intercepts], lr=1.0, max_iter=500, tolerance_grad=1e-9,
        tolerance_change=1e-12, line_search_fn="strong_wolfe",
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        scores = torch.einsum("mfr,mrs->fs", logs, coefficients) + intercepts
        value = torch.nn.functional.cross_entropy(scores, targets)
        value = value + (coefficients**2).sum() / (2 * strength * faces)
        value.backward()
        return value

    optimiser.step(loss)
    return PhotoWeighting(coefficients.detach().numpy(), intercepts.detach().numpy())


def folds_by_group(groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per face, every face of one group (photo) in the same fold."""
    names = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of = {name: position % folds for position, name in enumerate(names)}
    return np.array([fold_of[group] for group in groups])


def out_of_fold(
    model_probabilities: np.ndarray, labels: np.ndarray, fold: np.ndarray, strength: float
) -> np.ndarray:
    """Each face's probabilities from the weighting fitted on the other folds' faces."""
    result = np.zeros((len(labels), len(LABELS)), dtype=np.float32)
    for held in np.unique(fold):
        fitting, held_out = fold != held, fold == held
        weighting = fit_photo_weighting(
            model_probabilities[:, fitting], labels[fitting], strength
        )
        result[held_out] = weighting.vote(model_probabilities[:, held_out])
    return result


def choose_photo_weighting(
    model_probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[PhotoWeighting, dict]:
    """The weighting at the strength that cross-validates best by photo, and the evidence."""
    fold = folds_by_group(groups, FOLDS)
    candidates = []
    for strength in STRENGTHS:
        predicted = out_of_fold(model_probabilities, labels, fold, strength)
        candidates.append({
            "C": strength,
            "out_of_fold_nll": round(mean_nll(predicted, labels), 6),
            "out_of_fold_accuracy": round(float((predicted.argmax(1) == labels).mean()), 6),
        })
    chosen = min(candidates, key=lambda candidate: candidate["out_of_fold_nll"])
    weighting = fit_photo_weighting(model_probabilities, labels, chosen["C"])
    return weighting, {"method": METHOD, "candidates": candidates, "chosen_C": chosen["C"]}


def found_faces(
    classifier: ExpressionClassifier, spec: DatasetSpec, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Every model's readings of the labelled faces the detector finds in the spec's photos,
    exactly as the app reads them: (models × faces × labels, labels, photo of each face,
    labelled faces in all)."""
    boxes = expw_boxes(spec)
    photos = list(dict.fromkeys(item.image for item in boxes))
    chunks, labels, groups = [], [], []
    for name, photo in zip(photos, match_photos(spec.path, iou_threshold, boxes=boxes),
                           strict=True):
        if photo.matched:
            chunks.append(classifier.model_probabilities(photo.pixels, photo.matched))
            labels += photo.labels
            groups += [name] * len(photo.labels)
    if not chunks:
        raise ValueError(f"{spec.path}: the detector found none of the labelled faces")
    return np.concatenate(chunks, axis=1), np.array(labels), np.array(groups), len(boxes)


def add_photo_weighting(manifest_path: Path, photos_text: str, iou_threshold: float) -> Path:
    """Fit the photo weighting on the labelled photos ``photos_text`` names and write it,
    with its evidence, into the manifest (replacing any it had)."""
    spec = DatasetSpec.parse(photos_text)
    if spec.kind != "expw":
        raise ValueError(f"{photos_text!r}: the photo weighting needs ExpW-style photos")
    classifier = ExpressionClassifier(manifest_path)
    probabilities, labels, groups, labelled = found_faces(classifier, spec, iou_threshold)
    if len(np.unique(groups)) < FOLDS:
        raise ValueError(f"{photos_text!r}: faces found in fewer than {FOLDS} photos")
    weighting, evidence = choose_photo_weighting(probabilities, labels, groups)
    chosen = next(c for c in evidence["candidates"] if c["C"] == evidence["chosen_C"])
    crop_vote = classifier.vote(probabilities)
    evidence |= {
        "photos": {
            "spec": photos_text,
            "photos": len(np.unique(groups)),
            "labelled_faces": labelled,
            "faces_found": len(labels),
            "iou_threshold": iou_threshold,
            "class_counts": {
                label: int(count)
                for label, count in zip(LABELS, np.bincount(labels, minlength=len(LABELS)),
                                        strict=True)
            },
        },
        "crop_vote_accuracy": round(float((crop_vote.argmax(1) == labels).mean()), 6),
        "crop_vote_nll": round(mean_nll(crop_vote, labels), 6),
        "chosen_out_of_fold_accuracy": chosen["out_of_fold_accuracy"],
    }
    manifest = json.loads(Path(manifest_path).read_text())
    manifest["photo_weighting"] = weighting.to_manifest(
        [model.name for model in classifier.models]
    )
    manifest["photo_weighting_evidence"] = evidence
    return save_manifest(Path(manifest_path), manifest)
