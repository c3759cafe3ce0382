"""5-fold check of member temperatures on an ensemble's weighting set.

usage: python cross_validate.py MANIFEST FER2013_DIR HOLDOUT_INDICES

MANIFEST's members are read as it says (mirror passes included, any temperatures
it already has removed). In each fold a temperature per member and then the vote
weights are fitted on four fifths of the rows and the vote is scored on the fifth;
the same folds are scored with the weights alone.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from memegen.expressions import ExpressionClassifier, apply_temperature
from memegen.training.calibration import fit_temperature
from memegen.training.datasets import load_split
from memegen.training.ensemble import fit_weights, vote_nll
from memegen.training.report import crop_probabilities

FOLDS = 5


def untempered_readings(manifest_path: Path, dataset) -> np.ndarray:
    classifier = ExpressionClassifier(manifest_path)
    classifier.models = [dataclasses.replace(model, temperature=1.0) for model in classifier.models]
    return crop_probabilities(classifier, dataset)


def main(manifest: str, fer2013: str, holdout_indices: str) -> None:
    weighting_set = load_split(fer2013, "train").subset(np.load(holdout_indices))
    readings = untempered_readings(Path(manifest), weighting_set)
    labels = weighting_set.labels
    fold = np.arange(len(labels)) % FOLDS
    plain = tempered = 0.0
    temperatures = []
    for k in range(FOLDS):
        fit, score = fold != k, fold == k
        weights = fit_weights(readings[:, fit], labels[fit])
        plain += vote_nll(readings[:, score], labels[score], weights) * score.sum()
        fold_temperatures = [fit_temperature(member[fit], labels[fit]) for member in readings]
        scaled = np.stack([
            apply_temperature(member, temperature)
            for member, temperature in zip(readings, fold_temperatures, strict=True)
        ])
        weights = fit_weights(scaled[:, fit], labels[fit])
        tempered += vote_nll(scaled[:, score], labels[score], weights) * score.sum()
        temperatures.append(fold_temperatures)
    print(json.dumps({
        "manifest": manifest,
        "rows": len(labels),
        "cv_vote_nll_weights_only": round(plain / len(labels), 4),
        "cv_vote_nll_with_member_temperatures": round(tempered / len(labels), 4),
        "mean_fold_temperatures": np.round(np.mean(temperatures, axis=0), 3).tolist(),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
