"""A candidate vote's time per face as a ratio to the shipped vote's, in blocks taken in turn.

    python benchmarks/speed_ratio.py CANDIDATE_MANIFEST [--shipped PATH] [--faces DIR]

The shipping rules in ``experiments/`` judge a candidate's speed against the shipped
vote on the same machine. These machines are shared and their speed drifts from one
minute to the next, so one run of each compares the hour, not the votes. The two are
timed alternately in three blocks (shipped, new / new, shipped / shipped, new) on the
same seeded sample of face crops, and the verdict is the median of the three block
ratios of their mean milliseconds a face given as a crop (``expression_speed.py``'s
``faces.mean_ms``). The sample is read from disk once and only the crop path is timed,
on one thread (ONNX Runtime's sessions and OpenCV's cropping). The output names both
manifests and the sample size, so that runs pasted together cannot be mistaken for one
another, and each ratio is of the unrounded means.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import cv2
from expression_speed import crop_call_ms, sample_faces

from memegen.config import DEFAULT_MANIFEST
from memegen.errors import UserError
from memegen.expressions import ExpressionClassifier

BLOCKS = (("shipped", "new"), ("new", "shipped"), ("shipped", "new"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path, help="the candidate's manifest.json")
    parser.add_argument("--shipped", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--faces", type=Path, required=True, help="a folder of face crops")
    parser.add_argument("--faces-count", type=int, default=1000)
    args = parser.parse_args()

    cv2.setNumThreads(1)  # the sessions run on one thread; so must cropping
    try:
        classifiers = {"shipped": ExpressionClassifier(args.shipped),
                       "new": ExpressionClassifier(args.candidate)}
        faces = sample_faces(args.faces, args.faces_count)
    except (UserError, ValueError) as error:
        parser.error(str(error))
    blocks, ratios = [], []
    for order in BLOCKS:
        mean_ms = {name: statistics.fmean(crop_call_ms(classifiers[name], faces))
                   for name in order}
        ratios.append(mean_ms["new"] / mean_ms["shipped"])
        blocks.append({**{f"{name}_mean_ms": round(mean_ms[name], 2) for name in order},
                       "ratio": round(ratios[-1], 3)})
    result = {
        "shipped": str(args.shipped),
        "new": str(args.candidate),
        "faces": len(faces),
        "blocks": blocks,
        "median_ratio": round(statistics.median(ratios), 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
