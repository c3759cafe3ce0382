"""Milliseconds per face of the expression ensemble on one thread, whole and per model.

    python benchmarks/expression_speed.py [--manifest PATH] [--repeat 200]

The face is the astronaut's, found by the detector in the test photo. The
ensemble's time includes cropping, normalising and the vote exactly as the
pipeline runs them; each model's time is its normalisation and ONNX session on
the ready crop (with the mirror pass its graph contains). The issue's budget is 5 ms per
face for the whole ensemble on one core. Medians after a warm-up; the machine
is shared, so compare ratios between runs. Each number comes twice: wall clock,
and the process's CPU time, which is one core's work (everything runs on the
calling thread) and is not inflated when another process takes the core away.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from memegen.config import DEFAULT_MANIFEST
from memegen.expressions import ExpressionClassifier
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    photo = load_photo(PHOTO.read_bytes()).pixels
    boxes = [face.box for face in default_detector().detect(photo)][:1]
    classifier = ExpressionClassifier(args.manifest)
    whole = median_ms(lambda: classifier.classify(photo, boxes), args.repeat)
    per_model = {}
    for model in classifier.models:
        crops = crop_face(photo, boxes[0], model.input_size, model.crop_margin)[None]
        per_model[model.name] = median_ms(lambda m=model, c=crops: m.probabilities(c), args.repeat)
    print(json.dumps({"ensemble_ms_per_face": whole, "models_ms": per_model}, indent=2))


if __name__ == "__main__":
    main()
