"""Photo models: the last layer every family ends in, folds by photo, and the refit."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402
from memegen.training import photo_models  # noqa: E402
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
from memegen.training.quantize import quantize_model  # noqa: E402

from tiny_datasets import faces_of_every_class  # noqa: E402
from tiny_networks import TINY_VGG, trained_vgg, write_float_ensemble  # noqa: E402

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


def _run_folder(path: Path, seed: int) -> Path:
    """A run folder as ``train fit`` leaves it: ``best.pt`` of a tiny trained VGG."""
    path.mkdir(parents=True)
    torch.save({"model": trained_vgg(seed).state_dict(), "config": asdict(TINY_VGG)},
               path / "best.pt")
    return path


def _found_faces(classifier, spec, iou_threshold, margin) -> photo_models.FoundFaces:
    """Faces of every class in four photos, as ``find_faces`` would find them."""
    return photo_models.FoundFaces(
        crops=faces_of_every_class(28, seed=4), labels=np.arange(28) % len(LABELS),
        photos=np.array([f"photo-{number % 4}" for number in range(28)]), labelled=28,
        crop_vote=np.full((28, len(LABELS)), 1 / len(LABELS)),
    )


def _photo_entry(source: Path, file_name: str) -> dict:
    """A photo model's manifest entry: the first crop member's, under another file."""
    return json.loads(source.read_text())["models"][0] | {"name": "old-photo", "file": file_name}


def _with_photo_model(source: Path, file_name: str) -> None:
    manifest = json.loads(source.read_text())
    manifest["photo_models"] = [_photo_entry(source, file_name)]
    source.write_text(json.dumps(manifest))


def test_photo_models_that_fail_part_way_leave_the_model_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    source = write_float_ensemble(tmp_path / "models")
    shutil.copyfile(source.parent / "net1.onnx", source.parent / "a-photo-int8.onnx")
    _with_photo_model(source, "a-photo-int8.onnx")
    runs = [_run_folder(tmp_path / "runs" / "a", 0), _run_folder(tmp_path / "runs" / "b", 1)]
    before = {path.name: path.read_bytes() for path in source.parent.iterdir()}
    monkeypatch.setattr(photo_models, "find_faces", _found_faces)
    quantized = []

    def disk_full_on_the_second(source_graph, target, faces):
        if quantized:
            raise OSError(28, "No space left on device")
        quantized.append(target)
        quantize_model(source_graph, target, faces)

    monkeypatch.setattr(photo_models, "quantize_model", disk_full_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        main(["train", "photo-models", str(source), *map(str, runs),
              "--photos", f"expw:{tmp_path}"])
    assert {path.name: path.read_bytes() for path in source.parent.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["models", "runs"]


def test_photo_models_never_delete_a_replaced_file_outside_the_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    source = write_float_ensemble(tmp_path / "models")
    shutil.copyfile(source.parent / "net1.onnx", tmp_path / "elsewhere.onnx")
    _with_photo_model(source, "../elsewhere.onnx")
    run = _run_folder(tmp_path / "runs" / "a", 0)
    monkeypatch.setattr(photo_models, "find_faces", _found_faces)
    assert main(["train", "photo-models", str(source), str(run),
                 "--photos", f"expw:{tmp_path}"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"memegen: {source}: photo_models[0]: the model file '../elsewhere.onnx' is not "
        "inside the manifest's folder"
    )
    assert (tmp_path / "elsewhere.onnx").is_file()


def test_a_photo_model_is_never_written_over_a_crop_members_file(tmp_path: Path, capsys):
    """A member named x-photo, quantized, has the file run x's photo model would get."""
    source = write_float_ensemble(tmp_path / "models")
    manifest = json.loads(source.read_text())
    (source.parent / "net0.onnx").rename(source.parent / "x-photo-int8.onnx")
    manifest["models"][0] |= {"name": "x-photo", "file": "x-photo-int8.onnx"}
    source.write_text(json.dumps(manifest))
    before = (source.parent / "x-photo-int8.onnx").read_bytes()
    run = _run_folder(tmp_path / "runs" / "x", 0)
    assert main(["train", "photo-models", str(source), str(run),
                 "--photos", f"expw:{tmp_path}"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"memegen: {run}: its photo model's file x-photo-int8.onnx is the crop member "
        "x-photo's; give the run a folder of another name"
    )
    assert (source.parent / "x-photo-int8.onnx").read_bytes() == before
