"""Photo models: the last layer every family ends in, folds by photo, and the refit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memegen import LABELS  # noqa: E402
from memegen.training.architectures import (  # noqa: E402
    FAMILIES,
    HEADS,
    build,
    last_layer,
    pooled_features,
)
from memegen.training.datasets import folds_by_group  # noqa: E402
from memegen.training.photo_models import (  # noqa: E402
    STRENGTHS,
    fit_last_layer,
    read,
    refit_last_layer,
)

ANGRY, SURPRISE = LABELS.index("angry"), LABELS.index("surprise")


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_last_layer_reads_the_pooled_features(family: str, head: str):
    torch.manual_seed(0)
    network = build(family, len(LABELS), width=16, depth=1, dropout=0.3, head=head).eval()
    faces = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(
            last_layer(network)(pooled_features(network, faces)), network(faces)
        )


def _confused_views(faces: int, seed: int) -> tuple[torch.Tensor, np.ndarray, torch.nn.Linear]:
    """Features (2 views × faces × 7) that tell every class apart, and a last layer that
    reads surprised faces' features as angry, as the members read shouting web faces."""
    rng = np.random.default_rng(seed)
    labels = np.arange(faces) % len(LABELS)
    views = torch.from_numpy(
        3.0 * np.eye(len(LABELS))[labels][None] + rng.normal(size=(2, faces, len(LABELS)))
    )
    own = torch.nn.Linear(len(LABELS), len(LABELS))
    with torch.no_grad():
        own.weight.copy_(torch.eye(len(LABELS)))
        own.weight[SURPRISE, SURPRISE] = 0.0
        own.weight[ANGRY, SURPRISE] = 1.5
        own.bias.zero_()
    return views, labels, own


def test_refitting_undoes_a_confusion_the_own_layer_makes():
    views, labels, own = _confused_views(700, seed=0)
    fresh, fresh_labels, _ = _confused_views(350, seed=1)
    before = read(fresh, own.weight.detach().double(), own.bias.detach().double())
    assert (before.argmax(axis=1)[fresh_labels == SURPRISE] == ANGRY).mean() > 0.8
    weight, bias = fit_last_layer(views, labels, strength=1.0, own=own)
    right = read(fresh, weight, bias).argmax(axis=1) == fresh_labels
    assert right.mean() > 0.9
    assert right[fresh_labels == SURPRISE].mean() > 0.85


def test_a_stronger_pull_keeps_the_layer_nearer_its_own():
    views, labels, own = _confused_views(210, seed=2)
    distances = [
        float((fit_last_layer(views, labels, strength, own)[0] - own.weight.double()).norm())
        for strength in (0.001, 10.0)
    ]
    assert distances[0] < distances[1] / 3


def test_folds_keep_every_photo_whole_and_are_reproducible():
    photos = np.array([f"photo{number % 9}.jpg" for number in range(40)])
    fold = folds_by_group(photos, 4)
    for photo in np.unique(photos):
        assert len(set(fold[photos == photo])) == 1
    assert set(fold) == {0, 1, 2, 3}
    np.testing.assert_array_equal(fold, folds_by_group(photos, 4))


def test_the_refit_keeps_the_strength_with_the_lowest_out_of_fold_loss_in_the_network():
    views, labels, own = _confused_views(280, seed=3)
    network = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Sequential(copy.deepcopy(own)))
    photos = np.array([f"photo{number // 2}.jpg" for number in range(280)])
    _, evidence = refit_last_layer(network, views, labels, photos)
    assert [candidate["C"] for candidate in evidence["out_of_fold"]] == list(STRENGTHS)
    best = min(evidence["out_of_fold"], key=lambda candidate: candidate["nll"])
    assert evidence["chosen_C"] == best["C"]
    assert evidence["own_last_layer"]["accuracy"] < 6.5 / 7
    weight, bias = fit_last_layer(views, labels, best["C"], own)
    torch.testing.assert_close(last_layer(network).weight, weight.float())
    torch.testing.assert_close(last_layer(network).bias, bias.float())
