"""Score ``memegen analyze --whole-image`` output against the class folder of each image.

    memegen analyze --whole-image DATA/fer2013/val > val.jsonl
    python benchmarks/expression_accuracy.py val.jsonl

Prints accuracy, macro recall, per-class precision and recall, and the
confusion matrix (rows: true class, columns: predicted). Macro recall is the mean over
the classes present in the truth, as the training report's macro-F1 (``summarise``), so a
folder without one class is not marked down for it. Lines that cannot be scored (an image
``analyze`` could not read, one where it found no face, one whose folder is not a label,
such as CK+'s ``anger``) are counted and named, not silently left out of the denominator.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from memegen import LABELS


def score(lines: list[dict]) -> dict:
    """The scores of ``analyze`` records, and how many were not scored and why."""
    truth, predicted = [], []
    skipped = {"not read": 0, "no face found": 0, "folder not a label": 0}
    for record in lines:
        label = Path(record["path"]).parent.name
        if "error" in record:
            skipped["not read"] += 1
        elif not record.get("faces"):
            skipped["no face found"] += 1
        elif label not in LABELS:
            skipped["folder not a label"] += 1
        else:
            truth.append(LABELS.index(label))
            predicted.append(LABELS.index(record["faces"][0]["expression"]))
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    np.add.at(confusion, (np.array(truth, dtype=int), np.array(predicted, dtype=int)), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    precision = confusion.diagonal() / np.maximum(confusion.sum(axis=0), 1)
    present = confusion.sum(axis=1) > 0
    return {
        "images": int(confusion.sum()),
        "skipped": skipped,
        "accuracy": float(confusion.diagonal().sum() / max(confusion.sum(), 1)),
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "recall": dict(zip(LABELS, recall.round(4).tolist(), strict=True)),
        "precision": dict(zip(LABELS, precision.round(4).tolist(), strict=True)),
        "confusion": confusion.tolist(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args()
    try:
        lines = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line]
    except OSError as error:
        parser.error(f"cannot read {args.jsonl} ({error.strerror})")
    except ValueError as error:  # not JSON, or not UTF-8
        parser.error(f"{args.jsonl} is not the JSON Lines 'memegen analyze' prints ({error})")
    if not all(isinstance(record, dict) and "path" in record for record in lines):
        parser.error(f"{args.jsonl} has lines without a \"path\": not 'memegen analyze' output")
    result = score(lines)
    if not result["images"]:
        parser.error(f"no line of {args.jsonl} could be scored "
                     f"({_skipped(result['skipped']) or 'it is empty'})")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"images {result['images']}  accuracy {result['accuracy']:.4f}  "
          f"macro recall {result['macro_recall']:.4f}")
    if any(result["skipped"].values()):
        print(f"not scored: {_skipped(result['skipped'])}")
    print()
    print(f"{'class':<10}{'precision':>10}{'recall':>10}")
    for label in LABELS:
        print(f"{label:<10}{result['precision'][label]:>10.3f}{result['recall'][label]:>10.3f}")
    print("\nconfusion (rows true, columns predicted):")
    print(" " * 10 + "".join(f"{label[:7]:>8}" for label in LABELS))
    for label, row in zip(LABELS, result["confusion"], strict=True):
        print(f"{label:<10}" + "".join(f"{count:>8}" for count in row))
    return 0


def _skipped(skipped: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in skipped.items() if count)


if __name__ == "__main__":
    sys.exit(main())
