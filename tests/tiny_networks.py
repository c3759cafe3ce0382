"""Small VGGs fitted in a second to the tiny faces, and ensembles exported from them.

Untrained nets answer nearly uniformly, so anything done to their graphs
(quantizing, cutting the mirror pass) would look harmless; these have learned
to tell the tiny faces' classes apart. Import only after ``torch`` is known to
be installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from memegen import LABELS
from memegen.expressions import ExpressionClassifier, normalise
from memegen.training.export import export_onnx, model_entry, write_manifest
from memegen.training.train import TrainConfig, build_model

from tiny_datasets import faces_of_every_class

TINY_VGG = TrainConfig(family="vgg", width=8, depth=1, dropout=0.0)
TINY_GRID_VGG = TrainConfig(family="vgg", width=8, depth=1, dropout=0.0, head="grid")


def trained_vgg(seed: int, config: TrainConfig = TINY_VGG) -> torch.nn.Module:
    """A tiny VGG (``TINY_VGG`` unless told) fitted for 30 steps to 140 tiny faces."""
    torch.manual_seed(seed)
    labels = np.arange(140) % len(LABELS)
    faces = faces_of_every_class(140, seed)
    inputs = normalise(faces, config.mean, config.std)
    network = build_model(config)
    optimiser = torch.optim.Adam(network.parameters(), lr=0.01)
    for _ in range(30):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            network(torch.from_numpy(inputs)), torch.from_numpy(labels)
        )
        loss.backward()
        optimiser.step()
    return network.eval()


def write_float_ensemble(
    folder: Path, config: TrainConfig = TINY_VGG, weights: Sequence[float] = (1.5, 0.5)
) -> Path:
    """Trained VGGs with mirror passes, one a vote weight (``weights``; two unequal ones
    unless told), seeded 0, 1, … in manifest order."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for seed, weight in enumerate(weights):
        export_onnx(trained_vgg(seed, config), 48, folder / f"net{seed}.onnx")
        entries.append(model_entry(f"net{seed}", f"net{seed}.onnx", config, 0.0,
                                   [weight] * len(LABELS)))
    return write_manifest(folder, entries)


def gate_last_model(manifest_path: Path, threshold: float) -> Path:
    """Gate the manifest's last model in place: read only where the vote before it is under
    ``threshold``."""
    manifest = json.loads(manifest_path.read_text())
    manifest["models"][-1]["consult_below"] = threshold
    manifest_path.write_text(json.dumps(manifest))
    return manifest_path


def first_model_tops(classifier: ExpressionClassifier, faces: np.ndarray) -> np.ndarray:
    """The first model's top probability on each whole 48×48 face: where to set a gate
    that splits ``faces``."""
    return np.array([
        classifier.model_probabilities(face, [(0, 0, 48, 48)], precropped=True)[0, 0].max()
        for face in faces
    ])
