"""Measure the exported ensemble and write a Markdown report with confusion-matrix PNGs.

Everything goes through ``memegen.expressions.ExpressionClassifier`` and the
ONNX files the manifest lists, so the numbers describe what ships, not the
PyTorch checkpoints. Face-crop datasets are classified as pre-cropped faces;
whole photos with labelled boxes (ExpW) are measured end to end: the bundled
detector finds faces, each labelled box is matched to the detection that
overlaps it most (IoU), and the matched detection's box is classified. How
many faces were found is also counted with the detector's boxes redrawn the
way the dataset draws a face, so that a found face is not counted as missed
only because its annotator drew the forehead in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memegen import LABELS
from memegen.errors import UserError
from memegen.expressions import ExpressionClassifier
from memegen.facecrop import Box
from memegen.training.datasets import (
    DatasetSpec,
    FaceDataset,
    expw_boxes,
    require_box_on_photo,
)
from memegen.training.metrics import summarise


@dataclass
class Evaluation:
    """Every model's and the ensemble's numbers on one dataset.

    On faces found in photos, when the manifest has photo models, ``models`` lists them
    after the crop vote's members, ``ensemble`` is their vote, and ``crop_vote`` the vote
    that crops get, for comparison. On crops, when the manifest shifts the vote by a class
    bias or a temperature, ``before_bias`` is the vote without them, so a report shows what
    the bias trades: some accuracy for recall on the rare classes.
    """

    dataset: str
    models: dict[str, dict]
    ensemble: dict
    crop_vote: dict | None = None
    before_bias: dict | None = None


def crop_probabilities(
    classifier: ExpressionClassifier, dataset: FaceDataset, gated: bool = False
) -> np.ndarray:
    """Each model's probabilities (models × faces × labels) for every crop of ``dataset``,
    each classified as one pre-cropped face, like ``analyze --whole-image``. ``gated``
    skips a gated model where the gate would (NaN rows, as ``model_probabilities``)."""
    per_image = [
        classifier.model_probabilities(image, [(0, 0, image.shape[1], image.shape[0])],
                                       precropped=True, gated=gated)
        for image in dataset.images
    ]
    return np.concatenate(per_image, axis=1)


def uncorrected_vote(classifier: ExpressionClassifier, dataset: FaceDataset) -> np.ndarray:
    """The weighted vote (faces × labels) on every crop of ``dataset``, before the manifest's
    class bias and temperature: what ``train bias`` fits them to, and what a student learns."""
    return classifier.uncorrected_vote(crop_probabilities(classifier, dataset))


def evaluate_crops(classifier: ExpressionClassifier, dataset: FaceDataset) -> Evaluation:
    probabilities = crop_probabilities(classifier, dataset)
    return _evaluation(dataset.name, classifier, probabilities, dataset.labels)


def _evaluation(
    name: str,
    classifier: ExpressionClassifier,
    probabilities: np.ndarray,
    labels: np.ndarray,
    photo_probabilities: np.ndarray | None = None,
) -> Evaluation:
    """Numbers of every model and of the vote; with ``photo_probabilities`` (the photo
    models' readings of faces found in photos) the photo vote is the ensemble."""
    models = {
        model.name: summarise(model_probabilities, labels)
        for model, model_probabilities in zip(classifier.models, probabilities, strict=True)
    }
    ensemble = summarise(_ensemble_vote(classifier, probabilities, photo_probabilities), labels)
    if photo_probabilities is None:
        before_bias = None
        if classifier.corrects_vote:
            before_bias = summarise(classifier.uncorrected_vote(probabilities), labels)
        return Evaluation(name, models, ensemble, before_bias=before_bias)
    for model, model_probabilities in zip(
        classifier.photo_models, photo_probabilities, strict=True
    ):
        models[model.name] = summarise(model_probabilities, labels)
    crop_vote = summarise(classifier.vote(probabilities), labels)
    return Evaluation(name, models, ensemble, crop_vote)


def _ensemble_vote(
    classifier: ExpressionClassifier, probabilities: np.ndarray,
    photo_probabilities: np.ndarray | None,
) -> np.ndarray:
    """The vote a report calls the ensemble's: the photo models' when they read the faces,
    else the crop vote's."""
    if photo_probabilities is None:
        return classifier.vote(probabilities)
    return classifier.photo_vote(photo_probabilities)


def box_iou(box: Sequence[float], others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with each row of ``others``."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


@dataclass(frozen=True)
class BoxConvention:
    """How a dataset draws a face's box, relative to the detector's box of the same face.

    Annotators and detectors disagree on where a face ends: ExpW's boxes are
    about a sixth wider than BlazeFace's and reach higher up the forehead, so a
    well-found face can overlap its label by less than the matching threshold.
    ``scale`` multiplies the detector's side and ``shift`` moves its centre down
    by that fraction of the side (negative: up).
    """

    scale: float = 1.0
    shift: float = 0.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """The square boxes (N×4) this convention draws around the detector's ``boxes``."""
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
        centre_y = (boxes[:, 1] + boxes[:, 3]) / 2 + self.shift * side
        half = side * self.scale / 2
        return np.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], 1)


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo's labelled boxes (N×4) and the detector's boxes (M×4)."""

    labelled: np.ndarray
    detected: np.ndarray


def one_to_one_matches(
    labelled: np.ndarray, detected: np.ndarray
) -> list[tuple[int, float] | None]:
    """Each labelled box's detection (a row of ``detected``) and their IoU, or None.

    The pairs that overlap most are matched first, and a detection is matched once: one
    box spanning two labelled faces would otherwise count both as found, and its crop be
    read twice, under each face's label.
    """
    matches: list[tuple[int, float] | None] = [None] * len(labelled)
    if not len(labelled) or not len(detected):
        return matches
    overlaps = np.stack([box_iou(box, detected) for box in labelled])
    taken: set[int] = set()
    for flat in np.argsort(-overlaps, axis=None, kind="stable"):
        row, column = divmod(int(flat), overlaps.shape[1])
        if overlaps[row, column] <= 0:
            break
        if matches[row] is None and column not in taken:
            matches[row] = (column, float(overlaps[row, column]))
            taken.add(column)
    return matches


def best_overlaps(photo: LabelledPhoto, convention: BoxConvention = BoxConvention()) -> np.ndarray:
    """Each labelled box's IoU with its detection, matched one to one (0 with none)."""
    matches = one_to_one_matches(photo.labelled, convention.apply(photo.detected))
    return np.array([match[1] if match else 0.0 for match in matches])


def fit_box_convention(photos: Sequence[LabelledPhoto], iou_threshold: float) -> BoxConvention:
    """The median convention of the faces found as drawn (best IoU ≥ ``iou_threshold``)."""
    scales, shifts = [], []
    for photo in photos:
        for box, match in zip(
            photo.labelled, one_to_one_matches(photo.labelled, photo.detected), strict=True
        ):
            if match is None or match[1] < iou_threshold:
                continue
            x1, y1, x2, y2 = photo.detected[match[0]]
            side = max(x2 - x1, y2 - y1)
            scales.append(max(box[2] - box[0], box[3] - box[1]) / side)
            shifts.append(((box[1] + box[3]) - (y1 + y2)) / 2 / side)
    if not scales:
        return BoxConvention()
    return BoxConvention(float(np.median(scales)), float(np.median(shifts)))


def found_in_fitted_convention(
    photos: Sequence[LabelledPhoto], iou_threshold: float
) -> tuple[int, list[BoxConvention]]:
    """Labelled faces found once the detector's boxes are drawn the dataset's way.

    The photos are split in two by position (even, odd); each half is judged
    with the convention fitted on the other, so no face helps to place its own box.
    """
    halves = [photos[0::2], photos[1::2]]
    conventions = [fit_box_convention(halves[1], iou_threshold),
                   fit_box_convention(halves[0], iou_threshold)]
    found = sum(
        int((best_overlaps(photo, convention) >= iou_threshold).sum())
        for half, convention in zip(halves, conventions, strict=True)
        for photo in half
    )
    return found, conventions


FACE_SIDE_EDGES = (48, 80, 130, 250)


def accuracy_by_face_side(
    sides: np.ndarray, predicted: np.ndarray, labels: np.ndarray,
    edges: Sequence[int] = FACE_SIDE_EDGES,
) -> list[dict]:
    """Faces and accuracy per band of detected face side (pixels in the photo).

    Small faces reach the classifier scaled up from fewer pixels than its
    input has, so a photo set's accuracy is partly a matter of how big its
    faces are; the bands show how much. The first edge is the input side.
    """
    bands = []
    for low, high in pairwise([0, *edges, math.inf]):
        inside = (sides >= low) & (sides < high)
        name = f"≥ {low} px" if high == math.inf else f"{low}–{high - 1} px"
        faces = int(inside.sum())
        accuracy = float((predicted[inside] == labels[inside]).mean()) if faces else None
        bands.append({"side": name, "faces": faces, "accuracy": accuracy})
    return bands


@dataclass
class PhotoEvaluation:
    """End to end on labelled photos: how many labelled faces were found, and how well read.

    ``found`` matches the detector's boxes as drawn; ``found_in_their_convention``
    after mapping them to the dataset's way of drawing a face (``conventions``,
    one per half of the photos, see ``found_in_fitted_convention``). Only
    ``found`` faces are classified, each with the detector's own box;
    ``by_face_side`` splits the vote's accuracy on them by the box's side.
    ``photos`` (resolved paths, as two folders may share file names) tells the report
    which of them fitted the photo models.
    """

    dataset: str
    labelled: int
    found: int
    iou_threshold: float
    evaluation: Evaluation | None
    found_in_their_convention: int
    conventions: list[BoxConvention]
    by_face_side: list[dict]
    photos: set[Path]


@dataclass
class MatchedPhoto:
    """One ExpW-style photo after detection: its name in ``faces.csv``, its pixels, its
    labelled and detected boxes, and the detections matched to a labelled face, with
    those faces' labels."""

    name: str
    pixels: np.ndarray
    boxes: LabelledPhoto
    matched: list[Box]
    labels: list[int]


def match_photos(
    spec: DatasetSpec, iou_threshold: float, limit: int | None = None
) -> Iterator[MatchedPhoto]:
    """Detect faces in each photo of an ExpW-style spec (``faces.csv`` in the order it
    first names them, narrowed by ``photos=`` and ``skip=``) and match every labelled
    box to a detection, one to one (:func:`one_to_one_matches`).

    A labelled face counts as found when that overlap is at least
    ``iou_threshold``. Photos are decoded at full size and not EXIF-rotated:
    ExpW's boxes are in the stored pixels.
    """
    from memegen.faces import default_detector

    detector = default_detector()
    by_image: dict[str, list] = {}
    for item in expw_boxes(spec):
        by_image.setdefault(item.image, []).append(item)
    for name in list(by_image)[:limit]:
        with Image.open(spec.path / name) as photo:
            rgb = np.asarray(photo.convert("RGB"))
        for item in by_image[name]:
            require_box_on_photo(spec.path, item, rgb.shape[1], rgb.shape[0])
        faces = detector.detect(rgb)
        found_boxes = np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4)
        labelled = np.array([item.box for item in by_image[name]], dtype=np.float64)
        matched, labels = [], []
        for item, match in zip(
            by_image[name], one_to_one_matches(labelled, found_boxes), strict=True
        ):
            if match is not None and match[1] >= iou_threshold:
                matched.append(faces[match[0]].box)
                labels.append(item.label)
        yield MatchedPhoto(name, rgb, LabelledPhoto(labelled, found_boxes), matched, labels)


def evaluate_photos(
    classifier: ExpressionClassifier,
    spec: DatasetSpec,
    iou_threshold: float = 0.4,
    limit: int | None = None,
) -> PhotoEvaluation:
    """Detect faces in ExpW-style photos (``faces.csv``, narrowed by the spec's ``photos=``
    and ``skip=`` lists), match labelled boxes, classify.

    The threshold is lenient because ExpW's boxes and the detector's are drawn
    to different conventions around the same face, and the count of faces
    found is given a second time with that difference fitted away
    (``found_in_fitted_convention``).
    """
    chunks, photo_chunks, labels, sides, labelled_photos, paths = [], [], [], [], [], set()
    for photo in match_photos(spec, iou_threshold, limit):
        labelled_photos.append(photo.boxes)
        paths.add((spec.path / photo.name).resolve())
        if photo.matched:
            chunks.append(classifier.model_probabilities(photo.pixels, photo.matched))
            if classifier.photo_models:
                photo_chunks.append(
                    classifier.photo_model_probabilities(photo.pixels, photo.matched)
                )
            labels += photo.labels
            sides += [max(x2 - x1, y2 - y1) for x1, y1, x2, y2 in photo.matched]
    labelled = sum(len(photo.labelled) for photo in labelled_photos)
    lists = "".join(f", {key} {Path(value).name}" for key, value in spec.options.items()
                    if key in ("photos", "skip"))
    name = f"{spec.path.name}{lists} (end to end)"
    evaluation, by_face_side = None, []
    if chunks:
        probabilities = np.concatenate(chunks, axis=1)
        photo_probabilities = np.concatenate(photo_chunks, axis=1) if photo_chunks else None
        evaluation = _evaluation(
            name, classifier, probabilities, np.array(labels), photo_probabilities
        )
        predicted = _ensemble_vote(classifier, probabilities, photo_probabilities).argmax(axis=1)
        by_face_side = accuracy_by_face_side(np.array(sides), predicted, np.array(labels))
    found_mapped, conventions = found_in_fitted_convention(labelled_photos, iou_threshold)
    return PhotoEvaluation(
        name, labelled, len(labels), iou_threshold, evaluation, found_mapped, conventions,
        by_face_side, paths,
    )


def refuse_repeated_specs(flag: str, specs: Sequence[str]) -> None:
    """Raise :class:`UserError` if ``flag`` names one dataset twice (see :func:`named_apart`)."""
    repeated = sorted({spec for spec in specs if specs.count(spec) > 1})
    if repeated:
        raise UserError(f"{flag} names {', '.join(repeated)} twice; give each dataset once")


def named_apart(
    measured: Sequence[tuple[str, Evaluation | PhotoEvaluation]],
) -> list[Evaluation | PhotoEvaluation]:
    """The evaluations, each ``(spec, evaluation)``, with the spec added to the name of
    those whose datasets share one (class folders ``g/fer2013`` and ``g/fer2013.csv`` both
    give ``fer2013/val``): a name keys ``report.json`` and names a confusion PNG, so two
    alike would keep one result of the two. Specs given twice are refused before this
    (:func:`refuse_repeated_specs`): nothing would tell their results apart."""
    names = [evaluation.dataset for _, evaluation in measured]
    renamed = []
    for spec, evaluation in measured:
        if names.count(evaluation.dataset) > 1:
            name = f"{evaluation.dataset} ({spec})"
            if isinstance(evaluation, PhotoEvaluation) and evaluation.evaluation is not None:
                evaluation = replace(
                    evaluation, evaluation=replace(evaluation.evaluation, dataset=name)
                )
            evaluation = replace(evaluation, dataset=name)
        renamed.append(evaluation)
    return renamed


def photos_photo_models_saw(manifest: dict) -> set[Path] | None:
    """The photos the manifest's photo models were fitted on, or None when their spec
    cannot be read here (the photos were elsewhere)."""
    try:
        spec = DatasetSpec.parse(manifest["photo_models_evidence"]["photos"]["spec"])
        return {(spec.path / item.image).resolve() for item in expw_boxes(spec)}
    except (OSError, ValueError):
        return None


def draw_confusion(matrix: np.ndarray, title: str, path: Path) -> None:
    """A confusion-matrix PNG with Pillow alone (matplotlib is not a dependency).

    Cells are shaded by the row's share (recall per true class) and show the count.
    """
    cell, left, top = 64, 84, 60
    size = len(LABELS)
    image = Image.new("RGB", (left + cell * size + 10, top + cell * size + 30), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((10, 8), title, fill="black", font=font)
    draw.text((left, top - 34), "predicted ->", fill="black", font=font)
    draw.text((10, top - 34), "true (rows)", fill="black", font=font)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    for j, label in enumerate(LABELS):
        draw.text((left + j * cell + 4, top - 16), label, fill="black", font=font)
    for i, label in enumerate(LABELS):
        y = top + i * cell
        draw.text((10, y + cell // 2 - 6), label, fill="black", font=font)
        for j in range(size):
            x = left + j * cell
            shade = int(255 - 200 * shares[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(shade, shade, 255),
                           outline=(200, 200, 200))
            ink = "white" if shares[i, j] > 0.55 else "black"
            draw.text((x + 6, y + cell // 2 - 12), str(matrix[i, j]), fill=ink, font=font)
            draw.text((x + 6, y + cell // 2 + 2), f"{shares[i, j]:.0%}", fill=ink, font=font)
    image.save(path)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def _picture_name(dataset: str, taken: set[str]) -> str:
    """The confusion PNG's file name for ``dataset``, unlike those in ``taken``, which it
    joins: names that differ can share a slug (``fer2013/val`` and ``fer2013-val``)."""
    stem = f"confusion-{_slug(dataset)}"
    name, number = f"{stem}.png", 2
    while name in taken:
        name, number = f"{stem}-{number}.png", number + 1
    taken.add(name)
    return name


def _evaluation_markdown(evaluation: Evaluation, picture: str) -> list[str]:
    names = list(evaluation.models)
    lines = [
        "| model | examples | accuracy | macro-F1 | NLL | calibration error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [*evaluation.models.items(), ("**ensemble**", evaluation.ensemble)]
    if evaluation.crop_vote is not None:
        rows.append(("*the vote crops get*", evaluation.crop_vote))
    if evaluation.before_bias is not None:
        rows.append(("*the vote before class bias*", evaluation.before_bias))
    for name, summary in rows:
        lines.append(
            f"| {name} | {summary['examples']} | {summary['accuracy']:.3f} "
            f"| {summary['macro_f1']:.3f} | {summary['nll']:.3f} "
            f"| {summary['calibration_error']:.3f} |"
        )
    lines += [
        "",
        "Precision / recall per class:",
        "",
        "| class | support | ensemble | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for label in LABELS:
        cells = [
            f"{summary['per_class'][label]['precision']:.2f} / "
            f"{summary['per_class'][label]['recall']:.2f}"
            for summary in [evaluation.ensemble, *evaluation.models.values()]
        ]
        support = evaluation.ensemble["per_class"][label]["support"]
        lines.append(f"| {label} | {support} | " + " | ".join(cells) + " |")
    lines += ["", f"![ensemble confusion matrix, {evaluation.dataset}]({picture})", ""]
    return lines


def write_report(
    manifest_path: Path,
    evaluations: Sequence[Evaluation],
    photos: Sequence[PhotoEvaluation],
    out_dir: Path,
) -> Path:
    """Write ``report.md``, one confusion PNG per evaluation and ``report.json`` (all numbers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(Path(manifest_path).read_text())
    lines = [
        "# Expression models report",
        "",
        f"Manifest: `{manifest_path}`, {len(manifest['models'])} model(s), "
        f"vote: {manifest['voting']}.",
        "",
        "Vote weights per class:",
        "",
        "| model | " + " | ".join(LABELS) + " |",
        "|---|" + "---:|" * len(LABELS),
    ]
    for entry in manifest["models"]:
        weights = " | ".join(f"{entry['class_weights'][label]:.2f}" for label in LABELS)
        lines.append(f"| {entry['name']} | {weights} |")
    if "class_bias" in manifest:
        bias = " | ".join(f"{manifest['class_bias'][label]:+.2f}" for label in LABELS)
        lines.append(f"| *class bias (log-probability)* | {bias} |")
    lines.append("")
    if "vote_temperature" in manifest:
        lines += [f"Vote temperature: {manifest['vote_temperature']} (probabilities raised to "
                  "1 / T and renormalised after the class bias).", ""]
    fitting_photos, has_photo_models = None, bool(manifest.get("photo_models"))
    if has_photo_models:
        fitting_photos = photos_photo_models_saw(manifest)
        seen = manifest["photo_models_evidence"]["photos"]
        names = ", ".join(f"`{entry['name']}`" for entry in manifest["photo_models"])
        lines += [f"Faces found in photos are read by the photo models ({names}; each a "
                  "trained network whose last layer was refitted on "
                  f"{seen['faces_found']} faces found in {seen['photos']} photos of "
                  f"`{seen['spec']}`, `memegen train photo-models`), voting with equal "
                  "weights; crops given as faces keep the vote above.", ""]
    record: dict = {"manifest": str(manifest_path), "datasets": {}, "photos": {}}
    pictures: set[str] = set()
    for evaluation in evaluations:
        picture = _picture_name(evaluation.dataset, pictures)
        draw_confusion(np.array(evaluation.ensemble["confusion"]),
                       f"ensemble on {evaluation.dataset}", out_dir / picture)
        lines += [f"## {evaluation.dataset}", "", *_evaluation_markdown(evaluation, picture)]
        numbers = {"models": evaluation.models, "ensemble": evaluation.ensemble}
        if evaluation.before_bias is not None:
            numbers["ensemble_before_bias"] = evaluation.before_bias
        record["datasets"][evaluation.dataset] = numbers
    for photo in photos:
        rate = photo.found / photo.labelled if photo.labelled else 0.0
        mapped_rate = photo.found_in_their_convention / photo.labelled if photo.labelled else 0.0
        fitted = "; ".join(
            f"side × {convention.scale:.3f}, centre moved by {convention.shift:+.3f} × side"
            for convention in photo.conventions
        )
        lines += [
            f"## {photo.dataset}",
            "",
            f"Labelled faces: {photo.labelled}; found by the detector (IoU ≥ "
            f"{photo.iou_threshold}): {photo.found} ({rate:.1%}) with its boxes as drawn, "
            f"{photo.found_in_their_convention} ({mapped_rate:.1%}) once its boxes are "
            f"drawn the dataset's way ({fitted}; each half of the photos judged with "
            "the mapping fitted on the other half's faces found as drawn). "
            "The faces found as drawn are the ones classified below.",
            "",
        ]
        if fitting_photos is None and has_photo_models:
            lines += ["*Whether these photos fitted the photo models cannot be told here "
                      "(their photos are not where their spec says).*", ""]
        elif fitting_photos and photo.photos & fitting_photos:
            lines += [f"**{len(photo.photos & fitting_photos)} of these "
                      f"{len(photo.photos)} photos fitted the photo models**: the "
                      "ensemble's numbers below are partly read on their own fitting data "
                      "and are not a measurement of them.", ""]
        entry: dict = {
            "labelled": photo.labelled,
            "found": photo.found,
            "found_rate": rate,
            "found_in_their_convention": photo.found_in_their_convention,
            "found_in_their_convention_rate": mapped_rate,
            "conventions": [asdict(convention) for convention in photo.conventions],
            "photos": len(photo.photos),
            "photos_that_fitted_the_photo_models": (
                None if fitting_photos is None else len(photo.photos & fitting_photos)
            ),
        }
        if photo.evaluation is not None:
            picture = _picture_name(photo.dataset, pictures)
            draw_confusion(np.array(photo.evaluation.ensemble["confusion"]),
                           f"ensemble on {photo.dataset}", out_dir / picture)
            lines += ["Accuracy on the faces found:", "",
                      *_evaluation_markdown(photo.evaluation, picture),
                      "Ensemble accuracy by the side of the detected face:", "",
                      "| side | faces | accuracy |", "|---|---:|---:|"]
            lines += [
                f"| {band['side']} | {band['faces']} | "
                + (f"{band['accuracy']:.3f} |" if band["faces"] else "– |")
                for band in photo.by_face_side
            ]
            lines.append("")
            entry["models"] = photo.evaluation.models
            entry["ensemble"] = photo.evaluation.ensemble
            if photo.evaluation.crop_vote is not None:
                entry["crop_vote"] = photo.evaluation.crop_vote
            entry["by_face_side"] = photo.by_face_side
        record["photos"][photo.dataset] = entry
    (out_dir / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
