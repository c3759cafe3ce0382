"""Tiny datasets written on the fly, in each on-disk layout the training readers accept.

Tests never need the real (research-licensed) datasets: these have the same
layout with a handful of generated 48×48 faces. Each class gets its own
brightness, so a model can tell classes apart after one epoch.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from memegen import LABELS

from sample_images import DATA

FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness",
                  "anger", "disgust", "fear", "contempt", "unknown", "NF"]


def face(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 48×48 grey "face": noise around a brightness that depends on the class."""
    level = 40 + 25 * label
    return np.clip(rng.normal(level, 20, (48, 48)), 0, 255).astype(np.uint8)


def faces_of_every_class(count: int, seed: int) -> np.ndarray:
    """``count`` faces whose classes go round the labels in order: face ``i`` is class ``i % 7``."""
    rng = np.random.default_rng(seed)
    return np.stack([face(number % len(LABELS), rng) for number in range(count)])


def write_class_folders(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<split>/<label>/*.png`` with ``per_class[split]`` images of every label."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for index, label in enumerate(LABELS):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                Image.fromarray(face(index, rng)).save(folder / f"{number:03d}.png")
    return root


def write_ferplus(
    root: Path, votes: list[list[int] | None], folders: list[str] | None = None
) -> tuple[Path, Path]:
    """FER2013 class folders with a ``manifest.csv`` pointing into a FER+ votes CSV.

    ``votes`` holds, per image, the ten FER+ vote counts in the CSV's column
    order (neutral … NF), or None for an image FER+ has no row for; ``folders``
    the class folder (FER2013's label) of each, ``happy`` for all unless told. The
    CSV lists the votes in reverse, so a reader that ignored ``fer2013_row`` would
    get them wrong.
    """
    rng = np.random.default_rng(0)
    voted = [counts for counts in votes if counts is not None]
    rows, seen = [], 0
    for index, counts in enumerate(votes):
        folder = "happy" if folders is None else folders[index]
        (root / "train" / folder).mkdir(parents=True, exist_ok=True)
        file = f"train/{folder}/{index:03d}.png"
        Image.fromarray(face(3, rng)).save(root / file)
        row = "" if counts is None else len(voted) - 1 - seen
        seen += counts is not None
        rows.append({"file": file, "split": "train", "fer2013_row": row})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "split", "fer2013_row"])
        writer.writeheader()
        writer.writerows(rows)
    votes_csv = root / "fer2013new.csv"
    with open(votes_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FERPLUS_HEADER)
        for index, counts in enumerate(reversed(voted)):
            writer.writerow(["Training", f"fer{index:07d}.png", *counts])
    return root, votes_csv


def write_ckplus(root: Path, subjects: int, per_subject: dict[str, int]) -> Path:
    """CK+48 layout: ``manifest.csv`` (file, label with CK+ names, subject) and the PNGs."""
    rng = np.random.default_rng(1)
    rows = []
    for subject in range(subjects):
        for label, count in per_subject.items():
            (root / label).mkdir(parents=True, exist_ok=True)
            for number in range(count):
                file = f"{label}/S{subject:03d}_{number}.png"
                Image.fromarray(face(0, rng)).save(root / file)
                rows.append({"file": file, "label": label, "subject": f"S{subject:03d}"})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "label", "subject"])
        writer.writeheader()
        writer.writerows(rows)
    return root


# The astronaut's face in tests/data/astronaut.jpg, as a labeller might box it.
ASTRONAUT_FACE = (170.0, 60.0, 280.0, 170.0)


def write_expw(root: Path, labels: tuple[str, ...] = ("happy",)) -> Path:
    """ExpW layout with a copy of the astronaut photo per label, her face labelled so; the
    first copy is ``images/astronaut.jpg``, the others ``images/astronaut-N.jpg``."""
    (root / "images").mkdir(parents=True)
    with open(root / "faces.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "x1_left", "y1_top", "x2_right", "y2_bottom", "label"])
        for number, label in enumerate(labels):
            name = f"images/astronaut{f'-{number}' if number else ''}.jpg"
            (root / name).write_bytes((DATA / "astronaut.jpg").read_bytes())
            writer.writerow([name, *ASTRONAUT_FACE, label])
    return root
