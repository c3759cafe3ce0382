"""Milliseconds per face of the expression ensemble on one thread, whole and per model.

    python benchmarks/expression_speed.py [--manifest PATH] [--repeat 200] [--faces DIR]

The face is the astronaut's, found by the detector in the test photo, so when the
manifest has photo models they are the ones that read it. The ensemble's time includes
cropping, normalising and the vote exactly as the pipeline runs them; each model's time
(``models_ms`` for the crop vote's, ``photo_models_ms`` for the photo models') is its
normalisation and ONNX session on the ready crop (with the mirror pass its graph
contains). The issue's budget is 5 ms per
face for the whole ensemble on one core. OpenCV (cropping) is held to one thread, as
ONNX Runtime's sessions are. Medians after a warm-up; the machine
is shared, so compare ratios between runs. Each number comes twice: wall clock,
and the process's CPU time, which is one core's work (everything runs on the
calling thread) and is not inflated when another process takes the core away.

A model with a ``mirror_below`` threshold reads only its unsure faces twice, so
one face's time says little about the average. ``--faces DIR`` (face crops, such
as FER2013's ``val/``) times the vote on a seeded sample of them, one face per
call as the pipeline sees a portrait, and reports the mean, the median and the
share of faces each model read mirrored (of all the sample's faces: a gated model
mirrors only faces it is read on), and the share each model was read on at
all (below 1 only for a model gated by ``memegen train gate``). It times each face
twice: given as a crop (the crop vote, gates and all) and as a face found in a photo
(the photo models, when the manifest has them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from memegen.config import DEFAULT_MANIFEST
from memegen.errors import UserError
from memegen.expressions import ExpressionClassifier, unsure_faces
from memegen.facecrop import crop_face
from memegen.faces import default_detector
from memegen.imaging import load_photo

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.jpg"


def median_ms(action, repeat: int) -> dict[str, float]:
    """Median wall-clock and CPU milliseconds of one call, after a warm-up call."""
    action()
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {"wall": round(statistics.median(wall), 2), "cpu": round(statistics.median(cpu), 2)}


def sample_faces(folder: Path, count: int) -> list[np.ndarray]:
    """A seeded sample of ``count`` grey face crops from the PNGs under ``folder``.

    Every crop is read as one face of the first crop's size (``_whole_face``), so a
    folder without PNGs, or of pictures of several sizes (photos rather than crops),
    raises ``ValueError`` instead of timing crops cut from the wrong boxes.
    """
    paths = sorted(folder.rglob("*.png"))
    if not paths:
        raise ValueError(f"no PNG face crops under {folder}")
    chosen = np.random.default_rng(0).choice(len(paths), min(count, len(paths)), replace=False)
    faces = [np.asarray(Image.open(paths[index]).convert("L")) for index in chosen]
    sizes = {face.shape for face in faces}
    if len(sizes) > 1:
        named = ", ".join(f"{width}×{height}" for height, width in sorted(sizes)[:3])
        raise ValueError(f"the PNGs under {folder} are not face crops of one size ({named})")
    return faces


def crop_call_ms(classifier: ExpressionClassifier, faces: list[np.ndarray]) -> list[float]:
    """Milliseconds of each face given as a crop (the crop vote, gates and all)."""
    whole_face = _whole_face(faces)
    return _per_call_ms(faces, lambda face: classifier.classify(face, whole_face,
                                                                precropped=True))


def over_faces(classifier: ExpressionClassifier, faces: list[np.ndarray]) -> dict:
    """Milliseconds per face on ``sample_faces``'s sample, one call each."""
    whole_face = _whole_face(faces)
    as_crops = crop_call_ms(classifier, faces)
    as_found = _per_call_ms(faces, lambda face: classifier.classify(face, whole_face))
    crops = np.stack(faces)
    readings = np.stack([model.probabilities(crops) for model in classifier.models])
    read_on = classifier.consulted(readings)
    consulted = read_on.mean(axis=1)
    mirrored = {}
    for model, model_read_on in zip(classifier.models, read_on, strict=True):
        plain = dataclasses.replace(model, mirror_below=0.0).probabilities(crops)
        share = (unsure_faces(plain, model.mirror_below) & model_read_on).mean()
        mirrored[model.name] = round(float(share), 3)
    return {
        "faces": len(faces),
        "mean_ms": round(statistics.fmean(as_crops), 2),
        "median_ms": round(statistics.median(as_crops), 2),
        "found_in_photo_mean_ms": round(statistics.fmean(as_found), 2),
        "found_in_photo_median_ms": round(statistics.median(as_found), 2),
        "mirrored_share": mirrored,
        "consulted_share": {
            model.name: round(float(share), 3)
            for model, share in zip(classifier.models, consulted, strict=True)
        },
    }


def _whole_face(faces: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """The one box covering a whole crop of the sample's size."""
    return [(0, 0, faces[0].shape[1], faces[0].shape[0])]


def _per_call_ms(faces: list[np.ndarray], classify) -> list[float]:
    """Milliseconds of ``classify(face)`` for each face, after up to 20 uncounted warm-up
    calls (the first faces again). Exactly the warm-up calls are dropped, so a sample of
    fewer than 20 faces still times every face, not only the last ``2 × len(faces) - 20``."""
    warm_up = faces[:20]
    samples = []
    for face in warm_up + faces:
        started = time.perf_counter()
        classify(face)
        samples.append((time.perf_counter() - started) * 1000)
    return samples[len(warm_up):]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--faces", type=Path, help="a folder of face crops to time a mix of faces")
    parser.add_argument("--faces-count", type=int, default=1000)
    args = parser.parse_args()

    cv2.setNumThreads(1)  # the sessions run on one thread; so must cropping
    try:
        classifier = ExpressionClassifier(args.manifest)
        faces = sample_faces(args.faces, args.faces_count) if args.faces else None
    except (UserError, ValueError) as error:
        parser.error(str(error))
    photo = load_photo(PHOTO.read_bytes()).pixels
    boxes = [face.box for face in default_detector().detect(photo)][:1]
    whole = median_ms(lambda: classifier.classify(photo, boxes), args.repeat)
    result = {"ensemble_ms_per_face": whole}
    for key, models in (("models_ms", classifier.models),
                        ("photo_models_ms", classifier.photo_models)):
        per_model = {}
        for model in models:
            crops = crop_face(photo, boxes[0], model.input_size, model.crop_margin)[None]
            per_model[model.name] = median_ms(
                lambda m=model, c=crops: m.probabilities(c), args.repeat
            )
        result[key] = per_model
    if faces is not None:
        result["faces"] = over_faces(classifier, faces)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
