"""Read an ensemble's last models only on the faces the models before them are unsure of.

A further member helps the vote mostly on faces the members before it are torn
about, yet costs a full pass on every face. The gate is the conditional mirror
pass one level up: a gated model is read only where the weighted vote of the
models before it (before class bias) has a top probability below its
``consult_below``, and on the other faces the vote leaves it out
(``memegen.expressions.ExpressionClassifier.consulted``). With several gated
models this is a cascade: the cheap members read every face, and each dearer
one only the faces still in doubt.

Every combination of ``THRESHOLDS`` (and reading on every face) for the gated
models is replayed on the weighting set. Of those whose vote has a negative
log-likelihood at most ``MAX_LOSS`` nats above reading every model on every face,
the one with the lowest expected time a face wins, that time being each model's
measured time a pass on this machine times the passes it makes on the weighting
set's faces (its mirror pass included). An optional time budget caps the share of
faces the last model is read on. The vote weights stay those fitted with every
model read.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memegen.errors import UserError
from memegen.expressions import (
    ExpressionClassifier,
    ExpressionModel,
    ManifestError,
    read_manifest,
    unsure_faces,
)
from memegen.facecrop import crop_face
from memegen.training.class_bias import check_refittable, save_refitting_class_bias
from memegen.training.datasets import FaceDataset
from memegen.training.export import (
    carry_photo_models,
    copy_model_file,
    refuse_source_folder,
    staged_into,
)
from memegen.training.metrics import mean_nll
from memegen.training.report import crop_probabilities

THRESHOLDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
MAX_LOSS = 0.001
TIMED_CALLS = 30
TIMED_ROUNDS = 5
METHOD = (
    "each gated model is read only on faces whose weighted vote of the models before it "
    "(before class bias) has a top probability below its threshold, one of "
    f"{list(THRESHOLDS)} or every face; of the combinations that raise the weighting set's "
    f"vote negative log-likelihood by at most {MAX_LOSS} nats against reading every model "
    "on every face, the one with the lowest expected time a face (measured time a pass × "
    "passes on the weighting set) wins; vote weights unchanged"
)


def with_gates(
    classifier: ExpressionClassifier, thresholds: Sequence[float]
) -> ExpressionClassifier:
    """A copy of ``classifier`` whose last ``len(thresholds)`` models are consulted below
    those thresholds (``math.inf``: every face) and whose other models read every face."""
    gated = copy.copy(classifier)
    ungated = len(classifier.models) - len(thresholds)
    gated.models = [
        dataclasses.replace(model, consult_below=math.inf)
        for model in classifier.models[:ungated]
    ] + [
        dataclasses.replace(model, consult_below=threshold)
        for model, threshold in zip(classifier.models[ungated:], thresholds, strict=True)
    ]
    return gated


def choose_gates(
    classifier: ExpressionClassifier,
    probabilities: np.ndarray,
    labels: np.ndarray,
    ms_per_read: np.ndarray,
    gated: int = 1,
    max_consulted_share: float = 1.0,
) -> tuple[tuple[float, ...], dict]:
    """The ``consult_below`` of each of the last ``gated`` models, from every model's
    ``probabilities`` (models × faces × labels) on the weighting set, and the numbers
    they were chosen on.

    ``ms_per_read`` (models × faces) is what reading each model on each face costs, its
    mirror pass included. ``max_consulted_share`` is a time budget for the last model:
    only combinations that read it on at most that share of the faces are chosen from,
    and when none of them is within ``MAX_LOSS`` of reading every model on every face,
    the one whose vote NLL is lowest wins.

    ``gated`` and ``max_consulted_share`` are ``train gate``'s flags, so a ``gated`` the
    ensemble has no room for, or a budget no threshold meets, is the user's to fix
    (:class:`UserError`).
    """
    _check_room_to_gate(gated, len(classifier.models))

    def outcome(thresholds: tuple[float, ...]) -> dict:
        candidate = with_gates(classifier, thresholds)
        consulted = candidate.consulted(probabilities)
        vote = candidate.uncorrected_vote(probabilities)
        return {
            "below": [None if threshold == math.inf else threshold for threshold in thresholds],
            "consulted_shares": [round(float(share), 4)
                                 for share in consulted[-gated:].mean(axis=1)],
            "expected_ms": round(float((consulted * ms_per_read).sum(axis=0).mean()), 4),
            "nll": round(mean_nll(vote, labels), 6),
            "accuracy": round(float((vote.argmax(axis=1) == labels).mean()), 6),
        }

    every_face = outcome((math.inf,) * gated)
    # "Every face" stays a choice for each model under a budget too: reading an earlier
    # one on every face can spare the last, and only the last one's share is capped.
    outcomes = {
        thresholds: outcome(thresholds)
        for thresholds in itertools.product((*THRESHOLDS, math.inf), repeat=gated)
    }
    within_budget = {
        thresholds: numbers for thresholds, numbers in outcomes.items()
        if numbers["consulted_shares"][-1] <= max_consulted_share
    }
    if not within_budget:
        raise UserError(f"no threshold reads the last model on at most {max_consulted_share} "
                        f"of the faces (the lowest, {THRESHOLDS[-1]}, reads "
                        f"{outcomes[(THRESHOLDS[-1],) * gated]['consulted_shares'][-1]})")
    affordable = [
        thresholds for thresholds, numbers in within_budget.items()
        if numbers["nll"] <= every_face["nll"] + MAX_LOSS
    ]
    chosen = min(
        affordable, key=lambda thresholds: (within_budget[thresholds]["expected_ms"], thresholds)
    ) if affordable else min(
        within_budget, key=lambda thresholds: within_budget[thresholds]["nll"]
    )
    evidence = {
        "models": [model.name for model in classifier.models[-gated:]],
        "max_consulted_share": max_consulted_share,
        "every_face": every_face,
        "chosen": outcomes[chosen],
        "front": _front(outcomes),
        "combinations_tried": len(outcomes),
    }
    return chosen, evidence


def _front(outcomes: dict[tuple[float, ...], dict]) -> list[dict]:
    """The outcomes no other is both faster and better than: what each millisecond buys."""
    front: list[dict] = []
    for _, numbers in sorted(outcomes.items(), key=lambda item: (
        item[1]["expected_ms"], item[1]["nll"], item[0]
    )):
        if not front or numbers["nll"] < front[-1]["nll"]:
            front.append(numbers)
    return front


def read_costs(
    classifier: ExpressionClassifier, dataset: FaceDataset
) -> tuple[np.ndarray, np.ndarray]:
    """Each model's median time a pass on this machine in ms, and how many passes (1, or 2
    where it would also read the mirror) it makes on each face (models × faces) of
    ``dataset``."""
    ms_a_pass = [
        _ms_a_pass(model, _whole_crops(dataset.images[:1], model.input_size))
        for model in classifier.models
    ]
    passes = [1 + _mirrored(model, dataset) for model in classifier.models]
    return np.array(ms_a_pass), np.stack(passes)


def _mirrored(model: ExpressionModel, dataset: FaceDataset) -> np.ndarray:
    """Which faces ``model`` would read again mirrored. Only a model with a mirror pass
    (``mirror_below`` above 0) has to read every face to tell."""
    if model.mirror_below <= 0:
        return np.zeros(len(dataset), dtype=bool)
    crops = _whole_crops(dataset.images, model.input_size)
    return unsure_faces(model.read(crops), model.mirror_below)


def _whole_crops(images: np.ndarray, size: int) -> np.ndarray:
    """Each image, already a face, cut as ``crop_probabilities`` cuts it (no margin)."""
    return np.stack([crop_face(image, (0, 0, image.shape[1], image.shape[0]), size, 0.0)
                     for image in images])


def _ms_a_pass(model: ExpressionModel, crop: np.ndarray) -> float:
    """Median over rounds of the mean time of one face's plain pass, as inference makes it."""
    model.read(crop)
    rounds = []
    for _ in range(TIMED_ROUNDS):
        start = time.perf_counter()
        for _ in range(TIMED_CALLS):
            model.read(crop)
        rounds.append((time.perf_counter() - start) * 1000 / TIMED_CALLS)
    return float(np.median(rounds))


def _check_room_to_gate(gated: int, models: int) -> None:
    if not 1 <= gated < models:
        raise UserError(f"{gated} gated models: the first of {models} "
                        "has no models before it to gate it")


def fit_gate(
    manifest_path: Path,
    weighting_set: FaceDataset,
    out_dir: Path,
    max_consulted_share: float = 1.0,
    gated: int = 1,
) -> Path:
    """Copy the ensemble to ``out_dir`` with its last ``gated`` models gated as
    ``choose_gates`` finds.

    Class biases (and the temperature fitted with them), if the source had them, are
    fitted again on ``weighting_set`` for the gated vote. Everything is written beside
    ``out_dir`` and moved in at the end (:func:`staged_into`).
    """
    manifest_path = Path(manifest_path)
    refuse_source_folder(manifest_path, out_dir, "gated ensemble")
    manifest = read_manifest(manifest_path)
    check_refittable(manifest, weighting_set)
    if len(manifest["models"]) < 2:
        raise ManifestError(f"{manifest_path}: a gate needs at least two models")
    # Before the minutes of reading every face with every model, not after.
    _check_room_to_gate(gated, len(manifest["models"]))
    classifier = ExpressionClassifier(manifest_path)
    probabilities = crop_probabilities(classifier, weighting_set)
    ms_a_pass, passes = read_costs(classifier, weighting_set)
    thresholds, evidence = choose_gates(
        classifier, probabilities, weighting_set.labels, ms_a_pass[:, None] * passes,
        gated, max_consulted_share,
    )
    for entry in manifest["models"]:
        entry.pop("consult_below", None)
    for entry, threshold in zip(manifest["models"][-gated:], thresholds, strict=True):
        if threshold != math.inf:
            entry["consult_below"] = threshold
    manifest["gate_evidence"] = {
        "method": METHOD,
        "weighting_set": {"name": weighting_set.name, "examples": len(weighting_set)},
        "ms_a_pass": {model.name: round(float(ms), 4)
                      for model, ms in zip(classifier.models, ms_a_pass, strict=True)},
        "mirrored_shares": {model.name: round(float((faces == 2).mean()), 4)
                            for model, faces in zip(classifier.models, passes, strict=True)},
    } | evidence
    with staged_into(out_dir) as staging:
        carry_photo_models(manifest, manifest_path.parent, staging)
        for entry in manifest["models"]:
            copy_model_file(entry["file"], manifest_path.parent, staging)
        save_refitting_class_bias(manifest, staging / "manifest.json", weighting_set)
    return out_dir / "manifest.json"
