"""Choose ``choose_mood``'s thresholds on the fit half, as this folder's README rules.

Run from the repository's root with ``data/`` linking to the unpacked datasets:

    python experiments/mixed-caption-thresholds/choose.py

It reads the fit half's found faces as ``memegen train photo-models`` does, takes each
photo model's out-of-fold probabilities at the strength it chose, and prints, for every
pair of thresholds, the share of faces named and the share of those named right.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from memegen.expressions import ExpressionClassifier
from memegen.training.datasets import DatasetSpec, load_split
from memegen.training.photo_models import both_views, find_faces, refit_last_layer
from memegen.training.report import crop_probabilities, match_photos
from memegen.training.train import load_trained

MANIFEST = Path("src/memegen/assets/models/manifest.json")
FIT_HALF = "expw:data/expw,photos=experiments/expw-photo-weighting/fit_photos.txt"
MEASURE_HALF = "expw:data/expw,skip=experiments/expw-photo-weighting/fit_photos.txt"
WEIGHTING_ROWS = Path("experiments/float32-ensemble/holdout_indices.npy")
SHIPPED = (0.45, 0.15)
TOPS = (0.30, 0.35, 0.40, 0.45)
MARGINS = (0.00, 0.05, 0.10, 0.15)
BAR = 0.60


def named(probabilities: np.ndarray, top_below: float, margin_below: float) -> np.ndarray:
    """Which faces ``choose_mood`` would name rather than call mixed."""
    second, first = np.sort(probabilities, axis=1)[:, -2:].T
    return (first >= top_below) & (first - second >= margin_below)


def main() -> None:
    classifier = ExpressionClassifier(MANIFEST)
    found = find_faces(classifier, DatasetSpec.parse(FIT_HALF), 0.4, 0.0)
    out_of_fold = []
    for entry in json.loads(MANIFEST.read_text())["photo_models"]:
        run = Path(entry["refitted_from"])
        network, config = load_trained(run)
        views = both_views(network, config, found.crops)
        predictions, evidence = refit_last_layer(network, views, found.labels, found.photos)
        print(f"{run.name}: C {evidence['chosen_C']}")
        out_of_fold.append(predictions)
    vote = np.mean(out_of_fold, axis=0)
    right = vote.argmax(axis=1) == found.labels
    print(f"{len(right)} faces, out-of-fold photo vote accuracy {right.mean():.3f}")
    print("| top below | margin below | named | named right |")
    print("|---:|---:|---:|---:|")
    best = None
    for top, margin in itertools.product(TOPS, MARGINS):
        chosen = named(vote, top, margin)
        precision = right[chosen].mean() if chosen.any() else 0.0
        print(f"| {top:.2f} | {margin:.2f} | {chosen.mean():.3f} | {precision:.3f} |")
        if precision >= BAR and (best is None or chosen.sum() >= best[0]):
            best = (chosen.sum(), top, margin)
    chosen_pair = SHIPPED if best is None else best[1:]
    print(f"chosen: {chosen_pair[0]:.2f} / {chosen_pair[1]:.2f}")
    report(classifier, [SHIPPED, chosen_pair])


def report(classifier: ExpressionClassifier, pairs: list[tuple[float, float]]) -> None:
    """The named shares the rule reports after the choice: the measure half's found faces
    through the shipped photo models, and FER2013's weighting rows through the crop vote."""
    readings, labels = [], []
    for photo in match_photos(DatasetSpec.parse(MEASURE_HALF), 0.4):
        if photo.matched:
            readings.append(classifier.classify(photo.pixels, photo.matched))
            labels += photo.labels
    crops = load_split("data/fer2013", "train").subset(np.load(WEIGHTING_ROWS), "weighting rows")
    for name, vote, truth in [
        ("ExpW measure half, photo models", np.concatenate(readings), np.array(labels)),
        ("FER2013 weighting rows, crop vote",
         classifier.vote(crop_probabilities(classifier, crops)), crops.labels),
    ]:
        right = vote.argmax(axis=1) == truth
        for top, margin in pairs:
            chosen = named(vote, top, margin)
            print(f"{name}, {top:.2f} / {margin:.2f}: {len(truth)} faces, named "
                  f"{chosen.mean():.3f}, named right {right[chosen].mean():.3f}, "
                  f"all right {right.mean():.3f}")


if __name__ == "__main__":
    main()
