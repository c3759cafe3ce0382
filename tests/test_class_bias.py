"""Per-class biases that shift the vote's class priors: exact maths, the balance chosen,
and the weighting sets they cannot be fitted on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from memegen import files
from memegen.cli import main
from memegen.expressions import ExpressionClassifier, shift_priors
from memegen.training.class_bias import choose_class_bias, fit_class_bias, paired_accuracy_change
from memegen.training.export import export_onnx

from tiny_datasets import write_class_folders
from tiny_networks import trained_vgg, write_float_ensemble


def _prior_only_vote(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A vote that knows nothing about the faces and always answers the class frequencies."""
    labels = np.repeat(np.arange(len(counts)), counts)
    frequencies = np.array(counts) / sum(counts)
    return np.tile(frequencies, (len(labels), 1)), labels


def test_shift_priors_multiplies_by_exp_bias_and_renormalises():
    vote = np.array([[0.5, 0.25, 0.25]])
    shifted = shift_priors(vote, np.log(np.array([1.0, 2.0, 2.0])))
    np.testing.assert_allclose(shifted, [[0.5 / 1.5, 0.5 / 1.5, 0.5 / 1.5]], atol=1e-6)


def test_zero_bias_changes_nothing():
    vote = np.random.default_rng(0).dirichlet(np.ones(7), size=5)
    np.testing.assert_allclose(shift_priors(vote, np.zeros(7)), vote, atol=1e-6)


def test_a_calibrated_vote_needs_no_bias_at_balance_zero():
    vote, labels = _prior_only_vote([60, 30, 10])
    np.testing.assert_allclose(fit_class_bias(vote, labels, 0.0), 0.0, atol=1e-5)


def test_full_balance_undoes_the_class_frequencies():
    vote, labels = _prior_only_vote([60, 30, 10])
    bias = fit_class_bias(vote, labels, 1.0)
    expected = -np.log([0.6, 0.3, 0.1])
    np.testing.assert_allclose(bias, expected - expected.mean(), atol=1e-5)
    np.testing.assert_allclose(shift_priors(vote[:1], bias), [[1 / 3] * 3], atol=1e-5)


def _rare_class_confused_vote(rare_score: float, rare_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 6 is rare, and its faces look like class 0's to the vote, a little less so
    the lower ``rare_score`` is; the other classes are easy."""
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(7), [300] * 6 + [rare_count])
    vote = np.full((len(labels), 7), 0.02)
    vote[np.arange(len(labels)), labels] = 0.8
    vote[labels == 0, 0], vote[labels == 0, 6] = 0.55, 0.3
    vote[labels == 6, 0], vote[labels == 6, 6] = 0.5, rare_score
    vote += rng.uniform(0, 0.4, vote.shape)
    return vote / vote.sum(axis=1, keepdims=True), labels


def test_paired_accuracy_change_counts_the_faces_whose_outcome_changed():
    right = np.array([True, True, False, False])
    right_before = np.array([True, False, True, False])
    change, error = paired_accuracy_change(right, right_before)
    assert change == 0.0
    assert error == pytest.approx(np.sqrt(2 / 3) / 2)


def test_the_most_even_balance_that_keeps_accuracy_is_chosen():
    vote, labels = _rare_class_confused_vote(0.35, 60)
    bias, evidence = choose_class_bias(vote, labels)
    candidates = {candidate["balance"]: candidate for candidate in evidence["candidates"]}
    kept = [
        balance for balance, seen in candidates.items()
        if seen["accuracy_change"] >= -seen["standard_error"]
    ]
    assert evidence["chosen_balance"] == max(kept) < 1.0
    assert candidates[1.0]["macro_recall"] > evidence["uncorrected"]["macro_recall"]
    chosen = candidates[evidence["chosen_balance"]]
    assert chosen["accuracy"] == pytest.approx(
        float((shift_priors(vote, bias).argmax(axis=1) == labels).mean()), abs=1e-6
    )


def test_an_accuracy_loss_within_one_standard_error_does_not_block_the_even_balance():
    vote, labels = _rare_class_confused_vote(0.38, 150)
    _, evidence = choose_class_bias(vote, labels)
    even = evidence["candidates"][-1]
    assert even["balance"] == evidence["chosen_balance"] == 1.0
    assert even["accuracy"] < evidence["uncorrected"]["accuracy"]
    assert -even["standard_error"] <= even["accuracy_change"] < 0


def _faces_without(folder: Path, *labels: str) -> Path:
    """Class folders (a ``val`` split of two faces a class) lacking ``labels``."""
    write_class_folders(folder, {"val": 2})
    for label in labels:
        shutil.rmtree(folder / "val" / label)
    return folder


def test_bias_refuses_a_weighting_set_without_a_class_and_names_it(tmp_path: Path, capsys):
    manifest = write_float_ensemble(tmp_path / "models")
    before = manifest.read_text()
    faces = _faces_without(tmp_path / "faces", "disgust", "neutral")
    assert main(["train", "bias", str(manifest), "--val-data", str(faces)]) == 2
    err = capsys.readouterr().err
    assert "\nmemegen: weighting set faces/val has no faces of disgust, neutral:" in err
    assert "cannot be fitted for a class without examples" in err
    assert manifest.read_text() == before


@pytest.mark.parametrize("step", ["mirror", "gate"])
def test_steps_that_refit_class_biases_refuse_such_a_set_before_writing(
    tmp_path: Path, capsys, step: str
):
    manifest = write_float_ensemble(tmp_path / "models")
    biased = json.loads(manifest.read_text()) | {"class_bias": {"happy": 0.5}}
    manifest.write_text(json.dumps(biased))
    faces = _faces_without(tmp_path / "faces", "fear")
    out = tmp_path / step
    assert main(["train", step, str(manifest), "--val-data", str(faces),
                 "--out", str(out)]) == 2
    assert "has no faces of fear:" in capsys.readouterr().err
    assert not out.exists()


def ensemble_with_a_member_answering_nan(tmp_path: Path) -> Path:
    """A float ensemble whose second member's weights are all NaN; its manifest's path."""
    source = write_float_ensemble(tmp_path / "float")
    broken = trained_vgg(1)
    with torch.no_grad():
        for values in broken.parameters():
            values.fill_(float("nan"))
    export_onnx(broken, 48, source.parent / "net1.onnx")
    return source


def test_a_vote_that_reads_faces_as_nan_gets_no_class_bias(tmp_path: Path, capsys):
    source = ensemble_with_a_member_answering_nan(tmp_path)
    before = source.read_text()
    data = write_class_folders(tmp_path / "faces", {"val": 1})
    assert main(["train", "bias", str(source), "--val-data", str(data)]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"memegen: train bias: {source}: its vote reads faces of ")
    assert error.endswith(" as NaN or infinity (a model answers so), so no class bias can be "
                          "fitted")
    assert source.read_text() == before


def test_a_graph_that_answers_nan_still_gives_an_answer_json_can_carry(tmp_path: Path):
    """Inference's last guard: the face reads as uniform, not as NaN."""
    source = ensemble_with_a_member_answering_nan(tmp_path)
    faces = np.full((48, 48), 128, dtype=np.uint8)
    scores = ExpressionClassifier(source).classify(faces, [(0, 0, 48, 48)], precropped=True)
    np.testing.assert_allclose(scores, np.full((1, 7), 1 / 7), rtol=1e-6)


def test_bias_stopped_while_writing_leaves_the_manifest_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The manifest is edited in place: a half-written one is no ensemble at all."""
    source = write_float_ensemble(tmp_path / "float")
    before = source.read_text()
    data = write_class_folders(tmp_path / "faces", {"val": 1})

    def disk_full_before_the_rename(partial: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full_before_the_rename)
    with pytest.raises(OSError, match="No space left"):
        main(["train", "bias", str(source), "--val-data", str(data)])
    monkeypatch.undo()
    assert source.read_text() == before
    assert sorted(path.name for path in source.parent.iterdir()) == [
        "manifest.json", "net0.onnx", "net1.onnx"]
