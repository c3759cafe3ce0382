"""Paired end-to-end accuracy of two exported ensembles on each half of ExpW's photos.

    python experiments/low-resolution-finetune/compare_expw_halves.py EXPW_DIR \
        SHIPPED_MANIFEST CANDIDATE_MANIFEST

The halves are the ones `memegen train report` fits its box convention on: the
photos in the order `faces.csv` first names them, even positions first. Faces
are found and matched exactly as the report does (`match_photos`, IoU at least
0.4 with the labelled box), once for both ensembles, so the two read the same
crops and the difference is paired face by face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from memegen.expressions import load_classifier
from memegen.training.datasets import DatasetSpec
from memegen.training.report import match_photos

IOU_THRESHOLD = 0.4


def main(root: Path, shipped_manifest: Path, candidate_manifest: Path) -> None:
    classifiers = [load_classifier(shipped_manifest), load_classifier(candidate_manifest)]
    right: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for position, photo in enumerate(match_photos(DatasetSpec("expw", root, {}), IOU_THRESHOLD)):
        if photo.matched:
            right[position % 2].append(np.stack([
                classifier.classify(photo.pixels, photo.matched).argmax(axis=1)
                == np.array(photo.labels)
                for classifier in classifiers
            ], axis=1))
    for half in (0, 1):
        correct = np.concatenate(right[half]).astype(float)
        change = correct[:, 1] - correct[:, 0]
        error = change.std(ddof=1) / np.sqrt(len(change))
        print(f"half {half} ({'even' if half == 0 else 'odd'} positions): {len(change)} faces, "
              f"shipped {correct[:, 0].mean():.4f}, candidate {correct[:, 1].mean():.4f}, "
              f"change {change.mean():+.4f} (standard error {error:.4f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
