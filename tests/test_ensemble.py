"""The per-class vote weights and the numbers written as their evidence, and the names
members are exported under."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from memegen.cli import main
from memegen.errors import UserError
from memegen.expressions import weighted_vote
from memegen.training import export
from memegen.training.datasets import FaceDataset, image_digests, load_split
from memegen.training.ensemble import (
    fit_weights,
    vote_nll,
    voting_evidence,
)
from memegen.training.export import unique_names
from memegen.training.metrics import summarise
from memegen.training.train import build_model

from tiny_datasets import write_class_folders
from tiny_networks import TINY_VGG


def test_vote_nll_is_the_loss_of_the_vote_inference_runs():
    probabilities = np.array([[[0.6, 0.4], [0.1, 0.9]], [[0.2, 0.8], [0.5, 0.5]]])
    weights = np.array([[3.0, 1.0], [1.0, 1.0]])
    # example 0, true class 0: (3·0.6 + 0.2)/4 = 0.5 and (0.4 + 0.8)/2 = 0.6 → 0.5/1.1
    # example 1, true class 1: (3·0.1 + 0.5)/4 = 0.2 and (0.9 + 0.5)/2 = 0.7 → 0.7/0.9
    expected = -(np.log(0.5 / 1.1) + np.log(0.7 / 0.9)) / 2
    assert vote_nll(probabilities, np.array([0, 1]), weights) == pytest.approx(expected, abs=1e-6)


def test_identical_models_get_equal_weights():
    rng = np.random.default_rng(0)
    one = rng.dirichlet(np.ones(7), size=50)
    weights = fit_weights(np.stack([one, one, one]), rng.integers(0, 7, 50))
    np.testing.assert_allclose(weights, 1.0, atol=1e-6)


def _good_and_bad_at_class_zero(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Two models, faces of classes 0–2: one sure and right on class 0, one that knows nothing."""
    labels = np.arange(n) % 3
    good = np.zeros((n, 7))
    good[:, :3] = np.where((labels == 0)[:, None], [0.9, 0.05, 0.05], [0.05, 0.475, 0.475])
    clueless = np.zeros((n, 7))
    clueless[:, :3] = 1 / 3
    return np.stack([good, clueless]), labels


def test_model_good_at_a_class_gets_the_bigger_say_on_it():
    probabilities, labels = _good_and_bad_at_class_zero()
    weights = fit_weights(probabilities, labels)
    assert weights[0, 0] > 1.5 > 0.5 > weights[1, 0]


def test_fitted_weights_are_non_negative_and_sum_to_the_model_count_per_class():
    probabilities, labels = _good_and_bad_at_class_zero()
    weights = fit_weights(probabilities, labels)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=0), 2.0)
    assert weights.shape == (2, 7)


def test_fitted_weights_fit_the_weighting_set_at_least_as_well_as_equal_ones():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 200)
    sharp = np.full((200, 7), 0.02)
    sharp[np.arange(200), labels] = 0.88
    probabilities = np.stack([rng.dirichlet(np.ones(7), size=200), sharp * 0.5 + 1 / 14])
    learned = vote_nll(probabilities, labels, fit_weights(probabilities, labels))
    assert learned < vote_nll(probabilities, labels, np.ones((2, 7)))


def test_one_model_votes_alone_with_unit_weights():
    probabilities = np.random.default_rng(0).dirichlet(np.ones(7), size=(1, 10))
    np.testing.assert_array_equal(fit_weights(probabilities, np.zeros(10, int)), np.ones((1, 7)))


def test_summary_counts_precision_and_recall_per_class_exactly():
    # predicted 0, 0, 1 for true 0, 1, 1
    probabilities = np.eye(7)[[0, 0, 1]] * 0.9 + 0.1 / 7
    summary = summarise(probabilities, np.array([0, 1, 1]))
    assert summary["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert summary["per_class"]["angry"] == {
        "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3, abs=1e-6), "support": 1
    }
    assert summary["per_class"]["disgust"]["precision"] == 1.0
    assert summary["per_class"]["disgust"]["recall"] == 0.5
    # macro-F1 over the two classes present: (2/3 + 2/3) / 2
    assert summary["macro_f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert summary["confusion"][1][:2] == [1, 1]


def test_evidence_holds_every_models_numbers_and_both_votes():
    probabilities, labels = _good_and_bad_at_class_zero(30)
    weights = fit_weights(probabilities, labels)
    weighting_set = FaceDataset("held-out", np.zeros((30, 48, 48), np.uint8), labels)
    evidence = voting_evidence(["good", "clueless"], probabilities, labels, weights, weighting_set)
    assert set(evidence["models"]) == {"good", "clueless"}
    assert evidence["models"]["good"]["per_class"]["angry"]["recall"] == 1.0
    assert evidence["weighting_set"]["examples"] == 30
    learned = summarise(weighted_vote(probabilities, weights), labels)
    assert evidence["learned_weights"]["accuracy"] == learned["accuracy"]
    assert "equal_weights" in evidence and "method" in evidence


def test_clashing_run_names_take_their_parent_folder():
    runs = [Path("a/trial-0001"), Path("b/trial-0001"), Path("b/solo")]
    assert unique_names(runs) == ["a-trial-0001", "b-trial-0001", "solo"]


def test_the_same_run_given_twice_is_refused():
    with pytest.raises(UserError, match="two runs would both be named runs-x"):
        unique_names([Path("runs/x"), Path("runs/x")])


def test_export_names_runs_of_one_name_after_their_parents(tmp_path: Path):
    runs = [tmp_path / study / "trial-0000" for study in ("a", "b")]
    for run in runs:
        run.mkdir(parents=True)
        torch.save({"model": build_model(TINY_VGG).state_dict(), "config": asdict(TINY_VGG)},
                   run / "best.pt")
    assert main(["train", "export", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(entry["name"], entry["file"]) for entry in manifest["models"]] == [
        ("a-trial-0000", "a-trial-0000.onnx"), ("b-trial-0000", "b-trial-0000.onnx")]
    assert sorted(path.name for path in (tmp_path / "out").glob("*.onnx")) == [
        "a-trial-0000.onnx", "b-trial-0000.onnx"]


def _run_folder(path: Path, seed: int) -> Path:
    """A run folder as ``train fit`` leaves it, for export: ``best.pt`` of a tiny VGG."""
    path.mkdir(parents=True)
    torch.manual_seed(seed)
    torch.save({"model": build_model(TINY_VGG).state_dict(), "config": asdict(TINY_VGG)},
               path / "best.pt")
    return path


@pytest.mark.parametrize("broken", ["missing", "not-a-checkpoint", "disk-full"])
def test_an_export_that_fails_leaves_the_ensemble_in_its_folder_as_it_was(
    tmp_path: Path, monkeypatch, capsys, broken: str
):
    runs = [_run_folder(tmp_path / "a", 0), _run_folder(tmp_path / "b", 1)]
    out = tmp_path / "out"
    assert main(["train", "export", *map(str, runs), "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    (out / "notes.txt").write_text("mine")

    fresh = [_run_folder(tmp_path / "new" / "a", 2), tmp_path / "new" / "b"]
    argv = ["train", "export", *map(str, fresh), "--out", str(out)]
    if broken == "disk-full":
        _run_folder(fresh[1], 3)
        written = export.export_onnx

        def export_onnx(network, size, path, mirror):
            if path.name == "b.onnx":
                raise OSError(28, "No space left on device", str(path))
            written(network, size, path, mirror)

        monkeypatch.setattr(export, "export_onnx", export_onnx)
        with pytest.raises(OSError, match="No space left"):
            main(argv)
    else:
        fresh[1].mkdir()
        if broken == "not-a-checkpoint":
            (fresh[1] / "best.pt").write_text("not a checkpoint")
        assert main(argv) == 2
        assert capsys.readouterr().err.count("\n") == 1
    after = {path.name: path.read_bytes() for path in out.iterdir() if path.name != "notes.txt"}
    assert after == before and (out / "notes.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b", "new", "out"]


def test_a_member_that_reads_faces_as_nan_is_refused_naming_it(tmp_path: Path, capsys):
    runs = [_run_folder(tmp_path / "a", 0), _run_folder(tmp_path / "b", 1)]
    checkpoint = torch.load(runs[1] / "best.pt")
    for values in checkpoint["model"].values():
        if values.is_floating_point():
            values.fill_(float("nan"))
    torch.save(checkpoint, runs[1] / "best.pt")
    data = write_class_folders(tmp_path / "faces", {"val": 1})
    out = tmp_path / "out"
    assert main(["train", "ensemble", *map(str, runs), "--val-data", str(data),
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"memegen: train ensemble: {runs[1]} reads faces of {data.name}/val as NaN or "
        "infinity, so no vote weights can be fitted; leave it out or retrain it"
    )
    assert not out.exists()


def test_a_member_that_trained_on_the_weighting_rows_is_refused(tmp_path: Path, capsys):
    """Weights fitted on faces a member learned trust it more than it earns on new faces."""
    data = write_class_folders(tmp_path / "faces", {"train": 2})
    train = load_split(str(data), "train")
    runs = [_run_folder(tmp_path / "a", 0), _run_folder(tmp_path / "e", 1)]
    rows = np.arange(0, len(train), 2)
    np.save(runs[0] / "holdout_indices.npy", rows)
    np.save(runs[0] / "holdout_digests.npy", image_digests(train.images[rows]))
    np.save(runs[1] / "holdout_digests.npy", image_digests(train.images[rows[:3]]))
    argv = ["train", "ensemble", *map(str, runs), "--val-data", str(data),
            "--indices", str(runs[0] / "holdout_indices.npy"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"memegen: {runs[1]} trained on 4 of the 7 weighting faces --indices "
        f"{runs[0] / 'holdout_indices.npy'} picks (its holdout_digests.npy lacks them); weigh "
        "with rows every run held out: runs fitted with the same --seed and --holdout, or "
        "--holdout-from one of them"
    )
    assert not (tmp_path / "out").exists()
