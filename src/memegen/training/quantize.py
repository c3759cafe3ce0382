"""Int8 copies of an exported ensemble, for CPUs where every millisecond per face counts.

ONNX Runtime's static quantization stores each convolution's weights as int8
(per output channel) and its activations as uint8, with activation ranges
calibrated on real training crops. Three settings matter, all measured on the
shipped ensemble (FER2013 PublicTest, see docs/model-card.md):

- ``reduce_range``: weights use 7 bits. On x86 CPUs without VNNI (AVX2 only,
  like the machines here) the uint8 × int8 products are summed in pairs into
  int16, which saturates with full 8-bit weights; that cost 1.7 points of
  accuracy, and 7-bit weights cost none.
- Percentile calibration (99.999 %): min/max ranges stretch to rare outliers
  and waste resolution; clipping them agreed better with the float model.
- Only the network is quantized, up to its logits: the softmax, the mirror
  average and everything after them stay float. A uint8 softmax gives
  probabilities in steps of 1/256, so a rare class's chance rounds to zero.

The vote weights are carried over unchanged: they were fitted on the float
models, whose top class the int8 copies keep on about 99 % of faces.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from memegen.expressions import ExpressionClassifier, ManifestError, normalise, read_manifest
from memegen.training.datasets import FaceDataset
from memegen.training.export import (
    INPUT_NAME,
    carry_photo_models,
    refuse_source_folder,
    save_manifest,
    staged_into,
)

PERCENTILE = 99.999
QUANTIZED_OPERATORS = ["Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm"]
BATCH = 32


class _Crops(CalibrationDataReader):
    """Normalised calibration crops, fed to the calibrator in batches of one size (its
    histograms stack them): the last ``len(faces) % BATCH`` crops are left out."""

    def __init__(self, faces: np.ndarray) -> None:
        usable = len(faces) // BATCH * BATCH or len(faces)
        self._batches = iter(np.split(faces[:usable], max(1, usable // BATCH)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def calibration_faces(dataset: FaceDataset, count: int, seed: int) -> np.ndarray:
    """``count`` crops (N×S×S uint8) drawn at random, without replacement, from ``dataset``."""
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:count]
    return dataset.images[np.sort(chosen)]


def quantize_model(source: Path, target: Path, faces: np.ndarray) -> None:
    """Write an int8 copy of ``source`` calibrated on ``faces`` (normalised, N×1×S×S float32)."""
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(target),
            _Crops(faces),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": PERCENTILE},
            op_types_to_quantize=QUANTIZED_OPERATORS,
        )


def quantize_ensemble(
    manifest_path: Path, calibration: FaceDataset, out_dir: Path, count: int = 512, seed: int = 0
) -> Path:
    """Int8 copies of every model in the manifest, and a manifest for them in ``out_dir``.

    Calibration crops should come from the models' training data: they only set
    activation ranges, and measuring data must stay unseen. ``out_dir`` must not be the
    source's folder, whose float manifest the int8 one would replace; a manifest whose
    models are int8 already (their entries record a ``quantization``) is refused
    (:class:`ManifestError`), as its graphs have no float layers left to quantize.
    """
    refuse_source_folder(manifest_path, out_dir, "int8 copies")
    ExpressionClassifier(manifest_path)  # one the app cannot load is refused, naming why
    manifest = read_manifest(Path(manifest_path))
    for entry in manifest["models"]:
        if "quantization" in entry:
            raise ManifestError(
                f"{manifest_path}: {entry['name']} is int8 already (its entry records a "
                "quantization); quantize the float ensemble it came from instead"
            )
    crops = calibration_faces(calibration, count, seed)
    with staged_into(out_dir) as staging:
        carry_photo_models(manifest, Path(manifest_path).parent, staging)
        for entry in manifest["models"]:
            faces = normalise(crops, entry["input"]["mean"], entry["input"]["std"])
            file_name = f"{Path(entry['file']).stem}-int8.onnx"
            quantize_model(Path(manifest_path).parent / entry["file"], staging / file_name, faces)
            entry["quantization"] = {
                "from": entry["file"],
                "weights": "int8 per channel, 7-bit range",
                "activations": "uint8",
                "calibration": {
                    "dataset": calibration.name,
                    "examples": len(crops),
                    "seed": seed,
                    "method": f"percentile {PERCENTILE}",
                },
            }
            entry["file"] = file_name
        save_manifest(staging / "manifest.json", manifest)
    return out_dir / "manifest.json"
