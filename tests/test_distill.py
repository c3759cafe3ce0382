"""``distill.blend_targets``: the exact mix of a dataset's targets and a teacher's vote."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from memegen import LABELS
from memegen.training.datasets import FaceDataset
from memegen.training.distill import blend_targets

from tiny_datasets import faces_of_every_class

ANGRY, HAPPY = LABELS.index("angry"), LABELS.index("happy")


def _dataset(labels: list[int], soft: np.ndarray | None = None) -> FaceDataset:
    return FaceDataset("tiny", np.zeros((len(labels), 48, 48), np.uint8), np.array(labels), soft)


def _teacher(rows: int) -> np.ndarray:
    teacher = np.full((rows, len(LABELS)), 0.1, np.float32)
    teacher[:, HAPPY] = 0.4
    return teacher


def test_hard_labels_blend_with_the_teacher_as_one_hot_rows():
    targets = blend_targets(_dataset([ANGRY, HAPPY]), _teacher(2), share=0.25)
    assert targets[0, ANGRY] == pytest.approx(0.75 + 0.25 * 0.1)
    assert targets[0, HAPPY] == pytest.approx(0.25 * 0.4)
    assert targets[1, HAPPY] == pytest.approx(0.75 + 0.25 * 0.4)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)


def test_soft_labels_blend_instead_of_the_hard_ones():
    soft = np.zeros((1, len(LABELS)), np.float32)
    soft[0, [ANGRY, HAPPY]] = 0.5
    targets = blend_targets(_dataset([ANGRY], soft), _teacher(1), share=0.5)
    assert targets[0, ANGRY] == pytest.approx(0.5 * 0.5 + 0.5 * 0.1)
    assert targets[0, HAPPY] == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)


def test_share_one_gives_the_teacher_and_zero_the_labels():
    dataset = _dataset([ANGRY])
    np.testing.assert_allclose(blend_targets(dataset, _teacher(1), 1.0), _teacher(1))
    one_hot = np.eye(len(LABELS), dtype=np.float32)[[ANGRY]]
    np.testing.assert_array_equal(blend_targets(dataset, _teacher(1), 0.0), one_hot)


def test_a_share_outside_zero_to_one_or_a_mismatched_teacher_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend_targets(_dataset([ANGRY]), _teacher(1), 1.5)
    with pytest.raises(ValueError, match="do not fit"):
        blend_targets(_dataset([ANGRY, HAPPY]), _teacher(3), 0.5)


def test_a_teacher_whose_vote_is_not_finite_is_refused_naming_it(tmp_path: Path):
    """A student of it trained to NaN weights and exited 0."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from memegen.errors import UserError
    from memegen.training.distill import teacher_vote
    from memegen.training.export import export_onnx

    from tiny_networks import trained_vgg, write_float_ensemble

    manifest = write_float_ensemble(tmp_path / "teacher")
    broken = trained_vgg(0)
    with torch.no_grad():
        broken[-1][-1].bias.fill_(float("nan"))
    export_onnx(broken, 48, tmp_path / "teacher" / "net0.onnx")
    faces = FaceDataset("tiny", faces_of_every_class(7, 0), np.arange(7))
    with pytest.raises(UserError, match=re.escape(
        f"{manifest}: the teacher's vote is not finite on 7 of 7 training faces"
    )):
        teacher_vote(manifest, faces)
