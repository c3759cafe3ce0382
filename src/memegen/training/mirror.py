"""Read a face a second time mirrored only where it pays, judged on held-out data.

Averaging a face's probabilities with its mirror image's costs a second pass
through the model, and whether it helps depends on the model: a net that
already learned to answer the same for both sides of a face gains nothing from
it. Both decisions are made per model on the weighting set, through the
exported graphs, with every other model as chosen so far and the vote's weights
refitted for each trial:

1. the pass stays only if it lowers the vote's negative log-likelihood by at
   least ``MIN_GAIN`` nats per face;
2. a pass that stays runs only on faces the model is unsure of: those whose
   top probability is below the lowest of ``THRESHOLDS`` that costs the vote
   at most ``MAX_SKIP_LOSS`` nats against mirroring every face.

Every model's graph is cut down to its plain pass (int8 or float alike, no
retraining or checkpoint needed); inference flips the crop itself when the
manifest's ``mirror_below`` says so.

With the passes chosen, and when asked, each model gets its own temperature,
fitted to its own readings on the weighting set
(``memegen.training.calibration.fit_temperature``): the vote averages
probabilities, and no vote weight can make one unsure member surer. It is opt-in
because on the shipped pair it lowered the held-out NLL but was right less often
on PublicTest and surer on web photos (experiments/member-temperatures). The vote
weights are then refitted, and so are the class biases when the source manifest
had them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import utils

from memegen.expressions import (
    ExpressionClassifier,
    ManifestError,
    apply_temperature,
    read_manifest,
    unsure_faces,
)
from memegen.training.calibration import fit_temperature
from memegen.training.class_bias import check_refittable, save_refitting_class_bias
from memegen.training.datasets import FaceDataset
from memegen.training.ensemble import fit_weights, validation_metrics, vote_nll, voting_evidence
from memegen.training.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    carry_photo_models,
    per_label,
    refuse_source_folder,
    save_manifest,
    staged_into,
)
from memegen.training.report import crop_probabilities

MIN_GAIN = 0.002
MAX_SKIP_LOSS = 0.001
THRESHOLDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
METHOD = (
    "each mirror pass, in manifest order, is kept only if the weighting set's vote "
    f"(weights refitted) has a negative log-likelihood at least {MIN_GAIN} nats lower with it; "
    "a kept pass then runs only on faces whose plain top probability is below the lowest of "
    f"{list(THRESHOLDS)} that raises that negative log-likelihood by at most {MAX_SKIP_LOSS} "
    "nats against mirroring every face"
)
TEMPERATURE_METHOD = (
    "each model's readings, with its mirror pass as chosen, raised to the power 1/T and "
    "renormalised; T minimises that model's own negative log-likelihood on the weighting set "
    "(grid over 1/T in steps of 0.001); the vote weights are fitted after"
)


def plain_pass_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes of an exported graph's unmirrored pass, in order.

    The mirror is a ``Slice`` that reverses the input's width; the plain pass is
    everything reached from the input without going through it.
    """
    reached, nodes = {INPUT_NAME}, []
    for node in graph.node:  # ONNX stores nodes in topological order
        if node.op_type != "Slice" and reached.intersection(node.input):
            reached.update(node.output)
            nodes.append(node)
    return nodes


def plain_pass_output(model: onnx.ModelProto) -> str:
    """The tensor holding the probabilities of the unmirrored pass of a mirror-pass graph.

    ``fit_mirror_passes`` has refused manifests whose graphs have no mirror pass, so a graph
    without one here disagrees with the manifest export wrote for it: a bug, a ``ValueError``.
    """
    softmaxes = [node for node in model.graph.node if node.op_type == "Softmax"]
    plain = [node.output[0] for node in plain_pass_nodes(model.graph) if node.op_type == "Softmax"]
    if len(softmaxes) != 2 or len(plain) != 1:
        raise ValueError("the graph has no mirror pass beside a plain one")
    return plain[0]


def write_plain_pass(source: Path, target: Path) -> None:
    """Write the part of ``source`` that computes the plain pass, its output renamed as exported."""
    output = plain_pass_output(onnx.load(source))
    utils.extract_model(str(source), str(target), [INPUT_NAME], [output])
    model = onnx.load(target)
    old_name = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [OUTPUT_NAME if name == old_name else name for name in node.output]
    model.graph.output[0].name = OUTPUT_NAME
    onnx.save(model, target)


def choose_mirror_passes(
    mirrored: np.ndarray, plain: np.ndarray, labels: np.ndarray, min_gain: float = MIN_GAIN
) -> tuple[list[bool], list[dict]]:
    """Which models keep their mirror pass, and the vote NLLs each choice rests on.

    ``mirrored`` and ``plain`` are models × faces × labels probabilities of the
    same models with and without their mirror pass.
    """
    keep = [True] * len(mirrored)
    evidence = []
    for index in range(len(mirrored)):
        current = _with_passes(mirrored, plain, keep)
        without = current.copy()
        without[index] = plain[index]
        with_nll = vote_nll(current, labels, fit_weights(current, labels))
        without_nll = vote_nll(without, labels, fit_weights(without, labels))
        keep[index] = without_nll - with_nll >= min_gain
        evidence.append(
            {
                "vote_nll_with_mirror": round(with_nll, 6),
                "vote_nll_without_mirror": round(without_nll, 6),
                "kept": keep[index],
            }
        )
    return keep, evidence


def _with_passes(mirrored: np.ndarray, plain: np.ndarray, keep: list[bool]) -> np.ndarray:
    """Each model's probabilities with its mirror pass where ``keep`` says so, else without."""
    return np.stack([m if k else p for m, p, k in zip(mirrored, plain, keep, strict=True)])


def mirrored_below(plain: np.ndarray, flipped: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities (faces × labels) when the mirror pass runs only on faces whose plain top
    probability is below ``threshold``, as ``memegen.expressions`` runs it."""
    return np.where(unsure_faces(plain, threshold)[:, None], (plain + flipped) / 2, plain)


def _with_thresholds(plain: np.ndarray, flipped: np.ndarray, thresholds: list[float]) -> np.ndarray:
    return np.stack([
        mirrored_below(p, f, t) for p, f, t in zip(plain, flipped, thresholds, strict=True)
    ])


def choose_mirror_thresholds(
    plain: np.ndarray,
    flipped: np.ndarray,
    keep: list[bool],
    labels: np.ndarray,
    max_loss: float = MAX_SKIP_LOSS,
) -> tuple[list[float], list[dict]]:
    """For each kept mirror pass, the ``mirror_below`` threshold that skips it most often.

    ``plain`` and ``flipped`` are models × faces × labels probabilities of the
    plain passes on the faces and on their mirror images. A model without its
    pass gets 0.0 (never mirror); every threshold tried is in the evidence.
    """
    thresholds = [THRESHOLDS[0] if kept else 0.0 for kept in keep]
    evidence: list[dict] = []
    for index, kept in enumerate(keep):
        if not kept:
            evidence.append({"below": 0.0})
            continue
        nlls = {}
        for threshold in THRESHOLDS:
            trial = [*thresholds[:index], threshold, *thresholds[index + 1 :]]
            probabilities = _with_thresholds(plain, flipped, trial)
            nlls[threshold] = vote_nll(probabilities, labels, fit_weights(probabilities, labels))
        thresholds[index] = min(t for t in THRESHOLDS if nlls[t] <= nlls[THRESHOLDS[0]] + max_loss)
        mirrored_share = unsure_faces(plain[index], thresholds[index]).mean()
        evidence.append({
            "below": thresholds[index],
            "mirrored_share": round(float(mirrored_share), 4),
            "vote_nll_by_threshold": {str(t): round(nll, 6) for t, nll in nlls.items()},
        })
    return thresholds, evidence


def fit_mirror_passes(
    manifest_path: Path,
    weighting_set: FaceDataset,
    out_dir: Path,
    member_temperatures: bool = False,
) -> Path:
    """Copy the ensemble to ``out_dir`` as plain graphs, each with the mirror pass that pays
    (and, with ``member_temperatures``, its own temperature).

    Every model must have a mirror pass in its graph to judge, and none may be gated yet:
    a manifest that fails either, or whose entries lack the fields this reads, is refused
    (:class:`ManifestError`) before anything is written. Everything is written beside
    ``out_dir`` and moved in at the end (:func:`staged_into`). Class biases (and the
    temperature fitted with them), if the source had them, are fitted again on
    ``weighting_set`` for the new vote.
    """
    manifest_path = Path(manifest_path)
    refuse_source_folder(manifest_path, out_dir, "new ensemble")
    ExpressionClassifier(manifest_path)  # one the app cannot load is refused, naming why
    manifest = read_manifest(manifest_path)
    check_refittable(manifest, weighting_set)
    for entry in manifest["models"]:
        _check_mirror_fields(entry)
        if not entry["input"]["mirror_averaged_in_graph"]:
            raise ManifestError(f"{entry['name']}: its graph has no mirror pass")
        if "consult_below" in entry:
            raise ManifestError(
                f"{entry['name']}: it is gated; choose mirror passes before the gate"
            )
    with staged_into(out_dir) as staging:
        carry_photo_models(manifest, manifest_path.parent, staging)
        for entry in manifest["models"]:
            source = manifest_path.parent / entry["file"]
            entry["file"] = f"{source.stem}-plain.onnx"
            write_plain_pass(source, staging / entry["file"])
            entry["input"]["mirror_averaged_in_graph"] = False
            entry["input"].pop("mirror_below", None)
            entry.pop("temperature", None)
        classifier = ExpressionClassifier(save_manifest(staging / "manifest.json", manifest))
        _choose(classifier, manifest, weighting_set, member_temperatures)
        save_refitting_class_bias(manifest, staging / "manifest.json", weighting_set)
    return out_dir / "manifest.json"


def _check_mirror_fields(entry: dict) -> None:
    """Raise :class:`ManifestError` if ``entry`` lacks what ``fit_mirror_passes`` reads and
    rewrites: whether its graph has a mirror pass, and its metrics (a ``validation`` is
    written into them), so that such a manifest is one line, not a ``KeyError``."""
    if "mirror_averaged_in_graph" not in entry["input"]:
        raise ManifestError(
            f"{entry['name']}: its entry lacks input.mirror_averaged_in_graph, so whether its "
            "graph has a mirror pass is not known"
        )
    if not isinstance(entry.get("metrics"), dict):
        raise ManifestError(
            f"{entry['name']}: its entry lacks metrics (an object, as train export writes it), "
            "where the weighting set's numbers go"
        )


def _choose(
    classifier: ExpressionClassifier,
    manifest: dict,
    weighting_set: FaceDataset,
    member_temperatures: bool,
) -> None:
    """Read the weighting set with ``classifier`` (the plain graphs) and its mirror images,
    and write into ``manifest`` each model's mirror pass, temperature and vote weights
    with the evidence they rest on."""
    plain = crop_probabilities(classifier, weighting_set)
    mirror_images = dataclasses.replace(weighting_set, images=weighting_set.images[:, :, ::-1])
    flipped = crop_probabilities(classifier, mirror_images)
    labels = weighting_set.labels
    keep, choices = choose_mirror_passes((plain + flipped) / 2, plain, labels)
    thresholds, threshold_choices = choose_mirror_thresholds(plain, flipped, keep, labels)
    untempered = _with_thresholds(plain, flipped, thresholds)
    temperatures = [
        fit_temperature(readings, labels) if member_temperatures else 1.0
        for readings in untempered
    ]
    chosen = np.stack([
        apply_temperature(readings, temperature)
        for readings, temperature in zip(untempered, temperatures, strict=True)
    ])
    weights = fit_weights(chosen, labels)
    names = [entry["name"] for entry in manifest["models"]]
    evidence = voting_evidence(names, chosen, labels, weights, weighting_set)
    for entry, threshold, choice, threshold_choice, temperature, model_weights in zip(
        manifest["models"], thresholds, choices, threshold_choices, temperatures, weights,
        strict=True,
    ):
        entry["input"]["mirror_below"] = threshold
        entry["mirror_pass"] = choice | threshold_choice
        if member_temperatures:
            entry["temperature"] = temperature
        entry["class_weights"] = per_label(model_weights)
        entry["metrics"]["validation"] = validation_metrics(evidence, entry["name"])
    manifest["voting_evidence"] = evidence
    manifest["mirror_pass_evidence"] = {
        "method": METHOD,
        "weighting_set": evidence["weighting_set"],
    }
    if member_temperatures:
        manifest["mirror_pass_evidence"]["temperatures"] = TEMPERATURE_METHOD
