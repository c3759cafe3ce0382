"""Score ``memegen analyze --whole-image`` output against the class folder of each image.

    memegen analyze --whole-image DATA/fer2013/val > val.jsonl
    python benchmarks/expression_accuracy.py val.jsonl

Prints accuracy, macro recall, per-class precision and recall, and the
confusion matrix (rows: true class, columns: predicted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from memegen import LABELS


def score(lines: list[dict]) -> dict:
    truth, predicted = [], []
    for record in lines:
        label = Path(record["path"]).parent.name
        if label not in LABELS or "faces" not in record or not record["faces"]:
            continue
        truth.append(LABELS.index(label))
        predicted.append(LABELS.index(record["faces"][0]["expression"]))
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    np.add.at(confusion, (np.array(truth), np.array(predicted)), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    precision = confusion.diagonal() / np.maximum(confusion.sum(axis=0), 1)
    return {
        "images": int(confusion.sum()),
        "accuracy": float(confusion.diagonal().sum() / max(confusion.sum(), 1)),
        "macro_recall": float(recall.mean()),
        "recall": dict(zip(LABELS, recall.round(4).tolist(), strict=True)),
        "precision": dict(zip(LABELS, precision.round(4).tolist(), strict=True)),
        "confusion": confusion.tolist(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    result = score([json.loads(line) for line in args.jsonl.read_text().splitlines() if line])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"images {result['images']}  accuracy {result['accuracy']:.4f}  "
          f"macro recall {result['macro_recall']:.4f}\n")
    print(f"{'class':<10}{'precision':>10}{'recall':>10}")
    for label in LABELS:
        print(f"{label:<10}{result['precision'][label]:>10.3f}{result['recall'][label]:>10.3f}")
    print("\nconfusion (rows true, columns predicted):")
    print(" " * 10 + "".join(f"{label[:7]:>8}" for label in LABELS))
    for label, row in zip(LABELS, result["confusion"], strict=True):
        print(f"{label:<10}" + "".join(f"{count:>8}" for count in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
