"""An exported float VGG turns back into a run that answers like its graph and trains on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402

from memegen.cli import main  # noqa: E402
from memegen.expressions import normalise  # noqa: E402
from memegen.training.datasets import load_split  # noqa: E402
from memegen.training.train import build_model, load_trained, predict_probabilities  # noqa: E402

from tiny_datasets import write_class_folders  # noqa: E402
from tiny_networks import TINY_GRID_VGG, TINY_VGG, write_float_ensemble  # noqa: E402


@pytest.fixture(params=[TINY_VGG, TINY_GRID_VGG], ids=["pool-head", "grid-head"])
def ensemble_and_data(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    return write_float_ensemble(tmp_path / "float", request.param), write_class_folders(
        tmp_path / "faces", {"train": 20}
    )


def test_rebuilt_run_answers_like_its_graph_and_fine_tunes(
    ensemble_and_data: tuple[Path, Path], tmp_path: Path
):
    manifest, data = ensemble_and_data
    run = tmp_path / "rebuilt"
    assert main(["train", "rebuild", str(manifest), "net1", "--data", str(data),
                 "--out", str(run)]) == 0

    network, config = load_trained(run)
    faces = load_split(str(data), "train").images
    session = ort.InferenceSession(str(manifest.parent / "net1.onnx"),
                                   providers=["CPUExecutionProvider"])
    expected = session.run(None, {"faces": normalise(faces, config.mean, config.std)})[0]
    np.testing.assert_allclose(
        predict_probabilities(network, faces, config, mirror=True), expected, atol=1e-5
    )
    assert np.ptp(expected, axis=0).mean() > 0.3  # a graph that really tells faces apart

    # In train mode the batch norms use the batch's own statistics; they were
    # fitted to these faces, so the network still answers like the graph. Set to
    # scale 1, as a plain copy of the folded weights would leave them, it does not.
    inputs = torch.from_numpy(normalise(faces, config.mean, config.std))
    plain = predict_probabilities(network, faces, config, mirror=False)
    without_dropout = build_model(replace(config, dropout=0.0))
    without_dropout.load_state_dict(network.state_dict())
    with torch.no_grad():
        training = torch.softmax(without_dropout.train()(inputs), dim=1).numpy()
        for module in without_dropout.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
        unscaled = torch.softmax(without_dropout(inputs), dim=1).numpy()
    np.testing.assert_allclose(training, plain, atol=1e-4)
    assert np.abs(unscaled - plain).mean() > 0.01

    tuned = tmp_path / "tuned"
    assert main(["train", "fit", "--data", str(data), "--out", str(tuned),
                 "--init-from", str(run / "best.pt"), "--family", "vgg", "--width", "8",
                 "--depth", "1", "--head", config.head, "--epochs", "1", "--batch-size", "16",
                 "--threads", "1", "--learning-rate", "1e-7"]) == 0
    started = torch.load(tuned / "last.pt", weights_only=False)["model"]
    for name, value in network.state_dict().items():
        if name.endswith("weight"):  # running statistics move with the batches; weights barely
            torch.testing.assert_close(started[name], value, atol=1e-4, rtol=0)


def test_rebuild_refuses_unknown_members_and_int8_copies(
    ensemble_and_data: tuple[Path, Path], tmp_path: Path
):
    manifest, data = ensemble_and_data
    assert main(["train", "rebuild", str(manifest), "net9", "--data", str(data),
                 "--out", str(tmp_path / "nine")]) == 2
    int8 = tmp_path / "int8"
    assert main(["train", "quantize", str(manifest), "--calibration-data", str(data),
                 "--count", "16", "--out", str(int8)]) == 0
    assert main(["train", "rebuild", str(int8 / "manifest.json"), "net0", "--data", str(data),
                 "--out", str(tmp_path / "from-int8")]) == 2
    assert not (tmp_path / "nine").exists() and not (tmp_path / "from-int8").exists()


def test_rebuild_refuses_to_overwrite_a_run(ensemble_and_data: tuple[Path, Path], tmp_path: Path):
    manifest, data = ensemble_and_data
    run = tmp_path / "rebuilt"
    argv = ["train", "rebuild", str(manifest), "net1", "--data", str(data), "--out", str(run)]
    assert main(argv) == 0
    written = (run / "best.pt").read_bytes()
    assert main([*argv[:3], "net0", *argv[4:]]) == 2
    assert (run / "best.pt").read_bytes() == written
