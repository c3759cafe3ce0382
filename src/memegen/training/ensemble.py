"""Per-model, per-class vote weights learned on held-out data, written into the manifest.

Inference combines the models with ``memegen.expressions.weighted_vote``: for
each class, the weighted mean of the models' probabilities, then renormalised
over classes. This module picks those weights.

Method: maximum likelihood on a weighting set none of the models trained on.
For each class the weights are a softmax over the models (so non-negative, and
a class's score stays a convex mix of the models' probabilities), and the
logits are fitted with L-BFGS to minimise the mean negative log-likelihood of
the true label under exactly the vote inference runs, plus a small L2 penalty
that pulls toward equal weights when the data cannot tell the models apart.
Why not per-class precision: a model that seldom says "disgust" gets a high
"disgust" precision and so a loud voice exactly where it is mostly silent;
the likelihood judges the vote that ships, with calibration, recall and
precision all in it. The per-class precision and recall of every model are
still written beside the weights, as the evidence a reader can check.

Weights are stored scaled so that each class's weights sum to the number of
models: 1.0 everywhere means equal say.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from memegen.expressions import weighted_vote
from memegen.training.datasets import FaceDataset
from memegen.training.export import (
    export_onnx,
    model_entry,
    staged_into,
    unique_names,
    write_manifest,
)
from memegen.training.metrics import mean_nll, summarise
from memegen.training.train import RunError, load_trained, predict_probabilities

METHOD = (
    "per-class softmax weights over models fitted by L-BFGS to minimise the validation "
    "negative log-likelihood of memegen.expressions.weighted_vote, L2 penalty on the logits"
)


def vote_nll(probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under the weighted vote (the fitted loss)."""
    return mean_nll(weighted_vote(probabilities, weights), labels)


def fit_weights(probabilities: np.ndarray, labels: np.ndarray, penalty: float = 1e-3) -> np.ndarray:
    """Vote weights (models × classes) that maximise the likelihood of ``labels``.

    ``probabilities`` is models × examples × classes, on data none of the
    models trained on (weights fitted on training data trust overfitted models).
    """
    models = probabilities.shape[0]
    if models == 1:
        return np.ones((1, probabilities.shape[2]))
    probs = torch.as_tensor(probabilities, dtype=torch.float64)
    targets = torch.as_tensor(labels, dtype=torch.long)
    logits = torch.zeros(models, probabilities.shape[2], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [logits], lr=1.0, max_iter=200, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        mix = (probs * torch.softmax(logits, dim=0)[:, None, :]).sum(dim=0)
        vote = mix / mix.sum(dim=1, keepdim=True)
        picked = vote[torch.arange(len(targets)), targets].clamp_min(1e-12)
        value = -picked.log().mean() + penalty * logits.pow(2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return torch.softmax(logits.detach(), dim=0).numpy() * models


def voting_evidence(
    names: Sequence[str],
    probabilities: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    weighting_set: FaceDataset,
) -> dict:
    """What the weights rest on: each model's and both votes' numbers on the weighting set."""
    equal = np.ones_like(weights)
    return {
        "method": METHOD,
        "weighting_set": {
            "name": weighting_set.name,
            "examples": len(weighting_set),
            "class_counts": weighting_set.class_counts(),
        },
        "models": {
            name: _without_confusion(summarise(model_probabilities, labels))
            for name, model_probabilities in zip(names, probabilities, strict=True)
        },
        "equal_weights": _without_confusion(summarise(weighted_vote(probabilities, equal), labels)),
        "learned_weights": _without_confusion(
            summarise(weighted_vote(probabilities, weights), labels)
        ),
    }


def validation_metrics(evidence: dict, name: str) -> dict:
    """A model's headline numbers on the weighting set, as its manifest entry records them."""
    measured = evidence["models"][name]
    return {key: measured[key] for key in ("examples", "accuracy", "macro_f1", "nll")}


def _without_confusion(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "confusion"}


def build_ensemble(
    run_dirs: Sequence[Path],
    weighting_set: FaceDataset,
    out_dir: Path,
    crop_margin: float,
    mirror: bool = True,
) -> Path:
    """Export every run to ONNX and write the manifest with fitted weights and their evidence.

    A run that reads a weighting face as NaN or infinity is refused (:class:`RunError`):
    weights fitted on such readings are NaN, and so would be every vote.
    """
    names = unique_names(run_dirs)
    with staged_into(out_dir) as staging:
        trained = [load_trained(run_dir) for run_dir in run_dirs]
        probabilities = np.stack(
            [
                predict_probabilities(network, weighting_set.images, cfg, mirror=mirror)
                for network, cfg in trained
            ]
        )
        for run_dir, readings in zip(run_dirs, probabilities, strict=True):
            if not np.isfinite(readings).all():
                raise RunError(
                    f"train ensemble: {run_dir} reads faces of {weighting_set.name} as NaN or "
                    "infinity, so no vote weights can be fitted; leave it out or retrain it"
                )
        weights = fit_weights(probabilities, weighting_set.labels)
        evidence = voting_evidence(
            names, probabilities, weighting_set.labels, weights, weighting_set
        )
        entries = []
        for name, (network, config), model_weights in zip(names, trained, weights, strict=True):
            file_name = f"{name}.onnx"
            export_onnx(network, 48, staging / file_name, mirror)
            entries.append(
                model_entry(
                    name,
                    file_name,
                    config,
                    crop_margin,
                    model_weights,
                    {"validation": validation_metrics(evidence, name)},
                    mirror,
                )
            )
        write_manifest(staging, entries, evidence)
    return out_dir / "manifest.json"
