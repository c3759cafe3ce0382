"""A candidate vote's time per face as a ratio to the shipped vote's, in blocks taken in turn.

    python benchmarks/speed_ratio.py CANDIDATE_MANIFEST [--shipped PATH] [--faces DIR]

The shipping rules in ``experiments/`` judge a candidate's speed against the shipped
vote on the same machine. These machines are shared and their speed drifts from one
minute to the next, so one run of each compares the hour, not the votes. The two are
timed alternately in three blocks (shipped, new / new, shipped / shipped, new) on the
same seeded sample of face crops, and the verdict is the median of the three block
ratios of their mean milliseconds a face given as a crop (``expression_speed.py``'s
``faces.mean_ms``). The sample is read from disk once and only the crop path is timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from expression_speed import crop_call_ms, sample_faces

from memegen.config import DEFAULT_MANIFEST
from memegen.expressions import ExpressionClassifier

BLOCKS = (("shipped", "new"), ("new", "shipped"), ("shipped", "new"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path, help="the candidate's manifest.json")
    parser.add_argument("--shipped", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--faces", type=Path, required=True, help="a folder of face crops")
    parser.add_argument("--faces-count", type=int, default=1000)
    args = parser.parse_args()

    classifiers = {"shipped": ExpressionClassifier(args.shipped),
                   "new": ExpressionClassifier(args.candidate)}
    faces = sample_faces(args.faces, args.faces_count)
    blocks = []
    for order in BLOCKS:
        mean_ms = {name: round(statistics.fmean(crop_call_ms(classifiers[name], faces)), 2)
                   for name in order}
        blocks.append({**mean_ms, "ratio": round(mean_ms["new"] / mean_ms["shipped"], 3)})
    median = statistics.median(block["ratio"] for block in blocks)
    print(json.dumps({"blocks": blocks, "median_ratio": round(median, 3)}, indent=2))


if __name__ == "__main__":
    main()
