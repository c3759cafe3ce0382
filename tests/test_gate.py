"""A gated model is read only where the models before it are unsure, and the vote leaves it
out elsewhere; ``train gate`` picks the gate on held-out faces."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402
from memegen.errors import UserError  # noqa: E402
from memegen.expressions import ExpressionClassifier, weighted_vote  # noqa: E402
from memegen.training.gate import THRESHOLDS, choose_gates  # noqa: E402

from tiny_datasets import faces_of_every_class, write_class_folders  # noqa: E402
from tiny_networks import first_model_tops, gate_last_model, write_float_ensemble  # noqa: E402

WHOLE_CROP = [(0, 0, 48, 48)]


def _readings(top: float) -> np.ndarray:
    """One face's probabilities: ``top`` for the first class, the rest shared evenly."""
    return np.array([top] + [(1 - top) / (len(LABELS) - 1)] * (len(LABELS) - 1))


def test_a_model_left_out_of_a_face_gives_the_others_its_say_there():
    probabilities = np.array([
        [[0.6, 0.4], [0.2, 0.8]],
        [[0.0, 1.0], [1.0, 0.0]],
    ])
    weights = np.array([[1.0, 3.0], [1.0, 1.0]])
    consulted = np.array([[True, True], [False, True]])
    vote = weighted_vote(probabilities, weights, consulted)
    np.testing.assert_allclose(vote[0], [0.6, 0.4], atol=1e-6)
    face_two = np.array([(0.2 + 1.0) / 2, (3 * 0.8 + 0.0) / 4])
    np.testing.assert_allclose(vote[1], face_two / face_two.sum(), atol=1e-6)
    np.testing.assert_allclose(
        weighted_vote(probabilities, weights, np.ones((2, 2), dtype=bool)),
        weighted_vote(probabilities, weights),
    )


def test_a_gated_model_is_read_only_on_the_faces_the_models_before_it_are_unsure_of(
    tmp_path: Path,
):
    source = write_float_ensemble(tmp_path / "float")
    faces = faces_of_every_class(14, seed=7)
    ungated = ExpressionClassifier(source)
    first_tops = first_model_tops(ungated, faces)
    threshold = float(np.median(first_tops))
    classifier = ExpressionClassifier(gate_last_model(source, threshold))

    for face, first_top in zip(faces, first_tops, strict=True):
        fast = classifier.model_probabilities(face, WHOLE_CROP, precropped=True, gated=True)
        every = classifier.model_probabilities(face, WHOLE_CROP, precropped=True)
        unsure = first_top < threshold
        assert np.isnan(fast[1]).any() != unsure
        assert classifier.consulted(every)[1, 0] == unsure
        vote = classifier.classify(face, WHOLE_CROP, precropped=True)
        np.testing.assert_allclose(vote, classifier.vote(every), atol=1e-6)
        expected = weighted_vote(every, ungated.weights) if unsure else every[0]
        np.testing.assert_allclose(vote, expected, atol=1e-6)


def test_a_cascade_reads_each_gated_model_where_the_models_read_before_it_are_unsure(
    tmp_path: Path,
):
    source = write_float_ensemble(tmp_path / "float", weights=(1.5, 0.5, 1.0))
    faces = faces_of_every_class(14, seed=7)
    ungated = ExpressionClassifier(source)
    every = np.concatenate([
        ungated.model_probabilities(face, WHOLE_CROP, precropped=True) for face in faces
    ], axis=1)
    second_below = float(np.median(every[0].max(axis=1)))
    second_read = every[0].max(axis=1) < second_below
    # The third model's gate reads the vote of the models read before it on each face.
    before_third = weighted_vote(every[:2], ungated.weights[:2],
                                 np.stack([np.ones_like(second_read), second_read]))
    third_below = float(np.median(before_third.max(axis=1)))
    third_read = before_third.max(axis=1) < third_below
    manifest = json.loads(source.read_text())
    manifest["models"][1]["consult_below"] = second_below
    manifest["models"][2]["consult_below"] = third_below
    source.write_text(json.dumps(manifest))
    classifier = ExpressionClassifier(source)

    consulted = np.stack([np.ones_like(second_read), second_read, third_read])
    np.testing.assert_array_equal(classifier.consulted(every), consulted)
    for index, face in enumerate(faces):
        fast = classifier.model_probabilities(face, WHOLE_CROP, precropped=True, gated=True)
        np.testing.assert_array_equal(np.isnan(fast[:, 0, 0]), ~consulted[:, index])
        np.testing.assert_allclose(
            classifier.classify(face, WHOLE_CROP, precropped=True),
            weighted_vote(every[:, [index]], ungated.weights, consulted[:, [index]]),
            atol=1e-6,
        )


def test_the_first_model_cannot_be_gated(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    manifest = json.loads(source.read_text())
    manifest["models"][0]["consult_below"] = 0.7
    source.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="first model"):
        ExpressionClassifier(source)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> ExpressionClassifier:
    """The tiny ensemble with equal weights: ``choose_gates`` only reads its weights."""
    loaded = ExpressionClassifier(write_float_ensemble(tmp_path_factory.mktemp("float")))
    loaded.weights = np.ones_like(loaded.weights)
    return loaded


# Four faces of the first class; the first model's top probabilities are 0.95, 0.85,
# 0.65 and 0.55, so the thresholds read the second model on 4, 3, 2, 2, 1 and 0 of them.
FIRST_MODEL = np.stack([_readings(top) for top in (0.95, 0.85, 0.65, 0.55)])
LABELS_OF_FACES = np.zeros(4, dtype=int)
A_MS_A_FACE = np.ones((2, 4))


def test_a_gate_that_would_skip_faces_the_last_model_helps_on_is_not_chosen(classifier):
    helpful = np.stack([FIRST_MODEL, np.stack([_readings(0.99)] * 4)])
    thresholds, evidence = choose_gates(classifier, helpful, LABELS_OF_FACES, A_MS_A_FACE)
    # Skipping even the surest face costs (ln 0.97 - ln 0.95) / 4 = 0.005 nats.
    assert thresholds == (1.0,)
    assert evidence["combinations_tried"] == len(THRESHOLDS) + 1
    front = evidence["front"]
    assert [numbers["below"] for numbers in front] == [[0.5], [0.6], [0.7], [0.9], [1.0]]
    assert [numbers["expected_ms"] for numbers in front] == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert front[3]["consulted_shares"] == [0.75]
    assert front[3]["nll"] > evidence["every_face"]["nll"] + 0.001


def test_a_last_model_that_adds_nothing_is_gated_at_the_lowest_threshold(classifier):
    echo = np.stack([FIRST_MODEL, FIRST_MODEL])
    thresholds, evidence = choose_gates(classifier, echo, LABELS_OF_FACES, A_MS_A_FACE)
    assert thresholds == (min(THRESHOLDS),)
    assert evidence["chosen"]["consulted_shares"] == [0.0]
    assert evidence["chosen"]["expected_ms"] == 1.0


def test_a_share_budget_takes_the_best_gate_that_fits_it(classifier):
    helpful = np.stack([FIRST_MODEL, np.stack([_readings(0.99)] * 4)])
    thresholds, evidence = choose_gates(classifier, helpful, LABELS_OF_FACES, A_MS_A_FACE,
                                        max_consulted_share=0.5)
    # 0.8 and 0.7 both read the two unsure faces; ties go to the first, higher one.
    assert thresholds == (0.8,)
    assert evidence["max_consulted_share"] == 0.5
    with pytest.raises(UserError, match=r"at most 0\.1 of the faces"):
        choose_gates(classifier, np.stack([np.stack([_readings(0.3)] * 4)] * 2),
                     LABELS_OF_FACES, A_MS_A_FACE, max_consulted_share=0.1)


def test_a_cascade_leaves_the_dearer_of_two_equally_helpful_models_unread(classifier):
    # Two later models that each read every face as 0.99 sure and, at a weight of 1,000
    # to the first model's 1, each make the vote nearly theirs: either one suffices on
    # every face, and which one is read is the cheaper's.
    cascade = copy.copy(classifier)
    cascade.models = [*classifier.models, classifier.models[-1]]
    cascade.weights = np.array([[1.0] * len(LABELS), [1000.0] * len(LABELS),
                                [1000.0] * len(LABELS)])
    sure = np.stack([_readings(0.99)] * 4)
    readings = np.stack([FIRST_MODEL, sure, sure])
    first_one_dear = np.array([[1.0] * 4, [10.0] * 4, [1.0] * 4])
    thresholds, evidence = choose_gates(cascade, readings, LABELS_OF_FACES, first_one_dear,
                                        gated=2)
    assert thresholds == (min(THRESHOLDS), 1.0)
    assert evidence["chosen"]["consulted_shares"] == [0.0, 1.0]
    assert evidence["chosen"]["expected_ms"] == 2.0
    assert evidence["combinations_tried"] == (len(THRESHOLDS) + 1) ** 2
    second_one_dear = first_one_dear[[0, 2, 1]]
    thresholds, _ = choose_gates(cascade, readings, LABELS_OF_FACES, second_one_dear, gated=2)
    assert thresholds == (1.0, min(THRESHOLDS))


def test_under_a_budget_an_earlier_gated_model_may_still_read_every_face(classifier):
    """Only the last model's share is capped. The first model below is certain (a top of
    exactly 1.0, so no threshold reads the next one) and wrong on half the faces: only the
    second model read on every face saves the vote, and a budget used to rule that out."""
    cascade = copy.copy(classifier)
    cascade.models = [*classifier.models, classifier.models[-1]]
    cascade.weights = np.array([[1.0] * len(LABELS), [1000.0] * len(LABELS),
                                [1000.0] * len(LABELS)])
    certain_and_half_wrong = np.eye(len(LABELS))[[0, 1, 0, 1]]
    sure = np.stack([_readings(0.99)] * 4)
    thresholds, evidence = choose_gates(
        cascade, np.stack([certain_and_half_wrong, sure, sure]), LABELS_OF_FACES,
        np.ones((3, 4)), gated=2, max_consulted_share=0.5,
    )
    assert thresholds == (math.inf, min(THRESHOLDS))
    assert evidence["chosen"]["consulted_shares"] == [1.0, 0.0]
    assert evidence["combinations_tried"] == (len(THRESHOLDS) + 1) ** 2


def test_the_first_model_is_never_gated(classifier):
    echo = np.stack([FIRST_MODEL, FIRST_MODEL])
    with pytest.raises(UserError, match="first of 2"):
        choose_gates(classifier, echo, LABELS_OF_FACES, A_MS_A_FACE, gated=2)


def test_gate_command_writes_a_gated_ensemble_that_loads_with_refitted_biases(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 6})
    assert main(["train", "bias", str(source), "--val-data", str(data)]) == 0
    out = tmp_path / "gated"
    assert main(["train", "gate", str(source), "--val-data", str(data), "--out", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    evidence = manifest["gate_evidence"]
    assert evidence["weighting_set"]["examples"] == 42
    assert evidence["models"] == ["net1"]
    assert [manifest["models"][-1].get("consult_below")] == evidence["chosen"]["below"]
    assert sorted(evidence["ms_a_pass"]) == ["net0", "net1"]
    assert all(ms > 0 for ms in evidence["ms_a_pass"].values())
    assert "consult_below" not in manifest["models"][0]
    assert manifest["class_bias_evidence"]["weighting_set"]["examples"] == 42
    assert sorted(path.name for path in out.glob("*.onnx")) == ["net0.onnx", "net1.onnx"]
    vote = ExpressionClassifier(out / "manifest.json").classify(
        faces_of_every_class(1, seed=8)[0], WHOLE_CROP, precropped=True
    )
    np.testing.assert_allclose(vote.sum(), 1.0, atol=1e-5)


def test_gate_command_gates_the_last_models_as_a_cascade(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float", weights=(1.5, 0.5, 1.0))
    data = write_class_folders(tmp_path / "faces", {"val": 6})
    out = tmp_path / "cascade"
    assert main(["train", "gate", str(source), "--val-data", str(data), "--gated", "2",
                 "--out", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    evidence = manifest["gate_evidence"]
    assert evidence["models"] == ["net1", "net2"]
    assert evidence["combinations_tried"] == (len(THRESHOLDS) + 1) ** 2
    assert [entry.get("consult_below") for entry in manifest["models"][1:]] == (
        evidence["chosen"]["below"]
    )
    assert "consult_below" not in manifest["models"][0]
    assert evidence["chosen"]["nll"] <= evidence["every_face"]["nll"] + 0.001
    front = evidence["front"]
    assert all(later["expected_ms"] >= earlier["expected_ms"] and later["nll"] < earlier["nll"]
               for earlier, later in itertools.pairwise(front))
    vote = ExpressionClassifier(out / "manifest.json").classify(
        faces_of_every_class(1, seed=8)[0], WHOLE_CROP, precropped=True
    )
    np.testing.assert_allclose(vote.sum(), 1.0, atol=1e-5)


def test_gate_refuses_too_many_gated_models_before_reading_any_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 2})

    def read_every_face(*args, **kwargs):
        raise AssertionError("read the faces before refusing --gated")

    monkeypatch.setattr("memegen.training.gate.crop_probabilities", read_every_face)
    assert main(["train", "gate", str(source), "--val-data", str(data), "--gated", "2",
                 "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_mirror_refuses_a_gated_ensemble_and_gate_its_own_folder_or_the_first_model(tmp_path: Path):
    source = gate_last_model(write_float_ensemble(tmp_path / "float"), 0.7)
    data = write_class_folders(tmp_path / "faces", {"val": 2})
    before = source.read_text()
    assert main(["train", "mirror", str(source), "--val-data", str(data),
                 "--out", str(tmp_path / "mirrored")]) == 2
    assert main(["train", "gate", str(source), "--val-data", str(data),
                 "--out", str(source.parent)]) == 2
    assert main(["train", "gate", str(source), "--val-data", str(data), "--gated", "2",
                 "--out", str(tmp_path / "every-model-gated")]) == 2
    assert not (tmp_path / "every-model-gated").exists()
    assert source.read_text() == before


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_steps_refuse_a_model_file_outside_the_manifests_folder(
    tmp_path: Path, capsys, where: str
):
    """Gate copied it onto itself (absolute) or wrote it outside --out (``..``)."""
    source = write_float_ensemble(tmp_path / "float")
    manifest = json.loads(source.read_text())
    (tmp_path / "net0.onnx").write_bytes((source.parent / "net0.onnx").read_bytes())
    named = str(tmp_path / "net0.onnx") if where == "absolute" else "../net0.onnx"
    manifest["models"][0]["file"] = named
    source.write_text(json.dumps(manifest))
    data = write_class_folders(tmp_path / "faces", {"val": 1})
    out = tmp_path / "gated" / "out"
    assert main(["train", "gate", str(source), "--val-data", str(data), "--out", str(out)]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("memegen: ") and named in error
    assert not out.exists() and not (tmp_path / "gated" / "net0.onnx").exists()


def test_gate_copies_a_model_in_a_subfolder_to_the_same_place_in_out(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    manifest = json.loads(source.read_text())
    (source.parent / "sub").mkdir()
    (source.parent / "net0.onnx").rename(source.parent / "sub" / "net0.onnx")
    manifest["models"][0]["file"] = "sub/net0.onnx"
    source.write_text(json.dumps(manifest))
    data = write_class_folders(tmp_path / "faces", {"val": 1})
    out = tmp_path / "gated"
    assert main(["train", "gate", str(source), "--val-data", str(data), "--out", str(out)]) == 0
    assert [model.name for model in ExpressionClassifier(out / "manifest.json").models] == [
        "net0", "net1"]
    assert (out / "sub" / "net0.onnx").read_bytes() == (
        source.parent / "sub" / "net0.onnx").read_bytes()
