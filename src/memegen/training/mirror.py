"""Keep each model's mirror pass only where it pays for itself on held-out data.

An exported graph can average a face's probabilities with its mirror image's
(``memegen train ensemble --mirror``). That pass costs as much as the model
itself, and whether it helps depends on the model: a net that already learned
to answer the same for both sides of a face gains nothing from it. The
decision is made per model on the weighting set, through the exported graphs:
with every other model as chosen so far, the vote's weights are refitted with
and without this model's mirror pass, and the pass stays only if it lowers the
vote's negative log-likelihood by at least ``MIN_GAIN`` nats per face.

A model whose pass goes gets a cut-down copy of its graph (the plain pass
alone, int8 or float alike), so no retraining or checkpoint is needed. The
vote weights are refitted for the chosen graphs, and so are the class biases
when the source manifest had them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import utils

from memegen.expressions import ExpressionClassifier
from memegen.training.class_bias import add_class_bias
from memegen.training.datasets import FaceDataset
from memegen.training.ensemble import fit_weights, validation_metrics, vote_nll, voting_evidence
from memegen.training.export import INPUT_NAME, OUTPUT_NAME, per_label, save_manifest
from memegen.training.report import crop_probabilities

MIN_GAIN = 0.002
METHOD = (
    "each mirror pass, in manifest order, is kept only if the weighting set's vote "
    f"(weights refitted) has a negative log-likelihood at least {MIN_GAIN} nats lower with it"
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
    """The tensor holding the probabilities of the unmirrored pass of a mirror-pass graph."""
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


def drop_unpaid_mirror_passes(
    manifest_path: Path, weighting_set: FaceDataset, out_dir: Path
) -> Path:
    """Copy the ensemble to ``out_dir`` with only the mirror passes that pay, weights refitted.

    Every model must have a mirror pass to judge; class biases, if the source
    had them, are fitted again on ``weighting_set`` for the new vote.
    """
    manifest_path = Path(manifest_path)
    if Path(out_dir).resolve() == manifest_path.parent.resolve():
        raise ValueError("write the new ensemble to another folder than the source's")
    manifest = json.loads(manifest_path.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    mirrored = crop_probabilities(ExpressionClassifier(manifest_path), weighting_set)
    sources = []
    for entry in manifest["models"]:
        if not entry["input"]["mirror_averaged_in_graph"]:
            raise ValueError(f"{entry['name']}: its graph has no mirror pass")
        sources.append(manifest_path.parent / entry["file"])
        entry["file"] = f"{sources[-1].stem}-no-mirror.onnx"
        write_plain_pass(sources[-1], out_dir / entry["file"])
    plain = crop_probabilities(
        ExpressionClassifier(save_manifest(out_dir / "manifest.json", manifest)), weighting_set
    )
    labels = weighting_set.labels
    keep, choices = choose_mirror_passes(mirrored, plain, labels)
    chosen = _with_passes(mirrored, plain, keep)
    weights = fit_weights(chosen, labels)
    names = [entry["name"] for entry in manifest["models"]]
    evidence = voting_evidence(names, chosen, labels, weights, weighting_set)
    for entry, source, kept, choice, model_weights in zip(
        manifest["models"], sources, keep, choices, weights, strict=True
    ):
        if kept:
            (out_dir / entry["file"]).unlink()
            entry["file"] = source.name
            shutil.copyfile(source, out_dir / source.name)
        entry["input"]["mirror_averaged_in_graph"] = kept
        entry["mirror_pass"] = choice
        entry["class_weights"] = per_label(model_weights)
        entry["metrics"]["validation"] = validation_metrics(evidence, entry["name"])
    manifest["voting_evidence"] = evidence
    manifest["mirror_pass_evidence"] = {
        "method": METHOD,
        "weighting_set": evidence["weighting_set"],
    }
    had_class_bias = manifest.pop("class_bias", None) is not None
    manifest.pop("class_bias_evidence", None)
    path = save_manifest(out_dir / "manifest.json", manifest)
    if had_class_bias:
        add_class_bias(path, weighting_set)
    return path
