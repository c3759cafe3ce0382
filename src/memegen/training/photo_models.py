"""Photo models: trained networks whose last layer is refitted on faces found in photos.

The crop vote is fitted on FER2013's crops, and on those it is as good as its
members get. Faces the detector finds in web photos differ in framing, light,
resolution and in how their annotators named expressions, and there the members
confuse classes in ways no per-class weight or bias undoes: on ExpW's photos they
call surprised and shouting faces angry and almost never say surprise. What a
network has learned to see still holds there; how it turns that into classes does
not. So each photo model keeps a trained network up to its last linear layer and
refits that layer alone, by logistic regression on the pooled features of labelled
faces found in photos none of its training saw. The manifest lists the photo models
apart from the crop vote's members, and ``ExpressionClassifier`` reads faces found
in photos with their equal-weighted vote.

The refit pulls the layer toward the network's own (L2, strength chosen by
cross-validation) rather than toward zero: a few hundred faces should adjust what
tens of thousands taught, not start over. Folds keep each photo whole, since faces
in one photo share its light, camera and often its mood. A face is read as the mean
softmax of the crop and its mirror image, as the exported graph does, and both are
fitted on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import torch
import torch.nn.functional as F

from memegen import LABELS
from memegen.expressions import ExpressionClassifier, ManifestError, normalise, read_manifest
from memegen.facecrop import crop_face
from memegen.training.architectures import last_layer, pooled_features
from memegen.training.datasets import (
    DatasetError,
    DatasetSpec,
    folds_by_group,
    require_every_class,
)
from memegen.training.export import (
    export_onnx,
    model_entry,
    save_manifest,
    staged_into,
    unique_names,
)
from memegen.training.metrics import mean_nll
from memegen.training.quantize import quantize_model
from memegen.training.report import match_photos
from memegen.training.train import TrainConfig, load_trained

#: Inverse L2 strengths tried, as scikit-learn's ``C``: the pull toward the network's own
#: layer is sum((W - W_own)²) · s² / (2 · C · faces), s the features' mean spread, added
#: to the mean log-loss over both views of every face.
STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1)
FOLDS = 4
METHOD = (
    "each network's last linear layer refitted by L-BFGS: mean cross-entropy over the "
    "found faces' crops and their mirror images, plus an L2 pull toward the network's own "
    "layer scaled by the features' mean standard deviation squared over (2 C faces); C is "
    f"the one of {list(STRENGTHS)} with the lowest out-of-fold log-loss over {FOLDS} folds "
    "by photo (each face read as the mean softmax of its two views), then refitted on every "
    "face; exported with the mirror pass in the graph, int8 calibrated on the found crops; "
    "the photo models vote with equal weights"
)


@dataclass
class FoundFaces:
    """The labelled faces the detector finds in labelled photos, cut as the app cuts them,
    with the crop vote's reading of each for comparison."""

    crops: np.ndarray  # faces × 48 × 48, grey uint8
    labels: np.ndarray
    photos: np.ndarray  # the photo each face was found in
    labelled: int  # labelled faces in those photos, found or not
    crop_vote: np.ndarray  # faces × labels


def find_faces(
    classifier: ExpressionClassifier, spec: DatasetSpec, iou_threshold: float, margin: float
) -> FoundFaces:
    """Detect and match the labelled faces of the spec's photos, as ``report`` does; photos
    with none found cannot be fitted on (:class:`DatasetError`)."""
    crops, labels, photos, votes, labelled = [], [], [], [], 0
    for photo in match_photos(spec, iou_threshold):
        labelled += len(photo.boxes.labelled)
        if photo.matched:
            crops += [crop_face(photo.pixels, box, 48, margin) for box in photo.matched]
            labels += photo.labels
            photos += [photo.name] * len(photo.matched)
            votes.append(classifier.vote(classifier.model_probabilities(photo.pixels,
                                                                         photo.matched)))
    if not crops:
        raise DatasetError(f"{spec.path}: the detector found none of the labelled faces")
    return FoundFaces(np.stack(crops), np.array(labels), np.array(photos), labelled,
                      np.concatenate(votes))


@torch.no_grad()
def both_views(network: torch.nn.Module, config: TrainConfig, crops: np.ndarray) -> torch.Tensor:
    """Pooled features (2 × faces × features, float64) of each crop and of its mirror."""
    network.eval()
    faces = torch.from_numpy(normalise(crops, config.mean, config.std))
    return torch.stack([
        pooled_features(network, faces), pooled_features(network, torch.flip(faces, dims=[3]))
    ]).double()


def read(views: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """Each face's probabilities: the mean softmax of its two views, as the graph reads it."""
    return F.softmax(views @ weight.T + bias, dim=2).mean(dim=0).numpy()


def fit_last_layer(
    views: torch.Tensor, labels: np.ndarray, strength: float, own: torch.nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's weight and bias refitted to ``labels`` from both ``views``."""
    start_weight = own.weight.detach().double()
    weight = start_weight.clone().requires_grad_(True)
    bias = own.bias.detach().double().clone().requires_grad_(True)
    targets = torch.as_tensor(labels, dtype=torch.long).repeat(len(views))
    features = views.reshape(-1, views.shape[-1])
    spread = float(features.std(dim=0).mean())
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        pull = ((weight - start_weight) ** 2).sum() * spread**2 / (2 * strength * len(labels))
        total = F.cross_entropy(features @ weight.T + bias, targets) + pull
        total.backward()
        return total

    optimiser.step(loss)
    return weight.detach(), bias.detach()


def out_of_fold(
    views: torch.Tensor, labels: np.ndarray, fold: np.ndarray, strength: float,
    own: torch.nn.Linear,
) -> np.ndarray:
    """Each face's probabilities from the layer refitted on the other folds' faces."""
    result = np.zeros((len(labels), len(LABELS)))
    for held in np.unique(fold):
        fitting = torch.as_tensor(fold != held)
        weight, bias = fit_last_layer(views[:, fitting], labels[fold != held], strength, own)
        result[fold == held] = read(views[:, torch.as_tensor(fold == held)], weight, bias)
    return result


def refit_last_layer(
    network: torch.nn.Module, views: torch.Tensor, labels: np.ndarray, photos: np.ndarray
) -> tuple[np.ndarray, dict]:
    """Refit ``network``'s last layer in place at the strength that cross-validates best
    by photo; its out-of-fold probabilities, and the evidence."""
    own = last_layer(network)
    fold = folds_by_group(photos, FOLDS)
    candidates, predictions = [], {}
    for strength in STRENGTHS:
        predictions[strength] = out_of_fold(views, labels, fold, strength, own)
        candidates.append(_scores(predictions[strength], labels) | {"C": strength})
    chosen = min(candidates, key=lambda candidate: candidate["nll"])["C"]
    weight, bias = fit_last_layer(views, labels, chosen, own)
    own_reading = read(views, own.weight.detach().double(), own.bias.detach().double())
    with torch.no_grad():
        own.weight.copy_(weight.float())
        own.bias.copy_(bias.float())
    evidence = {
        "own_last_layer": _scores(own_reading, labels),
        "out_of_fold": candidates,
        "chosen_C": chosen,
    }
    return predictions[chosen], evidence


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "nll": round(mean_nll(probabilities, labels), 6),
        "accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 6),
    }


def add_photo_models(
    manifest_path: Path, run_dirs: Sequence[Path], photos_text: str, iou_threshold: float
) -> Path:
    """Refit each run's last layer on the faces found in the labelled photos
    ``photos_text`` names, write the int8 photo models beside the manifest and list
    them in it with their evidence (replacing any photo models it had).

    Photos that are not ExpW-style, or too few of whose faces are found to be folded by
    photo, are the user's to replace (:class:`DatasetError`). The new files and manifest
    are written beside the folder and moved in at the end (:func:`staged_into`), the
    replaced files deleted only after: a step that fails leaves the folder as it was.
    """
    spec = DatasetSpec.parse(photos_text)
    if spec.kind != "expw":
        raise DatasetError(f"{photos_text!r}: photo models need ExpW-style labelled photos")
    manifest_path = Path(manifest_path)
    names = unique_names([Path(run_dir) for run_dir in run_dirs])
    manifest = read_manifest(manifest_path)
    classifier = ExpressionClassifier(manifest_path)
    _refuse_crop_member_files(manifest, run_dirs, names)
    margin = classifier.models[0].crop_margin
    found = find_faces(classifier, spec, iou_threshold, margin)
    if len(np.unique(found.photos)) < FOLDS:
        raise DatasetError(f"{photos_text!r}: faces found in fewer than {FOLDS} photos")
    # Only the last layer's weights are pulled toward the network's own; its biases are not.
    require_every_class(found.labels, f"the faces found in {photos_text!r}",
                        "a photo model's last-layer bias")
    entries, predictions = [], []
    with staged_into(manifest_path.parent, manifest_path.name) as staging:
        for run_dir, run_name in zip(run_dirs, names, strict=True):
            network, config = load_trained(Path(run_dir))
            views = both_views(network, config, found.crops)
            prediction, evidence = refit_last_layer(network, views, found.labels, found.photos)
            predictions.append(prediction)
            name = f"{run_name}-photo"
            file_name = _photo_file(run_name)
            with tempfile.TemporaryDirectory() as scratch:
                float_graph = Path(scratch) / "float.onnx"
                export_onnx(network, 48, float_graph, mirror=True)
                quantize_model(float_graph, staging / file_name,
                               normalise(found.crops, config.mean, config.std))
            entry = model_entry(name, file_name, config, margin)
            entry["refitted_from"] = str(run_dir)
            entry["photo_fit"] = evidence
            entries.append(entry)
        replaced = manifest.get("photo_models", [])
        manifest["photo_models"] = entries
        manifest["photo_models_evidence"] = {
            "method": METHOD,
            "photos": {
                "spec": photos_text,
                "photos": len(np.unique(found.photos)),
                "labelled_faces": found.labelled,
                "faces_found": len(found.labels),
                "iou_threshold": iou_threshold,
                "class_counts": {
                    label: int(count) for label, count in
                    zip(LABELS, np.bincount(found.labels, minlength=len(LABELS)), strict=True)
                },
            },
            "photo_vote_out_of_fold": _scores(np.mean(predictions, axis=0), found.labels),
            "crop_vote": _scores(found.crop_vote, found.labels),
        }
        save_manifest(staging / manifest_path.name, manifest)
    _remove_replaced(replaced, manifest, manifest_path.parent)
    return manifest_path


def _photo_file(run_name: str) -> str:
    """The file of the photo model refitted from the run named ``run_name``."""
    return f"{run_name}-photo-int8.onnx"


def _refuse_crop_member_files(
    manifest: dict, run_dirs: Sequence[Path], names: Sequence[str]
) -> None:
    """Raise :class:`ManifestError` if a run's photo model would be written over a crop
    member's file (a member named ``x-photo``, quantized, has the file of run ``x``'s
    photo model): the member would read faces with the photo model's weights."""
    members = {PurePath(entry["file"]): entry["name"] for entry in manifest["models"]}
    for run_dir, run_name in zip(run_dirs, names, strict=True):
        member = members.get(PurePath(_photo_file(run_name)))
        if member is not None:
            raise ManifestError(
                f"{run_dir}: its photo model's file {_photo_file(run_name)} is the crop "
                f"member {member}'s; give the run a folder of another name"
            )


def _remove_replaced(replaced: list[dict], manifest: dict, folder: Path) -> None:
    """Delete the files of the ``replaced`` photo models that ``manifest`` no longer lists,
    so a shipped model folder holds only what its manifest reads; ``add_photo_models``
    has refused manifests that name files outside ``folder``, so none outside is touched."""
    kept = {entry["file"] for entry in [*manifest["models"], *manifest["photo_models"]]}
    for entry in replaced:
        if entry["file"] not in kept:
            (folder / entry["file"]).unlink(missing_ok=True)
