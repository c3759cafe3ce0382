"""The whole training half on a tiny generated dataset, in seconds.

Load, balance, augment, search (two trials, the second resuming the study),
train with the command line, weight an ensemble on held-out data, export it,
fit its class biases, read it back with the inference classifier, and report
on it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")

from PIL import Image  # noqa: E402

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402
from memegen.expressions import (  # noqa: E402
    ExpressionClassifier,
    apply_temperature,
    shift_priors,
    weighted_vote,
)
from memegen.training.augment import AugmentConfig, augment  # noqa: E402
from memegen.training.balance import balance  # noqa: E402
from memegen.training.datasets import load_split  # noqa: E402
from memegen.training.search import SearchSettings, best_runs, run_search  # noqa: E402

from tiny_datasets import ASTRONAUT_FACE, face, write_class_folders, write_expw  # noqa: E402

TINY = ["--width", "4", "--depth", "1", "--epochs", "1", "--batch-size", "16", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_class_folders(root / "faces", {"train": 12, "val": 4})
    rng = np.random.default_rng(5)
    for number in range(12, 18):  # six more happy faces: the classes are no longer even
        Image.fromarray(face(LABELS.index("happy"), rng)).save(
            root / "faces" / "train" / "happy" / f"{number:03d}.png"
        )
    write_expw(root / "expw")
    write_expw(root / "expw-four", ("happy", "sad", "fear", "surprise"))
    write_expw(root / "expw-seven", tuple(LABELS))
    return root


def test_loaded_faces_balance_and_augment(data: Path):
    dataset = load_split(str(data / "faces"), "train")
    assert dataset.images.shape == (90, 48, 48)
    skewed = dataset.subset(np.flatnonzero(dataset.labels != 0)[:30])
    chosen, weights = balance(skewed.labels, "undersample", len(LABELS), seed=0)
    assert weights is None and len(set(np.bincount(skewed.labels[chosen])) - {0}) == 1
    batch = torch.from_numpy(dataset.images[:8]).float().div(255).unsqueeze(1)
    altered = augment(batch, AugmentConfig(), torch.Generator().manual_seed(0))
    assert altered.shape == batch.shape and not torch.equal(altered, batch)
    unaltered = replace(AugmentConfig().scaled(0.0), flip=0.0)
    assert torch.allclose(augment(batch, unaltered, torch.Generator()), batch, atol=1e-5)


def test_search_train_ensemble_export_classify_report(data: Path, tmp_path: Path, capsys):
    dataset = load_split(str(data / "faces"), "train")
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    settings = SearchSettings(
        runs_dir=tmp_path / "search", epochs=1, batch_size=16, threads=1,
        families=("vgg",), widths=(4,), max_depth=1, holdout=0.25,
    )
    run_search(dataset, "study", storage, trials=1, timeout=60, settings=settings)
    study = run_search(dataset, "study", storage, trials=1, timeout=60, settings=settings)
    assert len(study.trials) == 2  # the second call resumed the first's study
    searched = best_runs(study, 1)[0]

    fitted = tmp_path / "fitted"
    assert main(["train", "fit", "--data", str(data / "faces"), "--out", str(fitted),
                 "--balance", "oversample", "--low-resolution", "0.5", *TINY]) == 0
    assert json.loads((fitted / "config.json").read_text())["augment"]["low_resolution"] == 0.5
    counts = json.loads((fitted / "class_counts.json").read_text())["trained_on"]
    # 17 happy and 11 of every other class after the 8 % holdout; oversampling evens them
    assert set(counts.values()) == {17}
    sharing = tmp_path / "sharing"
    assert main(["train", "fit", "--data", str(data / "faces"), "--out", str(sharing),
                 "--holdout-from", str(fitted), "--seed", "7", "--augment-strength", "0.5",
                 *TINY]) == 0
    np.testing.assert_array_equal(
        np.load(sharing / "holdout_indices.npy"), np.load(fitted / "holdout_indices.npy")
    )
    gentle = json.loads((sharing / "config.json").read_text())["augment"]
    assert (gentle["max_rotation_deg"], gentle["erase"], gentle["flip"]) == (6.0, 0.15, 0.5)
    with pytest.raises(SystemExit) as stopped:  # refused while parsing, before any data
        main(["train", "fit", "--data", str(data / "faces"), "--out", str(tmp_path / "x"),
              "--holdout-from", str(tmp_path / "no-such-run"), *TINY])
    assert stopped.value.code == 2
    assert main(["train", "fit", "--data", str(data / "faces"), "--out", str(tmp_path / "y"),
                 "--low-resolution", "1.5", *TINY]) == 2
    assert not (tmp_path / "y").exists()
    with pytest.raises(SystemExit) as stopped:  # refused while parsing, as --crop-margin is
        main(["train", "fit", "--data", str(data / "faces"), "--out", str(tmp_path / "z"),
              "--augment-strength", "-1", *TINY])
    assert stopped.value.code == 2
    assert not (tmp_path / "z").exists()

    models = tmp_path / "models"
    assert main(["train", "ensemble", str(fitted), str(searched),
                 "--val-data", str(data / "faces"), "--out", str(models)]) == 0
    manifest = json.loads((models / "manifest.json").read_text())
    assert [entry["name"] for entry in manifest["models"]] == ["fitted", searched.name]
    assert manifest["voting_evidence"]["weighting_set"]["examples"] == 28
    for label in LABELS:
        total = sum(entry["class_weights"][label] for entry in manifest["models"])
        assert total == pytest.approx(2.0, abs=1e-5)

    assert main(["train", "bias", str(models / "manifest.json"),
                 "--val-data", str(data / "faces"), "--temperature"]) == 0
    manifest = json.loads((models / "manifest.json").read_text())
    assert set(manifest["class_bias"]) == set(LABELS)
    assert manifest["class_bias_evidence"]["weighting_set"]["examples"] == 28
    temperature = manifest["vote_temperature"]
    assert 0.25 <= temperature <= 4.0
    evidence = manifest["vote_temperature_evidence"]
    assert evidence["temperature"] == temperature
    assert evidence["nll_after"] <= evidence["nll_before"]

    classifier = ExpressionClassifier(models / "manifest.json")
    with Image.open(data / "expw" / "images" / "astronaut.jpg") as photo:
        rgb = np.asarray(photo.convert("RGB"))
    probabilities = classifier.classify(rgb, [ASTRONAUT_FACE])
    assert probabilities.shape == (1, len(LABELS))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    each_model = classifier.model_probabilities(rgb, [ASTRONAUT_FACE])
    assert each_model.shape == (2, 1, len(LABELS))
    bias = np.array([manifest["class_bias"][label] for label in LABELS])
    np.testing.assert_allclose(
        apply_temperature(shift_priors(weighted_vote(each_model, classifier.weights), bias),
                          temperature),
        probabilities,
        atol=1e-6,
    )

    student = tmp_path / "student"
    assert main(["train", "fit", "--data", str(data / "faces"), "--out", str(student),
                 "--holdout-from", str(fitted), "--teacher", str(models / "manifest.json"),
                 "--teacher-share", "0.5", *TINY]) == 0
    assert json.loads((student / "class_counts.json").read_text())["soft_labels"]
    student_config = json.loads((student / "config.json").read_text())
    assert (student_config["teacher"], student_config["teacher_share"]) == (
        str(models / "manifest.json"), 0.5)

    runs = [str(fitted), str(searched)]
    assert main(["train", "photo-models", str(models / "manifest.json"), str(fitted),
                 str(fitted), "--photos", str(data / "expw-seven")]) == 2
    assert "give each run once" in capsys.readouterr().err
    assert main(["train", "photo-models", str(models / "manifest.json"), *runs,
                 "--photos", str(data / "expw")]) == 2  # one photo cannot be cross-validated
    # Photos without angry, disgust or neutral faces: those classes' biases cannot be fitted.
    assert main(["train", "photo-models", str(models / "manifest.json"), *runs,
                 "--photos", str(data / "expw-four")]) == 2
    assert "has no faces of angry, disgust, neutral:" in capsys.readouterr().err
    assert "photo_models" not in json.loads((models / "manifest.json").read_text())
    assert main(["train", "photo-models", str(models / "manifest.json"), *runs,
                 "--photos", str(data / "expw-seven")]) == 0
    manifest = json.loads((models / "manifest.json").read_text())
    seen = manifest["photo_models_evidence"]["photos"]
    assert (seen["photos"], seen["faces_found"]) == (7, 7)
    assert [entry["name"] for entry in manifest["photo_models"]] == [
        "fitted-photo", f"{searched.name}-photo"]
    assert (models / f"{searched.name}-photo-int8.onnx").is_file()
    assert main(["train", "photo-models", str(models / "manifest.json"), str(fitted),
                 "--photos", str(data / "expw-seven")]) == 0  # the replaced one's file goes
    assert not (models / f"{searched.name}-photo-int8.onnx").exists()
    assert main(["train", "photo-models", str(models / "manifest.json"), *runs,
                 "--photos", str(data / "expw-seven")]) == 0
    with_photo_models = ExpressionClassifier(models / "manifest.json")
    readings = with_photo_models.photo_model_probabilities(rgb, [ASTRONAUT_FACE])
    np.testing.assert_allclose(with_photo_models.classify(rgb, [ASTRONAUT_FACE]),
                               readings.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(  # crops given as faces keep the crop vote
        with_photo_models.classify(rgb, [ASTRONAUT_FACE], precropped=True),
        classifier.classify(rgb, [ASTRONAUT_FACE], precropped=True), atol=1e-6)
    # A step that rewrites the crop members carries the photo models over as they are.
    assert main(["train", "quantize", str(models / "manifest.json"), "--calibration-data",
                 str(data / "faces"), "--count", "16", "--out", str(tmp_path / "int8")]) == 0
    np.testing.assert_array_equal(
        ExpressionClassifier(tmp_path / "int8" / "manifest.json").photo_model_probabilities(
            rgb, [ASTRONAUT_FACE]),
        readings)

    report = tmp_path / "report"
    listed = tmp_path / "first-photo.txt"
    listed.write_text("images/astronaut.jpg\n")
    assert main(["train", "report", "--manifest", str(models / "manifest.json"),
                 "--data", str(data / "faces"), "--photos", str(data / "expw"),
                 f"{data / 'expw-seven'},skip={listed}", "--out", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "faces/val" in text and "**ensemble**" in text and "expw (end to end)" in text
    assert "expw-seven, skip first-photo.txt (end to end)" in text
    assert "*the vote crops get*" in text and "`fitted-photo`" in text
    assert "6 of these 6 photos fitted the photo models" in text
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["datasets"]["faces/val"]["ensemble"]["examples"] == 28
    assert "*the vote before class bias*" in text  # the manifest has a fitted class bias
    assert numbers["datasets"]["faces/val"]["ensemble_before_bias"]["examples"] == 28
    checked = numbers["photos"]["expw-seven, skip first-photo.txt (end to end)"]
    assert (checked["labelled"], checked["photos_that_fitted_the_photo_models"]) == (6, 6)
    assert numbers["photos"]["expw (end to end)"]["photos_that_fitted_the_photo_models"] == 0
    assert set(checked["models"]) == {"fitted", searched.name, "fitted-photo",
                                      f"{searched.name}-photo"}
    assert numbers["photos"]["expw (end to end)"]["found_rate"] == 1.0
    assert numbers["photos"]["expw (end to end)"]["found_in_their_convention_rate"] == 1.0
    bands = numbers["photos"]["expw (end to end)"]["by_face_side"]
    assert sum(band["faces"] for band in bands) == numbers["photos"]["expw (end to end)"]["found"]
    assert "by the side of the detected face" in text
    with Image.open(report / "confusion-faces-val.png") as picture:
        assert picture.width > 400 and picture.height > 400
