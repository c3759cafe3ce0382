"""``train fit --focus``: the faces a gated member will be read on are the ones repeated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memegen.cli import main  # noqa: E402
from memegen.expressions import ExpressionClassifier, ManifestError  # noqa: E402
from memegen.training.datasets import FaceDataset, load_split  # noqa: E402
from memegen.training.focus import consulted_by_gate, repeat_faces  # noqa: E402

from tiny_datasets import faces_of_every_class, write_class_folders  # noqa: E402
from tiny_networks import first_model_tops, gate_last_model, write_float_ensemble  # noqa: E402

WHOLE_CROP = [(0, 0, 48, 48)]


def _gated_at_the_median(tmp_path: Path, faces: np.ndarray) -> Path:
    """A two-model ensemble whose second model is read on the half of ``faces`` the first
    is least sure of."""
    manifest_path = write_float_ensemble(tmp_path / "float")
    tops = first_model_tops(ExpressionClassifier(manifest_path), faces)
    return gate_last_model(manifest_path, float(np.median(tops)))


def _dataset(faces: np.ndarray) -> FaceDataset:
    return FaceDataset("tiny", faces, np.arange(len(faces)) % 7)


def test_the_faces_chosen_are_those_inference_reads_the_gated_model_on(tmp_path: Path):
    faces = faces_of_every_class(6, seed=3)
    manifest = _gated_at_the_median(tmp_path, faces)
    chosen = consulted_by_gate(manifest, _dataset(faces))
    classifier = ExpressionClassifier(manifest)
    read_at_inference = [
        not np.isnan(classifier.model_probabilities(face, WHOLE_CROP, precropped=True,
                                                    gated=True)[-1, 0]).any()
        for face in faces
    ]
    assert chosen.tolist() == read_at_inference
    assert 0 < chosen.sum() < len(faces)  # the threshold splits these faces


def test_an_ungated_manifest_is_refused(tmp_path: Path):
    manifest = write_float_ensemble(tmp_path / "float")
    with pytest.raises(ManifestError, match="not gated"):
        consulted_by_gate(manifest, _dataset(faces_of_every_class(1, seed=3)))


def test_each_chosen_face_gains_exactly_the_copies_asked_for():
    dataset = _dataset(np.stack([np.full((48, 48), value, np.uint8) for value in range(5)]))
    chosen = np.array([False, True, False, True, False])
    repeated = repeat_faces(dataset, chosen, copies=2)
    assert len(repeated) == 5 + 2 * 2
    np.testing.assert_array_equal(repeated.images[:5], dataset.images)
    assert sorted(repeated.images[5:, 0, 0].tolist()) == [1, 1, 3, 3]
    np.testing.assert_array_equal(repeated.labels[5:], repeated.images[5:, 0, 0] % 7)
    assert len(repeat_faces(dataset, chosen, copies=0)) == 5
    with pytest.raises(ValueError, match="0 or more"):
        repeat_faces(dataset, chosen, copies=-1)
    with pytest.raises(ValueError, match="does not fit"):
        repeat_faces(dataset, chosen[:3], copies=1)


def test_fit_with_focus_records_it_and_trains_on_the_repeated_faces(tmp_path: Path):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    dataset = load_split(str(data), "train")
    manifest = _gated_at_the_median(tmp_path, dataset.images)
    out = tmp_path / "run"
    tiny = ["--epochs", "1", "--batch-size", "8", "--width", "4", "--threads", "1"]
    assert main(["train", "fit", "--data", str(data), "--out", str(out), "--holdout", "0.25",
                 "--focus", str(manifest), "--focus-copies", "3", *tiny]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["focus"], config["focus_copies"]) == (str(manifest), 3)
    held_out = np.load(out / "holdout_indices.npy")
    kept = dataset.subset(np.setdiff1d(np.arange(len(dataset)), held_out))
    consulted = consulted_by_gate(manifest, kept)
    assert 0 < consulted.sum() < len(kept)
    trained_on = json.loads((out / "class_counts.json").read_text())["trained_on"]
    assert sum(trained_on.values()) == len(kept) + 3 * int(consulted.sum())

    refused = tmp_path / "refused"
    assert main(["train", "fit", "--data", str(data), "--out", str(refused),
                 "--focus", str(write_float_ensemble(tmp_path / "ungated")), *tiny]) == 2
