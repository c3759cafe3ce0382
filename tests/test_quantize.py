"""Int8 copies of an exported ensemble answer like the float models and load like any ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from memegen.cli import main  # noqa: E402
from memegen.expressions import ExpressionClassifier  # noqa: E402
from memegen.training.datasets import FaceDataset  # noqa: E402
from memegen.training.quantize import calibration_faces  # noqa: E402

from tiny_datasets import faces_of_every_class, write_class_folders  # noqa: E402
from tiny_networks import TINY_GRID_VGG, TINY_VGG, write_float_ensemble  # noqa: E402


@pytest.fixture(params=[TINY_VGG, TINY_GRID_VGG], ids=["pool-head", "grid-head"])
def float_ensemble(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_float_ensemble(tmp_path / "float", request.param)


def test_calibration_faces_are_distinct_rows_fixed_by_the_seed():
    images = np.arange(10)[:, None, None] * np.ones((1, 48, 48), dtype=np.uint8)
    dataset = FaceDataset("ten", images, np.zeros(10, dtype=np.int64))
    chosen = calibration_faces(dataset, 4, seed=3)
    assert len({int(image[0, 0]) for image in chosen}) == 4
    np.testing.assert_array_equal(chosen, calibration_faces(dataset, 4, seed=3))
    assert len(calibration_faces(dataset, 50, seed=3)) == 10


def test_quantize_command_writes_int8_models_that_vote_like_the_floats(
    float_ensemble: Path, tmp_path: Path
):
    data = write_class_folders(tmp_path / "faces", {"train": 6})
    out = tmp_path / "int8"
    assert main(["train", "quantize", str(float_ensemble), "--calibration-data", str(data),
                 "--count", "32", "--out", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert [entry["file"] for entry in manifest["models"]] == ["net0-int8.onnx", "net1-int8.onnx"]
    first = manifest["models"][0]
    assert first["quantization"]["from"] == "net0.onnx"
    assert first["quantization"]["calibration"]["examples"] == 32
    assert first["class_weights"]["happy"] == 1.5
    operators = {node.op_type for node in onnx.load(out / "net0-int8.onnx").graph.node}
    assert "QLinearConv" in operators and "Conv" not in operators
    assert "AveragePool" not in operators  # the grid head's pooling is quantized too
    assert "Softmax" in operators  # probabilities stay float, not in steps of 1/256

    crops = faces_of_every_class(28, seed=9)
    boxes = [(0.0, 0.0, 48.0, 48.0)]
    floats = ExpressionClassifier(float_ensemble)
    int8s = ExpressionClassifier(out / "manifest.json")
    expected = np.concatenate([floats.classify(crop, boxes, precropped=True) for crop in crops])
    got = np.concatenate([int8s.classify(crop, boxes, precropped=True) for crop in crops])
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(expected, axis=0).mean() > 0.5  # the float vote really tells faces apart
    # Int8 rounding moves a probability by under 0.01 on average; only a face that
    # sits between two classes moves by more (up to 0.1 through the grid head).
    difference = np.abs(got - expected)
    assert difference.mean() < 0.01 and difference.max() < 0.15
    assert np.mean(got.argmax(axis=1) == expected.argmax(axis=1)) >= 0.9


def test_quantize_refuses_to_write_over_its_source_folder(tmp_path: Path, capsys):
    float_ensemble = write_float_ensemble(tmp_path / "float")
    before = float_ensemble.read_text()
    data = write_class_folders(tmp_path / "faces", {"train": 6})
    assert main(["train", "quantize", str(float_ensemble), "--calibration-data", str(data),
                 "--out", str(float_ensemble.parent)]) == 2
    assert capsys.readouterr().err == (
        "memegen: write the int8 copies to another folder than the source's\n"
    )
    assert float_ensemble.read_text() == before
    assert not list(float_ensemble.parent.glob("*-int8.onnx"))
