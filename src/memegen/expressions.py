"""Read each face's expression with the exported ensemble (ONNX Runtime only).

The manifest beside the ONNX files says everything inference must know: the
label order, each model's input size, normalisation and crop margin, the
per-class weight each model gets in the vote, below which top probability a
model reads a face a second time mirrored (``memegen train mirror``), below
which top probability of the models before it a gated model is read at all
(``memegen train gate``), and an optional per-class bias that shifts the vote's
class priors and a temperature that scales its confidence (both from
``memegen train bias``). Faces the detector found in a photo are read instead by
the manifest's photo models when it has them (``memegen train photo-models``).
Sessions are created once per process and shared by every thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state

from memegen import LABELS
from memegen.errors import UserError
from memegen.facecrop import Box, crop_face


@dataclass(frozen=True)
class ExpressionModel:
    name: str
    session: ort.InferenceSession
    input_size: int
    mean: float
    std: float
    crop_margin: float
    class_weights: np.ndarray
    input_name: str
    mirror_below: float
    temperature: float = 1.0
    consult_below: float = math.inf

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities (faces × labels) for grey uint8 crops of ``input_size``.

        A face the graph is unsure of (top probability below ``mirror_below``) is
        read again mirrored and the two readings are averaged: the second look
        helps where the first was torn, and sure faces skip its cost. The readings
        are then scaled by the model's own ``temperature``: the vote is a weighted
        mean of probabilities, so its weights cannot make one member surer, and a
        member that is less sure than it is right would otherwise blur the vote.
        """
        probabilities = self.read(crops)
        unsure = unsure_faces(probabilities, self.mirror_below)
        if unsure.any():
            mirrored = self.read(crops[unsure][:, :, ::-1])
            probabilities[unsure] = (probabilities[unsure] + mirrored) / 2
        return apply_temperature(probabilities, self.temperature)

    def read(self, crops: np.ndarray) -> np.ndarray:
        """One plain pass of the graph (no mirror, no temperature): what ``memegen train
        gate`` times and replays to learn which faces a model reads twice."""
        faces = normalise(crops, self.mean, self.std)
        return self.session.run(None, {self.input_name: faces})[0]


def unsure_faces(probabilities: np.ndarray, mirror_below: float) -> np.ndarray:
    """Which faces (rows of one model's probabilities) that model reads again mirrored.

    The one statement of the rule, shared by inference and by ``memegen train
    mirror``, which picks ``mirror_below`` by replaying it on held-out faces.
    """
    return probabilities.max(axis=1) < mirror_below


def normalise(crops: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The N×1×S×S float32 input a model's graph takes, from N×S×S grey uint8 crops."""
    return (crops[:, None].astype(np.float32) / 255.0 - mean) / std


#: Every error ONNX Runtime raises while it loads a graph (an empty file is
#: ``InvalidArgument``, a truncated one ``InvalidProtobuf``, ...): they share no base class
#: but ``Exception``, which would hide our own bugs.
_ONNX_RUNTIME_ERRORS = tuple(
    error for error in vars(onnxruntime_pybind11_state).values()
    if isinstance(error, type) and issubclass(error, Exception)
)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


#: The manifest layout this code reads and ``memegen train`` writes; a manifest without
#: the field is taken to be of it.
MANIFEST_FORMAT = 1


#: The largest class weight a manifest may give. Weights are stored so that 1.0 is an equal
#: say and a fitted one is never above the number of models; a million leaves any fit room
#: while the vote's float32 sums of weight × probability stay far below overflow (1e308
#: becomes infinity in float32 and every score NaN).
MAX_CLASS_WEIGHT = 1e6

#: The largest class bias, in nats, either way. ``train bias`` fits biases of mean zero to
#: log-probabilities floored at 1e-12 (27.6 nats below certainty), and even a class with no
#: faces to fit sinks only to about -16; 50 leaves room above both, and a shift past it
#: (odds of 5e21) would decide a face's class whatever the models read.
MAX_CLASS_BIAS = 50.0

#: The range of a vote or member temperature. ``train bias`` and ``train mirror`` fit them
#: from 0.25 to 4; at 0.01 a class 10 % likelier than another is 14,000 times likelier and
#: at 100 the two are even to 0.1 %, so values beyond change little but invite under- and
#: overflow (1e-300 gave NaN).
TEMPERATURE_RANGE = (0.01, 100.0)


class ManifestError(UserError):
    """A manifest that cannot be used (missing, not JSON, an entry without its fields, a model
    file missing, unreadable or outside the manifest's folder, weights that leave a class
    without a score); the message names the manifest and what is wrong."""


def read_manifest(path: Path) -> dict:
    """The manifest's JSON object, as the classifier and the training steps that edit a
    manifest read it: a file that is not one raises :class:`ManifestError` naming it."""
    try:
        manifest = json.loads(path.read_text())
    except OSError as error:
        raise ManifestError(f"{path}: cannot read the model manifest ({error.strerror})") from error
    except ValueError as error:  # not JSON, or not UTF-8
        raise ManifestError(f"{path}: the model manifest is not valid JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: the model manifest is not a JSON object")
    version = manifest.get("format_version", MANIFEST_FORMAT)
    if version != MANIFEST_FORMAT:
        raise ManifestError(
            f"{path}: format_version {version!r}; this MemeGen reads format {MANIFEST_FORMAT} "
            "(was the manifest written by a newer MemeGen?)"
        )
    return manifest


def _load_models(manifest_path: Path, manifest: dict, key: str) -> list[ExpressionModel]:
    """The models the manifest lists under ``key``, each with its session; a missing field or
    model file raises :class:`ManifestError` naming the entry, not a bare ``KeyError``.

    A file named outside the manifest's folder is refused too: the training steps copy and
    delete the files a manifest names, and must touch none elsewhere.
    """
    entries = manifest.get(key, [])
    if not isinstance(entries, list):
        raise ManifestError(f'{manifest_path}: "{key}" is not a list of model entries')
    models = []
    for number, entry in enumerate(entries):
        where = f"{manifest_path}: {key}[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ManifestError(f'{where} names no model "file"')
        if Path(entry["file"]).is_absolute() or ".." in Path(entry["file"]).parts:
            raise ManifestError(
                f"{where}: the model file {entry['file']!r} is not inside the manifest's folder "
                '(name it relative to that folder, without "..")'
            )
        path = manifest_path.parent / entry["file"]
        if not path.is_file():
            raise ManifestError(f"{where}: the model file {path} is missing")
        try:
            session = _session(path)
        except _ONNX_RUNTIME_ERRORS as error:
            raise ManifestError(f"{where}: {path} is not a model ONNX Runtime can load") from error
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(LABELS):
            raise ManifestError(
                f"{where}: {path} gives {width} scores a face, not one for each of the "
                f"{len(LABELS)} labels"
            )
        try:
            models.append(_model(entry, session))
        except KeyError as error:
            raise ManifestError(f"{where} lacks the field {error}") from error
        except (TypeError, ValueError) as error:
            raise ManifestError(f"{where} has a malformed field ({error})") from error
    return models


def _model(entry: dict, session: ort.InferenceSession) -> ExpressionModel:
    """One manifest entry with its loaded session; a field of the wrong type or out of its
    range raises ``ValueError`` naming it, rather than failing (or answering NaN) at the
    first face."""
    inputs = entry["input"]
    side = session.get_inputs()[0].shape[-1]
    size = inputs["size"]
    if type(size) is not int or (isinstance(side, int) and size != side):
        raise ValueError(f"input size {size!r} is not the graph's {side}")
    class_weights = np.array(
        [_number(entry["class_weights"][label], f"class weight of {label}", 0.0,
                 MAX_CLASS_WEIGHT)
         for label in LABELS],
        dtype=np.float32,
    )
    if not class_weights.any():
        raise ValueError("every class weight is 0, so the model has no say in the vote")
    return ExpressionModel(
        name=entry["name"],
        session=session,
        input_size=size,
        mean=_number(inputs["mean"], "input mean", -math.inf, math.inf),
        std=_number(inputs["std"], "input std", 0.0, math.inf, low_included=False),
        crop_margin=_number(inputs["crop_margin"], "crop_margin", 0.0, 1.0),
        class_weights=class_weights,
        input_name=session.get_inputs()[0].name,
        mirror_below=_number(inputs.get("mirror_below", 0.0), "mirror_below", 0.0, 1.0),
        temperature=_number(entry.get("temperature", 1.0), "temperature", *TEMPERATURE_RANGE),
        consult_below=_number(entry.get("consult_below", math.inf), "consult_below", 0.0,
                              math.inf, finite=False),
    )


def _number(
    value: object, what: str, low: float, high: float, *, low_included: bool = True,
    finite: bool = True,
) -> float:
    """``value`` as a float, or ``ValueError`` naming ``what`` when it is not a number (JSON's
    true and false are not) from ``low`` (included or not) to ``high``, or is infinite
    though ``finite`` (only an ungated model's ``consult_below`` is not), or NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} {value!r} is not a number")
    number = float(value)
    above_low = low <= number if low_included else low < number
    if not (above_low and number <= high) or (finite and not math.isfinite(number)):
        raise ValueError(f"{what} {value!r} is out of its range")
    return number


def _check_every_class_scored(manifest_path: Path, weights: np.ndarray, models: str) -> None:
    """Refuse weights (models × labels) that leave a class with no weight above 0.

    A class's vote is the weighted mean of the models' readings of it, so with no weight it
    is 0 / 0 and every face's scores NaN. The crop vote's ``weights`` are those of the
    models read on every face before any gate decides: a gated model may be consulted on
    no face, and every gate sees only the vote of the models before it.
    """
    for label, total in zip(LABELS, weights.sum(axis=0), strict=True):
        if not total > 0:
            raise ManifestError(
                f"{manifest_path}: {models} gives {label} a class weight above 0, so the vote "
                f"cannot score {label}"
            )


class ExpressionClassifier:
    """Two votes over the manifest's models. Crops given as faces get the crop vote: a
    per-class weighted soft vote of ``models``, gated, with its class priors shifted and
    its confidence scaled. Faces found in photos get the photo vote of ``photo_models``
    when the manifest has them."""

    def __init__(self, manifest_path: Path) -> None:
        manifest = read_manifest(Path(manifest_path))
        if tuple(manifest.get("labels", ())) != LABELS:
            raise ManifestError(
                f"{manifest_path}: labels {manifest.get('labels')} are not {LABELS}"
            )
        if not manifest.get("models"):
            raise ManifestError(f"{manifest_path}: lists no models")
        self.models = _load_models(Path(manifest_path), manifest, "models")
        if self.models[0].consult_below != math.inf:
            raise ManifestError(
                f"{manifest_path}: the first model has no models before it to gate it"
            )
        self.weights = np.stack([model.class_weights for model in self.models])
        bias = manifest.get("class_bias", {})
        try:
            if not isinstance(bias, dict):
                raise ValueError("class_bias is not an object of a number per label")
            self.class_bias = np.array(
                [_number(bias.get(label, 0.0), f"class_bias of {label}", -MAX_CLASS_BIAS,
                         MAX_CLASS_BIAS)
                 for label in LABELS],
                dtype=np.float32,
            )
            self.temperature = _number(manifest.get("vote_temperature", 1.0), "vote_temperature",
                                       *TEMPERATURE_RANGE)
        except ValueError as error:
            raise ManifestError(f"{manifest_path}: {error}") from error
        first_gated = next((index for index, model in enumerate(self.models)
                            if model.consult_below != math.inf), None)
        _check_every_class_scored(
            manifest_path, self.weights[:first_gated],
            "no model" if first_gated is None else "no model before the first gated one",
        )
        self.photo_models = _load_models(Path(manifest_path), manifest, "photo_models")
        self.photo_weights = np.array([model.class_weights for model in self.photo_models])
        if self.photo_models:
            _check_every_class_scored(manifest_path, self.photo_weights, "no photo model")

    def classify(
        self, image: np.ndarray, boxes: Sequence[Box], *, precropped: bool = False
    ) -> np.ndarray:
        """Probabilities (faces × labels) for the faces at ``boxes`` in an RGB or grey image.

        ``precropped`` says the boxes are already face crops (the whole image of a
        FER-style dataset), so no margin is added around them and the crop vote reads
        them. Other boxes are faces found in a photo, read by the photo models when the
        manifest has them.
        """
        if not boxes:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if precropped or not self.photo_models:
            return _uniform_where_not_finite(self.vote(
                self.model_probabilities(image, boxes, precropped=precropped, gated=True)
            ))
        return _uniform_where_not_finite(
            self.photo_vote(self.photo_model_probabilities(image, boxes))
        )

    def photo_vote(self, photo_model_probabilities: np.ndarray) -> np.ndarray:
        """The photo models' vote (faces × labels) from their probabilities (photo models ×
        faces × labels): their class weights, and no gate, bias or temperature, which
        were fitted for crops."""
        return weighted_vote(photo_model_probabilities, self.photo_weights)

    def photo_model_probabilities(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Each photo model's probabilities (photo models × faces × labels) for faces found
        in a photo."""
        crops = _cropper(image, boxes)
        return np.stack([
            model.probabilities(crops(model.input_size, model.crop_margin))
            for model in self.photo_models
        ])

    def vote(self, model_probabilities: np.ndarray) -> np.ndarray:
        """The vote (faces × labels) of each model's probabilities (models × faces × labels)."""
        shifted = shift_priors(self.uncorrected_vote(model_probabilities), self.class_bias)
        return apply_temperature(shifted, self.temperature)

    @property
    def corrects_vote(self) -> bool:
        """Whether the manifest's class bias or temperature changes the crop vote at all."""
        return bool(self.class_bias.any()) or self.temperature != 1.0

    def uncorrected_vote(self, model_probabilities: np.ndarray) -> np.ndarray:
        """The weighted vote before class bias and temperature, each gated model counted
        only on the faces it is consulted on (what ``train bias`` fits its biases to)."""
        return weighted_vote(
            model_probabilities, self.weights, self.consulted(model_probabilities)
        )

    def consulted(self, model_probabilities: np.ndarray) -> np.ndarray:
        """Which faces (columns) each model (rows) is read on, from every model's readings."""
        consulted = np.ones(model_probabilities.shape[:2], dtype=bool)
        for index in range(1, len(self.models)):
            consulted[index] = self._consults(index, model_probabilities[:index], consulted[:index])
        return consulted

    def _consults(
        self, index: int, earlier: np.ndarray, earlier_consulted: np.ndarray
    ) -> np.ndarray:
        """The faces model ``index`` is read on, given the readings of the models before it.

        The one statement of the gate, shared by inference and by ``memegen train gate``
        (through ``consulted``).
        """
        threshold = self.models[index].consult_below
        if threshold == math.inf:
            return np.ones(earlier.shape[1], dtype=bool)
        vote = weighted_vote(earlier, self.weights[:index], earlier_consulted)
        return unsure_faces(vote, threshold)

    def model_probabilities(
        self, image: np.ndarray, boxes: Sequence[Box], *, precropped: bool = False,
        gated: bool = False,
    ) -> np.ndarray:
        """Each model's probabilities (models × faces × labels) before the vote.

        Reports measure every model of the ensemble on every face through exactly
        this path. ``gated`` reads a gated model only on the faces it is consulted on,
        as ``classify`` does to save its time; its other rows are NaN, which the vote
        leaves out.
        """
        crops = _cropper(image, boxes)
        votes: list[np.ndarray] = []
        consulted = np.ones((len(self.models), len(boxes)), dtype=bool)
        for index, model in enumerate(self.models):
            model_crops = crops(model.input_size, 0.0 if precropped else model.crop_margin)
            if gated and index:
                consulted[index] = self._consults(index, np.stack(votes), consulted[:index])
            readings = np.full((len(boxes), len(LABELS)), np.nan, dtype=np.float32)
            if consulted[index].any():
                readings[consulted[index]] = model.probabilities(model_crops[consulted[index]])
            votes.append(readings)
        return np.stack(votes)


def _cropper(image: np.ndarray, boxes: Sequence[Box]) -> Callable[[int, float], np.ndarray]:
    """Crops (faces × size × size) of ``boxes`` at a size and margin, each cut only once
    however many models ask for it."""
    cut: dict[tuple[int, float], np.ndarray] = {}

    def crops(size: int, margin: float) -> np.ndarray:
        if (size, margin) not in cut:
            cut[size, margin] = np.stack([crop_face(image, box, size, margin) for box in boxes])
        return cut[size, margin]

    return crops


def weighted_vote(
    probabilities: np.ndarray, weights: np.ndarray, consulted: np.ndarray | None = None
) -> np.ndarray:
    """Combine models × faces × labels probabilities with models × labels weights.

    Each class's score is the weighted mean of the models' probabilities for it;
    the scores are then renormalised so that each face's sum to one. ``consulted``
    (models × faces) leaves a model out of the faces it was not read on, and the
    others' weights share its say there.
    """
    if consulted is None:
        consulted = np.ones(probabilities.shape[:2], dtype=bool)
    counted = consulted[:, :, None] * weights[:, None, :]
    readings = np.where(consulted[:, :, None], probabilities, 0.0)
    return _rows_summing_to_one((readings * counted).sum(axis=0) / counted.sum(axis=0))


def shift_priors(probabilities: np.ndarray, class_bias: np.ndarray) -> np.ndarray:
    """Multiply each class's probability by exp(bias) and renormalise each face's row.

    Adding a constant to a class's log-probability is how a classifier trained on
    one class balance is moved to another: FER2013 has 16 happy faces for every
    disgusted one, and the bias lets the vote stop echoing that.
    """
    return _softmax(_log(probabilities) + class_bias.astype(np.float64))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Raise each probability to the power 1 / ``temperature`` and renormalise each face's row.

    Below 1 the vote grows surer, above 1 less sure; no face's top class moves.
    """
    if temperature == 1.0:
        return probabilities
    return _softmax(_log(probabilities) / temperature)


def _log(probabilities: np.ndarray) -> np.ndarray:
    """Natural logs in float64; a probability of 0 is minus infinity, not a warning."""
    with np.errstate(divide="ignore"):
        return np.log(probabilities.astype(np.float64))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's softmax, computed from its largest logit so that no bias or temperature
    overflows or underflows every class to 0."""
    top = logits.max(axis=1, keepdims=True)
    return _rows_summing_to_one(np.exp(logits - np.where(np.isfinite(top), top, 0.0)))


def _rows_summing_to_one(scores: np.ndarray) -> np.ndarray:
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)


def _uniform_where_not_finite(rows: np.ndarray) -> np.ndarray:
    """``rows`` with any face whose scores are not all finite read as uniform: the last
    guard of an answer, since JSON cannot carry a NaN. The manifest's checks at load keep
    every vote finite for graphs that answer in numbers; the training steps read the votes
    before this guard, so a graph that answers NaN is still refused there."""
    finite = np.isfinite(rows).all(axis=1, keepdims=True)
    return np.where(finite, rows, np.float32(1.0 / rows.shape[1])).astype(np.float32)


@lru_cache(maxsize=4)
def load_classifier(manifest_path: Path) -> ExpressionClassifier:
    return ExpressionClassifier(manifest_path)
