"""Write trained runs as ONNX files plus the manifest that inference reads.

The exported graph takes normalised N×1×S×S crops and returns class
probabilities (by default averaged over the crop and its mirror image), so
inference needs no knowledge of how a model was trained beyond what the
manifest states. The mirror pass buys a little accuracy for twice the time;
an ensemble that must fit a per-face budget can leave it out.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from memegen import LABELS
from memegen.errors import UserError
from memegen.expressions import MANIFEST_FORMAT
from memegen.files import write_whole
from memegen.training.train import ExportedProbabilities, TrainConfig, load_trained

INPUT_NAME, OUTPUT_NAME = "faces", "probabilities"


def export_onnx(network: torch.nn.Module, input_size: int, path: Path, mirror: bool = True) -> None:
    """Write ``network`` (as ``ExportedProbabilities``) to ``path`` with a dynamic batch axis."""
    wrapped = ExportedProbabilities(network.eval(), mirror).eval()
    example = torch.zeros(2, 1, input_size, input_size)
    torch.onnx.export(
        wrapped,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def model_entry(
    name: str,
    file_name: str,
    config: TrainConfig,
    crop_margin: float,
    class_weights: Sequence[float] | None = None,
    metrics: dict | None = None,
    mirror: bool = True,
) -> dict:
    """One model's record in the manifest: file, preprocessing, vote weights, evidence."""
    weights = np.ones(len(LABELS)) if class_weights is None else np.asarray(class_weights)
    return {
        "name": name,
        "file": file_name,
        "input": {
            "size": 48,
            "channels": 1,
            "mean": config.mean,
            "std": config.std,
            "crop_margin": crop_margin,
            "mirror_averaged_in_graph": mirror,
        },
        "class_weights": per_label(weights),
        "architecture": {
            "family": config.family,
            "width": config.width,
            "depth": config.depth,
            "head": config.head,
        },
        "metrics": metrics or {},
    }


def per_label(values: Sequence[float]) -> dict[str, float]:
    """One number per class, keyed by label, as manifests record weights and biases."""
    return {label: round(float(value), 6) for label, value in zip(LABELS, values, strict=True)}


def write_manifest(out_dir: Path, models: list[dict], voting_evidence: dict | None = None) -> Path:
    manifest = {
        "format_version": MANIFEST_FORMAT,
        "labels": list(LABELS),
        "voting": "per-class weighted soft vote",
        "models": models,
        "voting_evidence": voting_evidence or {},
    }
    return save_manifest(out_dir / "manifest.json", manifest)


def save_manifest(path: Path, manifest: dict) -> Path:
    """Write ``manifest`` as the JSON file inference reads; every training step writes it
    so, whole or not at all (``bias`` edits a manifest in place)."""
    write_whole(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def unique_names(run_dirs: Sequence[Path]) -> list[str]:
    """Run folder names, with the parent's name in front where two would clash (search
    trials); each names a member and its ONNX file, so two alike would share one file.
    Raises :class:`UserError` if names still clash (the same run given twice)."""
    names = [run_dir.name for run_dir in run_dirs]
    unique = [
        f"{run_dir.parent.name}-{name}" if names.count(name) > 1 else name
        for run_dir, name in zip(run_dirs, names, strict=True)
    ]
    clashing = sorted({name for name in unique if unique.count(name) > 1})
    if clashing:
        raise UserError(
            f"two runs would both be named {', '.join(clashing)}; give each run once, "
            "from folders whose names or parents' names differ"
        )
    return unique


def copy_model_file(file_name: str, source_dir: Path, out_dir: Path) -> None:
    """Copy a model file a manifest names from ``source_dir`` to the same place under
    ``out_dir`` (a subfolder of it too, as the manifest names it)."""
    target = Path(out_dir) / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(source_dir) / file_name, target)


def carry_photo_models(manifest: dict, source_dir: Path, out_dir: Path) -> None:
    """Copy the photo models' files of ``manifest`` from ``source_dir`` to ``out_dir``, for
    a step that rewrites only the crop members (``quantize``, ``mirror``, ``gate``): the
    photo models are int8 already, read faces found in photos, and are kept as they are."""
    for entry in manifest.get("photo_models", []):
        copy_model_file(entry["file"], source_dir, out_dir)


def refuse_source_folder(manifest_path: Path, out_dir: Path, what: str) -> None:
    """Raise :class:`UserError` if ``out_dir`` is the folder of ``manifest_path``: a step that
    writes ``what`` (a new ensemble) from it would replace the source's manifest."""
    if Path(out_dir).resolve() == Path(manifest_path).parent.resolve():
        raise UserError(f"write the {what} to another folder than the source's")


@contextmanager
def staged_into(out_dir: Path, manifest_name: str = "manifest.json") -> Iterator[Path]:
    """A new folder beside ``out_dir`` to write into, whose files are moved into ``out_dir``
    once the block has written them all, the manifest (``manifest_name``) last; an
    ``out_dir`` that is not there yet is the staging folder itself, renamed.

    A step that fails or is stopped part way, in an ``out_dir`` that holds an ensemble, then
    leaves that ensemble as it was rather than some of its files replaced and the manifest
    still the old one; a new ``out_dir`` appears only whole; and a manifest is never there
    before the models it names. Every step that writes an ensemble writes it through here.
    """
    out_dir = Path(out_dir).resolve()  # beside the folder itself: one file system, one rename
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()  # not tempfile.mkdtemp: its mode 0700 would become out_dir's
    try:
        yield staging
        if not out_dir.exists():
            staging.rename(out_dir)
            return
        files = [path for path in staging.rglob("*") if not path.is_dir()]
        for path in sorted(files, key=lambda path: path == staging / manifest_name):
            target = out_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_runs(
    run_dirs: Sequence[Path], out_dir: Path, crop_margin: float, mirror: bool = True
) -> Path:
    """Export each run with equal vote weights; the ensemble step replaces them later.

    Every run is loaded before anything is written (:func:`staged_into` writes the rest).
    """
    names = unique_names(run_dirs)
    entries = []
    with staged_into(out_dir) as staging:
        trained = [load_trained(run_dir) for run_dir in run_dirs]
        for name, (network, config) in zip(names, trained, strict=True):
            file_name = f"{name}.onnx"
            export_onnx(network, 48, staging / file_name, mirror)
            entries.append(model_entry(name, file_name, config, crop_margin, mirror=mirror))
        write_manifest(staging, entries)
    return out_dir / "manifest.json"
