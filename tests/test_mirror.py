"""Mirror passes are cut from exported graphs exactly, and run only where they help the vote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402
from memegen.expressions import ExpressionClassifier, ExpressionModel, normalise  # noqa: E402
from memegen.training.calibration import fit_temperature  # noqa: E402
from memegen.training.datasets import load_split  # noqa: E402
from memegen.training.ensemble import fit_weights, vote_nll  # noqa: E402
from memegen.training.export import export_onnx  # noqa: E402
from memegen.training.mirror import (  # noqa: E402
    THRESHOLDS,
    choose_mirror_passes,
    choose_mirror_thresholds,
    plain_pass_output,
    write_plain_pass,
)
from memegen.training.quantize import quantize_model  # noqa: E402
from memegen.training.report import crop_probabilities  # noqa: E402
from memegen.training.train import TrainConfig  # noqa: E402

from tiny_datasets import faces_of_every_class, write_class_folders  # noqa: E402
from tiny_networks import trained_vgg, write_float_ensemble  # noqa: E402


def _outputs(path: Path, faces: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"faces": normalise(faces, TrainConfig.mean, TrainConfig.std)})


def _answers(path: Path, faces: np.ndarray) -> np.ndarray:
    return _outputs(path, faces)[0]


def _softmaxes(path: Path) -> int:
    return sum(node.op_type == "Softmax" for node in onnx.load(path).graph.node)


def test_plain_pass_of_a_float_graph_answers_like_an_export_without_mirror(tmp_path: Path):
    network = trained_vgg(0)
    export_onnx(network, 48, tmp_path / "mirrored.onnx", mirror=True)
    export_onnx(network, 48, tmp_path / "single.onnx", mirror=False)
    write_plain_pass(tmp_path / "mirrored.onnx", tmp_path / "cut.onnx")

    faces = faces_of_every_class(14, seed=3)
    cut = _answers(tmp_path / "cut.onnx", faces)
    np.testing.assert_allclose(cut, _answers(tmp_path / "single.onnx", faces), atol=1e-6)
    assert np.abs(cut - _answers(tmp_path / "mirrored.onnx", faces)).max() > 1e-3
    assert _softmaxes(tmp_path / "cut.onnx") == 1
    assert [output.name for output in onnx.load(tmp_path / "cut.onnx").graph.output] == [
        "probabilities"
    ]


def test_plain_pass_of_an_int8_graph_is_one_of_its_two_passes_exactly(tmp_path: Path):
    export_onnx(trained_vgg(1), 48, tmp_path / "float.onnx", mirror=True)
    calibration = normalise(faces_of_every_class(32, seed=4), TrainConfig.mean, TrainConfig.std)
    quantize_model(tmp_path / "float.onnx", tmp_path / "int8.onnx", calibration)
    write_plain_pass(tmp_path / "int8.onnx", tmp_path / "cut.onnx")
    assert "QLinearConv" in {node.op_type for node in onnx.load(tmp_path / "cut.onnx").graph.node}
    assert _softmaxes(tmp_path / "cut.onnx") == 1

    # Expose both passes' probabilities of the int8 graph: the cut graph must give
    # one of them unchanged (which one is checked on float graphs above).
    whole = onnx.load(tmp_path / "int8.onnx")
    for node in whole.graph.node:
        if node.op_type == "Softmax":
            whole.graph.output.append(onnx.ValueInfoProto(name=node.output[0]))
    onnx.save(whole, tmp_path / "exposed.onnx")
    faces = faces_of_every_class(14, seed=5)
    average, *passes = _outputs(tmp_path / "exposed.onnx", faces)
    np.testing.assert_allclose((passes[0] + passes[1]) / 2, average, atol=1e-6)
    cut = _answers(tmp_path / "cut.onnx", faces)
    matches = [np.allclose(cut, answers, atol=1e-6) for answers in passes]
    assert sorted(matches) == [False, True]


def test_a_graph_without_mirror_pass_has_no_plain_pass_to_cut(tmp_path: Path):
    export_onnx(trained_vgg(0), 48, tmp_path / "single.onnx", mirror=False)
    with pytest.raises(ValueError, match="no mirror pass"):
        plain_pass_output(onnx.load(tmp_path / "single.onnx"))


def test_a_mirror_pass_stays_only_when_it_lowers_the_vote_nll_enough():
    rng = np.random.default_rng(0)
    labels = np.arange(70) % len(LABELS)
    noisy = rng.dirichlet(np.ones(len(LABELS)), size=(2, 70))
    sharper = noisy.copy()
    sharper[0, np.arange(70), labels] += 1.0  # model 0's mirror pass helps a lot
    sharper[0] /= sharper[0].sum(axis=1, keepdims=True)

    keep, evidence = choose_mirror_passes(sharper, noisy, labels)

    assert keep == [True, False]  # model 1's pass changes nothing, so it goes
    with_both = vote_nll(sharper, labels, fit_weights(sharper, labels))
    assert evidence[0]["vote_nll_with_mirror"] == pytest.approx(with_both, abs=1e-6)
    assert evidence[1]["vote_nll_with_mirror"] == evidence[1]["vote_nll_without_mirror"]
    assert choose_mirror_passes(sharper, noisy, labels, min_gain=10.0)[0] == [False, False]


def _model(path: Path, mirror_below: float, temperature: float = 1.0) -> ExpressionModel:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ExpressionModel(
        "net", session, 48, TrainConfig.mean, TrainConfig.std, 0.0,
        np.ones(len(LABELS), dtype=np.float32), "faces", mirror_below, temperature,
    )


def test_a_face_below_the_threshold_is_read_again_mirrored_and_averaged(tmp_path: Path):
    network = trained_vgg(0)
    export_onnx(network, 48, tmp_path / "mirrored.onnx", mirror=True)
    export_onnx(network, 48, tmp_path / "single.onnx", mirror=False)
    faces = faces_of_every_class(14, seed=7)
    in_graph = _answers(tmp_path / "mirrored.onnx", faces)
    plain = _answers(tmp_path / "single.onnx", faces)

    always = _model(tmp_path / "single.onnx", 1.0).probabilities(faces)
    np.testing.assert_allclose(always, in_graph, atol=1e-6)
    never = _model(tmp_path / "single.onnx", 0.0).probabilities(faces)
    np.testing.assert_allclose(never, plain, atol=1e-6)

    threshold = float(np.median(plain.max(axis=1)))
    some = _model(tmp_path / "single.onnx", threshold).probabilities(faces)
    unsure = plain.max(axis=1) < threshold
    assert 0 < unsure.sum() < len(faces)
    np.testing.assert_allclose(some[unsure], in_graph[unsure], atol=1e-6)
    np.testing.assert_allclose(some[~unsure], plain[~unsure], atol=1e-6)


def test_a_models_temperature_scales_its_readings_after_the_mirror_average(tmp_path: Path):
    network = trained_vgg(0)
    export_onnx(network, 48, tmp_path / "mirrored.onnx", mirror=True)
    export_onnx(network, 48, tmp_path / "single.onnx", mirror=False)
    faces = faces_of_every_class(14, seed=7)
    in_graph = _answers(tmp_path / "mirrored.onnx", faces).astype(np.float64)

    surer = _model(tmp_path / "single.onnx", 1.0, temperature=0.5).probabilities(faces)
    squared = in_graph**2 / (in_graph**2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(surer, squared, atol=1e-5)
    np.testing.assert_array_equal(surer.argmax(axis=1), in_graph.argmax(axis=1))
    assert surer.max(axis=1).mean() > in_graph.max(axis=1).mean()


def test_the_mirror_pass_is_skipped_on_the_faces_where_it_changes_nothing():
    labels = np.arange(70) % len(LABELS)
    sure = np.full((70, len(LABELS)), 0.01)
    sure[np.arange(70), labels] = 0.94
    torn = np.full((70, len(LABELS)), 1 / len(LABELS))
    unsure_faces = np.arange(70) % 2 == 1
    plain = np.where(unsure_faces[:, None], torn, sure)
    flipped = np.where(unsure_faces[:, None], sure, plain)  # the second look settles torn faces
    other = np.random.default_rng(1).dirichlet(np.ones(len(LABELS)), size=70)

    thresholds, evidence = choose_mirror_thresholds(
        np.stack([plain, other]), np.stack([flipped, other]), [True, False], labels
    )
    assert thresholds == [min(THRESHOLDS), 0.0]
    assert evidence[0]["mirrored_share"] == pytest.approx(0.5)
    assert evidence[1] == {"below": 0.0}

    # When the model is sure but wrong and its mirror image puts that right, every face
    # must be read twice.
    sure_but_wrong = np.where(unsure_faces[:, None], torn, np.roll(sure, 1, axis=1))
    thresholds, _ = choose_mirror_thresholds(
        np.stack([sure_but_wrong, other]), np.stack([flipped, other]), [True, False], labels
    )
    assert thresholds == [max(THRESHOLDS), 0.0]


def test_mirror_command_writes_an_ensemble_that_loads_with_refitted_weights_and_biases(
    tmp_path: Path,
):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 6})
    assert main(["train", "bias", str(source), "--val-data", str(data), "--temperature"]) == 0
    out = tmp_path / "chosen"
    assert main([
        "train", "mirror", str(source), "--val-data", str(data), "--out", str(out),
        "--member-temperatures",
    ]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["class_bias_evidence"]["weighting_set"]["examples"] == 42
    assert manifest["vote_temperature"] == manifest["vote_temperature_evidence"]["temperature"]
    assert manifest["mirror_pass_evidence"]["weighting_set"]["examples"] == 42
    assert sorted(path.name for path in out.glob("*.onnx")) == sorted(
        entry["file"] for entry in manifest["models"]
    )
    for entry in manifest["models"]:
        assert not entry["input"]["mirror_averaged_in_graph"]
        assert _softmaxes(out / entry["file"]) == 1
        below = entry["input"]["mirror_below"]
        assert below == entry["mirror_pass"]["below"]
        assert (below > 0) == entry["mirror_pass"]["kept"]
        assert entry["temperature"] > 0
    for label in LABELS:
        total = sum(entry["class_weights"][label] for entry in manifest["models"])
        assert total == pytest.approx(2.0, abs=1e-5)

    assert {model.temperature for model in ExpressionClassifier(source).models} == {1.0}
    classifier = ExpressionClassifier(out / "manifest.json")
    weighting_set = load_split(str(data), "val")
    for readings in crop_probabilities(classifier, weighting_set):
        # Each model's temperature was fitted to its own readings on the weighting
        # set, so the tempered readings want none of their own.
        assert fit_temperature(readings, weighting_set.labels) == pytest.approx(1.0, abs=0.01)
    crops = faces_of_every_class(7, seed=6)
    votes = np.concatenate(
        [classifier.classify(crop, [(0, 0, 48, 48)], precropped=True) for crop in crops]
    )
    np.testing.assert_allclose(votes.sum(axis=1), 1.0, atol=1e-5)


def test_mirror_command_fits_no_member_temperatures_unless_asked(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 2})
    out = tmp_path / "chosen"
    assert main(["train", "mirror", str(source), "--val-data", str(data), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert not any("temperature" in entry for entry in manifest["models"])
    assert "temperatures" not in manifest["mirror_pass_evidence"]
    assert {model.temperature for model in ExpressionClassifier(out / "manifest.json").models} == {
        1.0
    }


def test_mirror_command_refuses_to_write_over_its_source(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 2})
    before = source.read_text()
    assert main(["train", "mirror", str(source), "--val-data", str(data),
                 "--out", str(source.parent)]) == 2
    assert source.read_text() == before
    assert sorted(path.name for path in source.parent.iterdir()) == [
        "manifest.json", "net0.onnx", "net1.onnx"
    ]


def test_bias_without_temperature_drops_the_one_fitted_for_earlier_biases(tmp_path: Path):
    source = write_float_ensemble(tmp_path / "float")
    data = write_class_folders(tmp_path / "faces", {"val": 6})
    assert main(["train", "bias", str(source), "--val-data", str(data), "--temperature"]) == 0
    assert "vote_temperature" in json.loads(source.read_text())
    assert main(["train", "bias", str(source), "--val-data", str(data)]) == 0
    manifest = json.loads(source.read_text())
    assert "vote_temperature" not in manifest and "vote_temperature_evidence" not in manifest
    assert ExpressionClassifier(source).temperature == 1.0
