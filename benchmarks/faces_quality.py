"""How well and how fast the face detector works, on the photos in the data root.

Recall: dlib's face-detection examples (``photos/dlib_faces``, PASCAL VOC pictures whose
``training.xml`` and ``testing.xml`` list the true boxes; both files are used, since we
train nothing on them). A true face counts as found when some detection overlaps it with
IoU ≥ 0.3; the looser "detected box centre inside the true box" is printed beside it,
because dlib's square boxes are tighter than BlazeFace's around the chin and forehead.
False positives: every face reported on ``photos/no_face`` is one.
Speed: median milliseconds per ``detect`` call on one thread, for a 1 MP picture with faces
and one without (where both fallbacks run), a 12 MP one as given, and that 12 MP picture at
2048 px (what the pipeline hands over). The 12 MP picture is dlib's ``bald_guys.jpg``
(1986×1545) enlarged, so it has the faces of a real group photo.

    .venv/bin/python benchmarks/faces_quality.py [DATA_ROOT]   # default /tmp/memegen-data
"""

from __future__ import annotations

import argparse
import statistics
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from memegen.faces import MIN_SCORE, TILE_MIN_SCORE, Face, FaceDetector

Box = tuple[float, float, float, float]


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def true_boxes(folder: Path) -> dict[str, list[Box]]:
    """File name → true boxes (x1, y1, x2, y2) from dlib's imglab XML files."""
    boxes: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            entry = boxes.setdefault(image.get("file"), [])
            for box in image.iter("box"):
                left, top = float(box.get("left")), float(box.get("top"))
                entry.append(
                    (left, top, left + float(box.get("width")), top + float(box.get("height")))
                )
    return boxes


def iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def centre_inside(found: Box, truth: Box) -> bool:
    cx, cy = (found[0] + found[2]) / 2, (found[1] + found[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]


def recall(detector: FaceDetector, folder: Path) -> None:
    hits_iou = hits_centre = total = unmatched = 0
    for name, truths in sorted(true_boxes(folder).items()):
        faces = detector.detect(load_rgb(folder / name))
        found = [face.box for face in faces]
        by_iou = sum(any(iou(box, truth) >= 0.3 for box in found) for truth in truths)
        by_centre = sum(any(centre_inside(box, truth) for box in found) for truth in truths)
        extra = sum(
            not any(iou(box, truth) >= 0.3 or centre_inside(box, truth) for truth in truths)
            for box in found
        )
        hits_iou, hits_centre, total = (
            hits_iou + by_iou,
            hits_centre + by_centre,
            total + len(truths),
        )
        unmatched += extra
        print(
            f"  {name:28s} {by_iou:2d}/{len(truths):2d} (centre {by_centre:2d})  "
            f"detections {len(faces):2d}, matching no true face {extra}"
        )
    print(
        f"recall IoU>=0.3: {hits_iou}/{total} = {hits_iou / total:.1%};  "
        f"centre inside: {hits_centre}/{total} = {hits_centre / total:.1%};  "
        f"detections matching no true face: {unmatched}"
    )


def false_positives(detector: FaceDetector, folder: Path) -> None:
    total = pictures = 0
    files = sorted(path for path in folder.iterdir() if path.suffix in (".jpg", ".png"))
    for path in files:
        faces = detector.detect(load_rgb(path))
        if faces:
            pictures += 1
            total += len(faces)
            print(f"  {path.name}: {describe(faces)}")
    print(f"false positives: {total} faces on {pictures} of {len(files)} pictures without faces")


def describe(faces: list[Face]) -> str:
    return ", ".join(
        f"{'BlazeFace' if face.landmarks else 'Haar'} {face.score:.2f} "
        f"{[round(v) for v in face.box]}"
        for face in faces
    )


def median_ms(detector: FaceDetector, rgb: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU milliseconds per call. On a busy machine the CPU time
    is the fairer number: everything runs on the calling thread, so it is one core's work."""
    detector.detect(rgb)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        detector.detect(rgb)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def resized(photo: np.ndarray, pixels: float | None = None, long_side: int | None = None):
    """``photo`` scaled, keeping its aspect ratio, to about ``pixels`` or to ``long_side``."""
    height, width = photo.shape[:2]
    scale = (pixels / (height * width)) ** 0.5 if pixels else long_side / max(height, width)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(
        photo, (round(width * scale), round(height * scale)), interpolation=interpolation
    )


def speed(detector: FaceDetector, photos: Path, repeats: int) -> None:
    group = load_rgb(photos / "dlib_faces" / "bald_guys.jpg")
    empty = load_rgb(photos / "no_face" / "dlib_dogs.jpg")
    twelve = resized(group, pixels=12e6)
    for label, rgb in (
        ("1 MP group photo", resized(group, pixels=1e6)),
        ("1 MP, no face (fallbacks run)", resized(empty, pixels=1e6)),
        ("12 MP group photo, as given", twelve),
        ("12 MP group photo at 2048", resized(twelve, long_side=2048)),
    ):
        count = len(detector.detect(rgb))
        runs = repeats if max(rgb.shape) < 2000 else max(3, repeats // 10)
        wall, cpu = median_ms(detector, rgb, runs)
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        print(
            f"  {label:30s} {size:>9s}: {wall:7.1f} ms wall, {cpu:7.1f} ms CPU"
            f"  ({count} faces, {runs} runs)"
        )


def missing_data(root: Path, speed: bool) -> list[str]:
    """The files under ``root`` this benchmark reads that are not there, checked before the
    detector loads, so that a wrong or missing data root is one line rather than a traceback
    halfway through the recall table."""
    needed = ["photos/dlib_faces/training.xml", "photos/dlib_faces/testing.xml",
              "photos/no_face/"]
    if speed:
        needed += ["photos/dlib_faces/bald_guys.jpg", "photos/no_face/dlib_dogs.jpg"]
    return [name for name in needed
            if not ((root / name).is_dir() if name.endswith("/") else (root / name).is_file())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", nargs="?", type=Path, default=Path("/tmp/memegen-data"))
    parser.add_argument("--min-score", type=float, default=MIN_SCORE)
    parser.add_argument("--tile-min-score", type=float, default=TILE_MIN_SCORE)
    parser.add_argument("--tiles", action=argparse.BooleanOptionalAction, default=True,
                        help="run the tiled pass on pictures that are not portraits")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()

    missing = missing_data(args.data_root, speed=not args.skip_speed)
    if missing:
        parser.error(f"{args.data_root} is not the data root this benchmark reads: it has no "
                     f"{', '.join(missing)}")
    cv2.setNumThreads(1)  # the detector's own session already runs on one thread
    detector = FaceDetector(
        min_score=args.min_score,
        tile_min_score=args.tile_min_score,
        tiled=args.tiles,
    )
    photos = args.data_root / "photos"
    print("recall on photos/dlib_faces:")
    recall(detector, photos / "dlib_faces")
    print("faces found on photos/no_face:")
    false_positives(detector, photos / "no_face")
    if not args.skip_speed:
        print("median time per detect(), one thread:")
        speed(detector, photos, args.repeats)


if __name__ == "__main__":
    main()
