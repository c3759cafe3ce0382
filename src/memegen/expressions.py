"""Read each face's expression with the exported ensemble (ONNX Runtime only).

The manifest beside the ONNX files says everything inference must know: the
label order, each model's input size, normalisation and crop margin, the
per-class weight each model gets in the vote, below which top probability a
model reads a face a second time mirrored (``memegen train mirror``), below
which top probability of the models before it a gated model is read at all
(``memegen train gate``), and an optional per-class bias that shifts the vote's
class priors and a temperature that scales its confidence (both from
``memegen train bias``). An optional photo weighting (``memegen train
photo-weighting``) replaces that vote for faces the detector found in a photo.
Sessions are created once per process and shared by every thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from memegen import LABELS
from memegen.facecrop import Box, crop_face

#: Probabilities are floored here before the photo weighting takes their logarithm, so
#: that a member's near-zero reading of a class cannot outweigh every other number.
LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class PhotoWeighting:
    """The vote for faces found in photos: each class's score is a linear function of every
    member's log-probabilities, fitted on labelled faces found in photos.

    Members learned from dataset crops; faces found in web photos are lit, framed and
    labelled otherwise, and the members then confuse classes in ways a weight per class
    or a prior cannot undo (on ExpW's photos they call surprised, shouting faces angry).
    A weight for every (member, class read, class scored) can.
    """

    coefficients: np.ndarray  # models × labels read × labels scored
    intercepts: np.ndarray  # labels scored

    @classmethod
    def from_manifest(cls, section: dict, model_names: Sequence[str]) -> PhotoWeighting:
        coefficients = np.array([
            [[section["coefficients"][name][read][scored] for scored in LABELS] for read in LABELS]
            for name in model_names
        ])
        intercepts = np.array([section["intercepts"][label] for label in LABELS])
        return cls(coefficients, intercepts)

    def to_manifest(self, model_names: Sequence[str]) -> dict:
        """The manifest's ``photo_weighting``: coefficients by model, class read, class scored."""
        return {
            "coefficients": {
                name: {
                    read: {
                        scored: round(float(value), 6)
                        for scored, value in zip(LABELS, row, strict=True)
                    }
                    for read, row in zip(LABELS, matrix, strict=True)
                }
                for name, matrix in zip(model_names, self.coefficients, strict=True)
            },
            "intercepts": {
                label: round(float(value), 6)
                for label, value in zip(LABELS, self.intercepts, strict=True)
            },
        }

    def vote(self, model_probabilities: np.ndarray) -> np.ndarray:
        """Probabilities (faces × labels) from every model's (models × faces × labels)."""
        logs = np.log(np.clip(model_probabilities.astype(np.float64), LOG_FLOOR, None))
        scores = np.einsum("mfr,mrs->fs", logs, self.coefficients) + self.intercepts
        scores -= scores.max(axis=1, keepdims=True)
        return _rows_summing_to_one(np.exp(scores))


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
        probabilities = self._read(crops)
        unsure = unsure_faces(probabilities, self.mirror_below)
        if unsure.any():
            mirrored = self._read(crops[unsure][:, :, ::-1])
            probabilities[unsure] = (probabilities[unsure] + mirrored) / 2
        return apply_temperature(probabilities, self.temperature)

    def _read(self, crops: np.ndarray) -> np.ndarray:
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


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _model(entry: dict, session: ort.InferenceSession) -> ExpressionModel:
    """One manifest entry with its loaded session."""
    return ExpressionModel(
        name=entry["name"],
        session=session,
        input_size=entry["input"]["size"],
        mean=entry["input"]["mean"],
        std=entry["input"]["std"],
        crop_margin=entry["input"]["crop_margin"],
        class_weights=np.array(
            [entry["class_weights"][label] for label in LABELS], dtype=np.float32
        ),
        input_name=session.get_inputs()[0].name,
        mirror_below=entry["input"].get("mirror_below", 0.0),
        temperature=entry.get("temperature", 1.0),
        consult_below=entry.get("consult_below", math.inf),
    )


class ExpressionClassifier:
    """A per-class weighted soft vote of the manifest's models, with its class priors shifted
    and its confidence scaled."""

    def __init__(self, manifest_path: Path) -> None:
        manifest = json.loads(Path(manifest_path).read_text())
        if tuple(manifest["labels"]) != LABELS:
            raise ValueError(f"{manifest_path}: labels {manifest['labels']} are not {LABELS}")
        if not manifest["models"]:
            raise ValueError(f"{manifest_path}: lists no models")
        self.models = [
            _model(entry, _session(Path(manifest_path).parent / entry["file"]))
            for entry in manifest["models"]
        ]
        if self.models[0].consult_below != math.inf:
            raise ValueError(f"{manifest_path}: the first model has no models before it to gate it")
        self.weights = np.stack([model.class_weights for model in self.models])
        bias = manifest.get("class_bias", {})
        self.class_bias = np.array([bias.get(label, 0.0) for label in LABELS], dtype=np.float32)
        self.temperature = float(manifest.get("vote_temperature", 1.0))
        self.photo_weighting = (
            PhotoWeighting.from_manifest(
                manifest["photo_weighting"], [model.name for model in self.models]
            )
            if "photo_weighting" in manifest
            else None
        )

    def classify(
        self, image: np.ndarray, boxes: Sequence[Box], *, precropped: bool = False
    ) -> np.ndarray:
        """Probabilities (faces × labels) for the faces at ``boxes`` in an RGB or grey image.

        ``precropped`` says the boxes are already face crops (the whole image of a
        FER-style dataset), so no margin is added around them and the crop vote reads
        them. Other boxes are faces found in a photo, read by the photo weighting when
        the manifest has one (every model is then read: the weighting needs them all).
        """
        if not boxes:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if precropped or self.photo_weighting is None:
            return self.vote(
                self.model_probabilities(image, boxes, precropped=precropped, gated=True)
            )
        return self.photo_weighting.vote(self.model_probabilities(image, boxes))

    def vote_for_found_faces(self, model_probabilities: np.ndarray) -> np.ndarray:
        """What ``classify`` gives faces found in a photo, from every model's readings."""
        if self.photo_weighting is None:
            return self.vote(model_probabilities)
        return self.photo_weighting.vote(model_probabilities)

    def vote(self, model_probabilities: np.ndarray) -> np.ndarray:
        """The vote (faces × labels) of each model's probabilities (models × faces × labels)."""
        shifted = shift_priors(self.uncorrected_vote(model_probabilities), self.class_bias)
        return apply_temperature(shifted, self.temperature)

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
        crops: dict[tuple[int, float], np.ndarray] = {}
        votes: list[np.ndarray] = []
        consulted = np.ones((len(self.models), len(boxes)), dtype=bool)
        for index, model in enumerate(self.models):
            margin = 0.0 if precropped else model.crop_margin
            key = (model.input_size, margin)
            if key not in crops:
                crops[key] = np.stack(
                    [crop_face(image, box, model.input_size, margin) for box in boxes]
                )
            if gated and index:
                consulted[index] = self._consults(index, np.stack(votes), consulted[:index])
            readings = np.full((len(boxes), len(LABELS)), np.nan, dtype=np.float32)
            if consulted[index].any():
                readings[consulted[index]] = model.probabilities(crops[key][consulted[index]])
            votes.append(readings)
        return np.stack(votes)


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
    shifted = probabilities.astype(np.float64) * np.exp(class_bias.astype(np.float64))
    return _rows_summing_to_one(shifted)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Raise each probability to the power 1 / ``temperature`` and renormalise each face's row.

    Below 1 the vote grows surer, above 1 less sure; no face's top class moves.
    """
    if temperature == 1.0:
        return probabilities
    scaled = np.power(probabilities.astype(np.float64), 1.0 / temperature)
    return _rows_summing_to_one(scaled)


def _rows_summing_to_one(scores: np.ndarray) -> np.ndarray:
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=4)
def load_classifier(manifest_path: Path) -> ExpressionClassifier:
    return ExpressionClassifier(manifest_path)
