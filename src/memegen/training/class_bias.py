"""Per-class biases that shift the vote's class priors, fitted on held-out data.

Every member learned FER2013's class balance: 25 % happy faces, 1.5 % disgusted
ones. Their vote therefore says "disgust" only when it is very sure, and its
recall on rare classes is low. A bias per class, added to the vote's
log-probabilities (``memegen.expressions.shift_priors``), moves it toward a
more even prior.

How far to move is the ``balance`` of the fit: the biases minimise the
negative log-likelihood on a weighting set where each face counts
1 / (its class's count) ** balance. Balance 0 only calibrates the vote to the
weighting set's own class balance; balance 1 treats every class as equally
common, which is what macro recall measures. The fit tries a few balances and
keeps the largest whose accuracy on the weighting set is not below the
uncorrected vote's by more than one standard error of the paired difference:
as much evenness as costs no accuracy the weighting set can tell from noise
(without that allowance, a loss of six faces in 2,297 would decide). Every
candidate's numbers go into the manifest as the evidence.

On request the same step then fits the shifted vote's temperature
(``memegen.training.calibration``): the bias moves probability between classes,
the temperature sets how sure the result is, and one is fitted for the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from memegen import LABELS
from memegen.expressions import ExpressionClassifier, ManifestError, shift_priors
from memegen.training.calibration import fit_temperature, temperature_evidence
from memegen.training.datasets import FaceDataset, require_every_class
from memegen.training.export import per_label, save_manifest
from memegen.training.metrics import summarise
from memegen.training.report import uncorrected_vote

BALANCES = (0.0, 0.25, 0.5, 0.75, 1.0)
METHOD = (
    "per-class log-probability biases fitted by L-BFGS to minimise the weighting set's "
    "negative log-likelihood with each face weighted by 1 / class count ** balance; the "
    "largest balance whose accuracy is not below the uncorrected vote's by more than one "
    "standard error of the paired difference (face by face, right minus right) is kept"
)


def fit_class_bias(vote: np.ndarray, labels: np.ndarray, balance: float) -> np.ndarray:
    """Biases (one per class, mean zero) that fit ``vote`` (faces × classes) to ``labels``."""
    classes = vote.shape[1]
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    face_weights = np.maximum(counts, 1.0)[labels] ** -balance
    face_weights /= face_weights.sum()
    log_vote = torch.as_tensor(np.log(np.clip(vote, 1e-12, None)), dtype=torch.float64)
    targets = torch.as_tensor(labels, dtype=torch.long)
    weights = torch.as_tensor(face_weights)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [bias], lr=1.0, max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        picked = torch.log_softmax(log_vote + bias, dim=1)[torch.arange(len(labels)), targets]
        value = -(picked * weights).sum()
        value.backward()
        return value

    optimiser.step(loss)
    fitted = bias.detach().numpy()
    return fitted - fitted.mean()


def _numbers(vote: np.ndarray, labels: np.ndarray) -> dict:
    summary = summarise(vote, labels)
    recalls = [summary["per_class"][label]["recall"] for label in LABELS]
    return {
        "accuracy": summary["accuracy"],
        "macro_recall": round(float(np.mean(recalls)), 6),
        "recall": {label: round(value, 6) for label, value in zip(LABELS, recalls, strict=True)},
    }


def paired_accuracy_change(right: np.ndarray, right_before: np.ndarray) -> tuple[float, float]:
    """The change in accuracy between two readings of the same faces, and its standard error.

    Both readings share most faces' outcomes, so the error comes from the faces
    whose outcome changed, face by face, not from two independent accuracies.
    """
    change = right.astype(np.float64) - right_before.astype(np.float64)
    return float(change.mean()), float(change.std(ddof=1) / np.sqrt(len(change)))


def choose_class_bias(vote: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict]:
    """The biases of the most even balance whose accuracy loss is within noise, and the evidence."""
    uncorrected = _numbers(vote, labels)
    right_before = vote.argmax(axis=1) == labels
    candidates, chosen, chosen_balance = [], np.zeros(vote.shape[1]), None
    for balance in BALANCES:
        bias = fit_class_bias(vote, labels, balance)
        shifted = shift_priors(vote, bias)
        change, error = paired_accuracy_change(shifted.argmax(axis=1) == labels, right_before)
        candidates.append({
            "balance": balance,
            **_numbers(shifted, labels),
            "accuracy_change": round(change, 6),
            "standard_error": round(error, 6),
        })
        if change >= -error:
            chosen, chosen_balance = bias, balance
    evidence = {
        "method": METHOD,
        "uncorrected": uncorrected,
        "candidates": candidates,
        "chosen_balance": chosen_balance,
    }
    return chosen, evidence


def add_class_bias(
    manifest_path: Path, weighting_set: FaceDataset, temperature: bool = False
) -> Path:
    """Fit the biases, then with ``temperature`` the vote's temperature, on ``weighting_set``
    through the exported models; write them into the manifest with their evidence, replacing
    what it had (a temperature fitted for the old biases is dropped). ``weighting_set``
    must hold faces of every class, and the vote must read them as numbers: a NaN vote
    (:class:`ManifestError`) would give NaN biases, and with them NaN for every face.
    The manifest is replaced whole (``save_manifest``), or not at all."""
    _require_every_class(weighting_set)
    classifier = ExpressionClassifier(manifest_path)
    vote = uncorrected_vote(classifier, weighting_set)
    if not np.isfinite(vote).all():
        raise ManifestError(
            f"train bias: {manifest_path}: its vote reads faces of {weighting_set.name} as NaN "
            "or infinity (a model answers so), so no class bias can be fitted"
        )
    labels = weighting_set.labels
    bias, evidence = choose_class_bias(vote, labels)
    weighting = {
        "name": weighting_set.name,
        "examples": len(weighting_set),
        "class_counts": weighting_set.class_counts(),
    }
    manifest = json.loads(Path(manifest_path).read_text())
    manifest["class_bias"] = per_label(bias)
    manifest["class_bias_evidence"] = evidence | {"weighting_set": weighting}
    manifest.pop("vote_temperature", None)
    manifest.pop("vote_temperature_evidence", None)
    if temperature:
        shifted = shift_priors(vote, bias)
        fitted = fit_temperature(shifted, labels)
        manifest["vote_temperature"] = fitted
        manifest["vote_temperature_evidence"] = temperature_evidence(shifted, labels, fitted)
    return save_manifest(Path(manifest_path), manifest)


def _require_every_class(weighting_set: FaceDataset) -> None:
    require_every_class(weighting_set.labels, f"weighting set {weighting_set.name}",
                        "a class bias")


def check_refittable(manifest: dict, weighting_set: FaceDataset) -> None:
    """Raise :class:`DatasetError` if ``manifest`` has class biases that
    ``save_refitting_class_bias`` could not fit again on ``weighting_set`` (it lacks a
    class): called before a step that changes the vote does its work and writes files."""
    if "class_bias" in manifest:
        _require_every_class(weighting_set)


def save_refitting_class_bias(manifest: dict, path: Path, weighting_set: FaceDataset) -> Path:
    """Write ``manifest`` for a vote that changed (new passes, weights or gates): class
    biases, and the temperature fitted with them, go stale, and are fitted again on
    ``weighting_set`` if the manifest had them."""
    had_class_bias = manifest.pop("class_bias", None) is not None
    had_temperature = manifest.pop("vote_temperature", None) is not None
    for stale in ("class_bias_evidence", "vote_temperature_evidence"):
        manifest.pop(stale, None)
    save_manifest(path, manifest)
    if had_class_bias:
        add_class_bias(path, weighting_set, temperature=had_temperature)
    return path
