"""The exported ONNX graph computes what the PyTorch network does, for every family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from memegen.training.architectures import FAMILIES, HEADS, build  # noqa: E402
from memegen.training.export import INPUT_NAME, export_onnx  # noqa: E402


def _randomised(family: str, head: str) -> torch.nn.Module:
    """A tiny network whose batch-norm layers are far from identity, as after training."""
    torch.manual_seed(0)
    network = build(family, 7, width=8, depth=1, dropout=0.3, head=head)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return network.eval()


@pytest.mark.parametrize("mirror", [True, False], ids=["mirror", "single-pass"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_runtime_matches_pytorch(family: str, head: str, mirror: bool, tmp_path: Path):
    network = _randomised(family, head)
    path = tmp_path / f"{family}.onnx"
    export_onnx(network, 48, path, mirror)
    faces = np.random.default_rng(1).normal(0, 1, (3, 1, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(network(torch.from_numpy(faces)), dim=1).numpy()
        if mirror:
            flipped = torch.from_numpy(np.ascontiguousarray(faces[..., ::-1]))
            expected = (expected + torch.softmax(network(flipped), dim=1).numpy()) / 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: faces})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
