"""Read an ensemble's last model only on the faces the models before it are unsure of.

A third member helps the vote mostly on faces the first two are torn about,
yet costs a full pass on every face. The gate is the conditional mirror pass
one level up: the last model is read only where the weighted vote of the
models before it (before class bias) has a top probability below
``consult_below``, and on the other faces the vote leaves it out
(``memegen.expressions.ExpressionClassifier.consulted``). The threshold is the
lowest of ``THRESHOLDS`` whose vote on the weighting set has a negative
log-likelihood at most ``MAX_LOSS`` nats above reading the model on every face,
optionally among those that read it on at most a given share of the faces (a
time budget); the vote weights stay those fitted with every model read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np

from memegen.expressions import ExpressionClassifier
from memegen.training.class_bias import save_refitting_class_bias
from memegen.training.datasets import FaceDataset
from memegen.training.metrics import mean_nll
from memegen.training.report import crop_probabilities

THRESHOLDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
MAX_LOSS = 0.001
METHOD = (
    "the last model is read only on faces whose weighted vote of the models before it "
    "(before class bias) has a top probability below the lowest of "
    f"{list(THRESHOLDS)} that raises the weighting set's vote negative log-likelihood by at "
    f"most {MAX_LOSS} nats against reading it on every face; vote weights unchanged"
)


def with_gate(classifier: ExpressionClassifier, threshold: float) -> ExpressionClassifier:
    """A copy of ``classifier`` whose last model is consulted below ``threshold``."""
    gated = copy.copy(classifier)
    gated.models = [
        *classifier.models[:-1],
        dataclasses.replace(classifier.models[-1], consult_below=threshold),
    ]
    return gated


def choose_gate(
    classifier: ExpressionClassifier,
    probabilities: np.ndarray,
    labels: np.ndarray,
    max_consulted_share: float = 1.0,
) -> tuple[float, dict]:
    """The last model's ``consult_below`` for every model's ``probabilities`` (models ×
    faces × labels) on the weighting set, and the numbers it was chosen on.

    ``max_consulted_share`` is a time budget: only thresholds that read the model on at
    most that share of the faces are chosen from, and when none of them is within
    ``MAX_LOSS`` of reading it on every face, the one whose vote NLL is lowest wins.
    """
    def outcome(threshold: float) -> dict:
        gated = with_gate(classifier, threshold)
        vote = gated.uncorrected_vote(probabilities)
        return {
            "consulted_share": round(float(gated.consulted(probabilities)[-1].mean()), 4),
            "nll": round(mean_nll(vote, labels), 6),
            "accuracy": round(float((vote.argmax(axis=1) == labels).mean()), 6),
        }

    every_face = outcome(math.inf)
    outcomes = {threshold: outcome(threshold) for threshold in THRESHOLDS}
    if max_consulted_share >= 1.0:
        outcomes[math.inf] = every_face
    within_budget = {
        threshold: numbers for threshold, numbers in outcomes.items()
        if numbers["consulted_share"] <= max_consulted_share
    }
    if not within_budget:
        raise ValueError(f"no threshold reads the last model on at most {max_consulted_share} "
                         f"of the faces (the lowest, {THRESHOLDS[-1]}, reads "
                         f"{outcomes[THRESHOLDS[-1]]['consulted_share']})")
    affordable = [
        threshold for threshold, numbers in within_budget.items()
        if numbers["nll"] <= every_face["nll"] + MAX_LOSS
    ]
    chosen = min(affordable) if affordable else min(
        within_budget, key=lambda threshold: within_budget[threshold]["nll"]
    )
    evidence = {
        "model": classifier.models[-1].name,
        "max_consulted_share": max_consulted_share,
        "below": None if chosen == math.inf else chosen,
        "every_face": every_face,
        "by_threshold": {str(threshold): outcomes[threshold] for threshold in THRESHOLDS},
    }
    return chosen, evidence


def fit_gate(
    manifest_path: Path,
    weighting_set: FaceDataset,
    out_dir: Path,
    max_consulted_share: float = 1.0,
) -> Path:
    """Copy the ensemble to ``out_dir`` with its last model gated as ``choose_gate`` finds.

    Class biases (and the temperature fitted with them), if the source had them, are
    fitted again on ``weighting_set`` for the gated vote.
    """
    manifest_path = Path(manifest_path)
    if Path(out_dir).resolve() == manifest_path.parent.resolve():
        raise ValueError("write the gated ensemble to another folder than the source's")
    manifest = json.loads(manifest_path.read_text())
    if len(manifest["models"]) < 2:
        raise ValueError(f"{manifest_path}: a gate needs at least two models")
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in manifest["models"]:
        shutil.copyfile(manifest_path.parent / entry["file"], out_dir / entry["file"])
    classifier = ExpressionClassifier(manifest_path)
    probabilities = crop_probabilities(classifier, weighting_set)
    threshold, evidence = choose_gate(
        classifier, probabilities, weighting_set.labels, max_consulted_share
    )
    last = manifest["models"][-1]
    last.pop("consult_below", None)
    if threshold != math.inf:
        last["consult_below"] = threshold
    manifest["gate_evidence"] = {
        "method": METHOD,
        "weighting_set": {"name": weighting_set.name, "examples": len(weighting_set)},
    } | evidence
    return save_refitting_class_bias(manifest, out_dir / "manifest.json", weighting_set)
