"""Readers that turn the datasets on disk into grey face crops and labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from memegen import LABELS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass
class FaceDataset:
    """Grey square face crops (N×S×S uint8) with label indices into ``LABELS``."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(LABELS))
        return {label: int(count) for label, count in zip(LABELS, counts, strict=True)}

    def subset(self, indices: np.ndarray, name: str | None = None) -> FaceDataset:
        return FaceDataset(name or self.name, self.images[indices], self.labels[indices])


def load_class_folders(root: Path, size: int = 48, name: str | None = None) -> FaceDataset:
    """Read ``root/<label>/*.png``; folders whose name is not one of ``LABELS`` are skipped."""
    images, labels = [], []
    for label_index, label in enumerate(LABELS):
        folder = Path(root) / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(path) as image:
                grey = image.convert("L")
                if grey.size != (size, size):
                    grey = grey.resize((size, size), Image.Resampling.BOX)
                images.append(np.asarray(grey, dtype=np.uint8))
            labels.append(label_index)
    if not images:
        raise ValueError(f"no labelled images under {root}")
    return FaceDataset(
        name or Path(root).name,
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
    )


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    kept, held_out = [], []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(indices) * fraction)
        held_out.append(indices[:cut])
        kept.append(indices[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))
