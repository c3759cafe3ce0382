"""Face detection: BlazeFace full-range (MediaPipe), tiled for small faces, Haar as a fallback.

BlazeFace sees a 192×192 picture, so on its own it only finds faces that are at
least ~16 px there, i.e. about a twelfth of the photo's long side. That is fine
for portraits and selfies, the usual meme material, and costs one inference
(~7 ms on one core). Group photos and people seen from further away are
different: a face of 40 px in a 12 MP picture is 2 px in that 192 view, and one
of 50 px in an 800 px web photo is 12 px. Unless the first look found a face
big enough to make the picture a portrait, a tiled pass therefore runs the same
model on overlapping 192×192 tiles cut from shrunken copies of the picture
("levels"), from a fine level (20 px faces) up to the one the whole-picture
pass already covers. All detections go through one weighted non-maximum
suppression, as MediaPipe merges its own.

When nothing is found, two fallbacks follow, cheapest first. A face that fills
the frame is too big for the model, so the picture is looked at once more from
afar (shrunk into the middle of the input). Then OpenCV's Haar cascade, which
catches a few faces BlazeFace does not (very noisy pictures, for one); it is
slower and far less precise, so it only runs when BlazeFace found nothing.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

MODEL_PATH = Path(__file__).parent / "assets" / "models" / "face_detection_full_range.onnx"

#: The model's square input side; its anchors sit on a 48×48 grid (stride 4), one per cell.
INPUT_SIDE = 192
ANCHOR_STRIDE = 4
#: Box and six (x, y) keypoints per anchor: right eye, left eye, nose tip, mouth, right ear
#: tragion, left ear tragion (the person's right and left).
NUM_KEYPOINTS = 6
#: MediaPipe's thresholds for this model: sigmoid score, and the IoU that makes boxes one face.
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: Tiles see ~100 times more small patches of texture than the whole-picture view, so a tile's
#: detection needs a higher score (at 0.5–0.67 they fired on the lettering of a mission patch).
TILE_MIN_SCORE = 0.7
#: Raw scores are clipped before the sigmoid, as MediaPipe does, so exp() cannot overflow.
RAW_SCORE_CLIP = 80.0

#: The tiled pass never looks at more detail than this (the pipeline decodes to about it).
DETAIL_MAX_SIDE = 2048
#: When nothing is found, the picture is looked at once more, shrunk to this side in the
#: middle of the input: a face that fills the frame then becomes one the model knows (it
#: misses nearly all tight face crops otherwise; measured on crops of dlib's faces).
CLOSE_UP_SIDE = 96
CLOSE_UP_MIN_FRACTION = 0.4
#: A face at least this fraction of the short side makes a picture a portrait: its subject
#: is found by the whole-picture pass, and the tiled pass (about 45 inferences for 1 MP,
#: 150-200 for 12 MP: a third of a second and a second on one core) is skipped. Group
#: photos, whose faces are a few percent of the picture, still get it.
PORTRAIT_FACE_FRACTION = 0.15
#: Smallest face (pixels of the ≤2048 px copy) that the tiled pass is built to find: 40 px in
#: a 4000×3000 photo. The model finds some faces of 14 px in its input, most of 16 px, and
#: scores faces of 18 px and more well above TILE_MIN_SCORE, so levels are planned with that.
SMALLEST_FACE = 20.0
MODEL_MIN_FACE = 18.0
#: Neighbouring tiles share this many model pixels, so every face up to this size lies whole
#: inside some tile; each level then covers faces of MODEL_MIN_FACE..TILE_OVERLAP model pixels
#: and the next level is coarser by TILE_OVERLAP / MODEL_MIN_FACE.
TILE_OVERLAP = 48
#: A tile's detection this close (model pixels) to an edge shared with another tile is a cut
#: face; the tile that holds the face whole reports it instead.
TILE_EDGE_MARGIN = 2.0

HAAR_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
#: Haar runs on a copy this big at most, and only looks for faces of HAAR_MIN_FRACTION of
#: the short side or more: BlazeFace finds small faces far better, and small Haar hits on
#: pictures without faces (coins, dogs, the moon) were all false. Haar gives no calibrated
#: confidence, so its faces carry a fixed score.
HAAR_MAX_SIDE = 320
HAAR_MIN_FRACTION = 0.25
HAAR_MIN_NEIGHBOURS = 6
HAAR_SCORE = 0.5


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixels of the array given to ``detect``."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the input image's pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # BlazeFace's 6 keypoints; empty for Haar


@dataclass(frozen=True)
class _Detections:
    """Detections as arrays: boxes (N×4, x1 y1 x2 y2), keypoints (N×6×2), scores (N)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    @staticmethod
    def concat(parts: list[_Detections]) -> _Detections:
        return _Detections(
            np.concatenate([part.boxes for part in parts]),
            np.concatenate([part.keypoints for part in parts]),
            np.concatenate([part.scores for part in parts]),
        )


def _full_range_anchors() -> np.ndarray:
    """Anchor centres (N×2, in model pixels) of MediaPipe's full-range SSD configuration.

    One layer of stride 4 on the 192 input, one anchor of fixed size per cell (aspect ratio
    1, no interpolated scale), centred in the cell; rows top to bottom, x fastest.
    """
    cells = INPUT_SIDE // ANCHOR_STRIDE
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
    return np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1) * ANCHOR_STRIDE


class FaceDetector:
    """BlazeFace full-range with a tiled pass for small faces and a Haar fallback.

    One onnxruntime session with one thread: the server runs one request per thread, and
    ``InferenceSession.run`` is safe to call from several threads at once.
    """

    def __init__(
        self,
        model_path: Path = MODEL_PATH,
        min_score: float = MIN_SCORE,
        tile_min_score: float = TILE_MIN_SCORE,
        tiled: bool = True,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._anchors = _full_range_anchors()
        outputs = {output.shape[-1]: output for output in self._session.get_outputs()}
        regressors, scores = outputs.get(4 + 2 * NUM_KEYPOINTS), outputs.get(1)
        if regressors is None or scores is None or regressors.shape[1] != len(self._anchors):
            raise ValueError(f"{model_path} is not BlazeFace full-range (2304 anchors × 16)")
        self._outputs = [regressors.name, scores.name]
        self._min_logit = _logit(min_score)
        self._tile_min_logit = _logit(tile_min_score)
        self._tiled = tiled

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an H×W×3 uint8 RGB picture, largest first; none is a normal answer."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        found = [self._whole_picture(rgb, INPUT_SIDE)]
        if self._tiled and not is_portrait(found[0], rgb.shape):
            found.extend(self._tiles(rgb))
        faces = _to_faces(_weighted_nms(_Detections.concat(found)), width, height)
        if not faces:
            faces = self._close_up(rgb)
        if not faces:
            faces = haar_faces(rgb)
        return sorted(faces, key=_area, reverse=True)

    def _whole_picture(self, rgb: np.ndarray, side: int) -> _Detections:
        """One inference on the whole picture, shrunk to fit side×side."""
        small, scale_x, scale_y = _shrink(rgb, side)
        return self._infer(small, (scale_x, scale_y), (0.0, 0.0), self._min_logit)

    def _close_up(self, rgb: np.ndarray) -> list[Face]:
        """Big faces only, from the picture shrunk to CLOSE_UP_SIDE in the middle of the input.

        A face that fills the frame is too big for the model in the first look. Smaller ones
        were the first look's to find, and here they would be textures seen from afar
        (the heads on coins, for one), so they are dropped.
        """
        height, width = rgb.shape[:2]
        found = _weighted_nms(self._whole_picture(rgb, CLOSE_UP_SIDE))
        smallest = CLOSE_UP_MIN_FRACTION * min(height, width)
        return [face for face in _to_faces(found, width, height) if _side(face) >= smallest]

    def _tiles(self, rgb: np.ndarray) -> list[_Detections]:
        """Overlapping 192×192 tiles over ever coarser copies, down to the whole-picture scale."""
        detail, detail_x, detail_y = _shrink(rgb, DETAIL_MAX_SIDE)
        whole_scale = max(detail.shape[:2]) / INPUT_SIDE  # detail pixels per model pixel
        factor = SMALLEST_FACE / MODEL_MIN_FACE
        found = []
        while factor < whole_scale:
            level, level_x, level_y = _shrink(detail, round(max(detail.shape[:2]) / factor))
            scale_x, scale_y = detail_x * level_x, detail_y * level_y
            height, width = level.shape[:2]
            for top in _tile_starts(height):
                for left in _tile_starts(width):
                    tile = level[top : top + INPUT_SIDE, left : left + INPUT_SIDE]
                    offset = (left * scale_x, top * scale_y)
                    hits = self._infer(tile, (scale_x, scale_y), offset, self._tile_min_logit)
                    found.append(
                        _away_from_shared_edges(hits, left, top, width, height, scale_x, scale_y)
                    )
            factor *= TILE_OVERLAP / MODEL_MIN_FACE
        return found

    def _infer(
        self,
        image: np.ndarray,
        scale: tuple[float, float],
        offset: tuple[float, float],
        min_logit: float,
    ) -> _Detections:
        """Run the model on ``image`` (at most 192×192) and map its detections to the picture.

        ``image`` goes in the middle of the input on black, at its own size: small pictures
        are not enlarged, since the model likes faces of 16–128 px. ``scale`` is picture
        pixels per ``image`` pixel (x, y), ``offset`` where ``image``'s corner lies in it.
        """
        tensor = np.full((1, INPUT_SIDE, INPUT_SIDE, 3), -1.0, dtype=np.float32)
        height, width = image.shape[:2]
        pad_x, pad_y = (INPUT_SIDE - width) // 2, (INPUT_SIDE - height) // 2
        normalised = image * np.float32(1 / 127.5) - np.float32(1.0)  # the model wants [-1, 1]
        tensor[0, pad_y : pad_y + height, pad_x : pad_x + width] = normalised
        regressors, logits = self._session.run(self._outputs, {self._input: tensor})
        keep = np.flatnonzero(logits[0, :, 0] > min_logit)
        raw = regressors[0, keep]
        logit = np.clip(logits[0, keep, 0], -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
        centres = self._anchors[keep] - np.array([pad_x, pad_y], dtype=np.float32)
        # Offsets and sizes are in input pixels relative to each anchor's centre.
        cx, cy = raw[:, 0] + centres[:, 0], raw[:, 1] + centres[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centres[:, None, :]
        factor = np.array(scale, dtype=np.float32)
        offset_arr = np.array(offset, dtype=np.float32)
        boxes = boxes * np.tile(factor, 2) + np.tile(offset_arr, 2)
        keypoints = keypoints * factor + offset_arr
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        scores = 1.0 / (1.0 + np.exp(-logit))
        return _Detections(boxes[valid], keypoints[valid], scores[valid])


def is_portrait(found: _Detections, shape: tuple[int, ...]) -> bool:
    """Whether a detection is big enough (PORTRAIT_FACE_FRACTION) to make the picture a portrait."""
    if not len(found.boxes):
        return False
    sides = np.maximum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
    return bool(sides.max() >= PORTRAIT_FACE_FRACTION * min(shape[:2]))


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``image`` with its long side at most ``max_side``, and input pixels per output pixel
    along x and y.

    OpenCV's area averaging is fast only for whole-number factors (about 2 ms for 1 MP, ten
    times less than for other factors), so the picture is first averaged down by the
    whole-number part of the factor, dropping the last few rows and columns that do not
    fill a block, and the remaining factor below 2 is done bilinearly.
    """
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0, 1.0
    step = min(max(height, width) // max_side, height, width)
    if step >= 2:
        height, width = height // step * step, width // step * step
        image = cv2.resize(
            image[:height, :width], (width // step, height // step), interpolation=cv2.INTER_AREA
        )
    rest = max_side / max(image.shape[:2])
    if rest < 1.0:
        size = (max(1, round(image.shape[1] * rest)), max(1, round(image.shape[0] * rest)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image, width / image.shape[1], height / image.shape[0]


def _tile_starts(length: int) -> list[int]:
    """Start offsets of INPUT_SIDE-long tiles over ``length`` that overlap by ≥ TILE_OVERLAP."""
    if length <= INPUT_SIDE:
        return [0]
    count = math.ceil((length - TILE_OVERLAP) / (INPUT_SIDE - TILE_OVERLAP))
    return [round(i * (length - INPUT_SIDE) / (count - 1)) for i in range(count)]


def _away_from_shared_edges(
    found: _Detections,
    left: int,
    top: int,
    width: int,
    height: int,
    scale_x: float,
    scale_y: float,
) -> _Detections:
    """Drop detections cut by a tile edge that another tile overlaps (not the picture's)."""
    boxes = found.boxes
    margin_x, margin_y = TILE_EDGE_MARGIN * scale_x, TILE_EDGE_MARGIN * scale_y
    right, bottom = min(left + INPUT_SIDE, width), min(top + INPUT_SIDE, height)
    keep = np.ones(len(boxes), dtype=bool)
    if left > 0:
        keep &= boxes[:, 0] > left * scale_x + margin_x
    if top > 0:
        keep &= boxes[:, 1] > top * scale_y + margin_y
    if right < width:
        keep &= boxes[:, 2] < right * scale_x - margin_x
    if bottom < height:
        keep &= boxes[:, 3] < bottom * scale_y - margin_y
    return _Detections(boxes[keep], found.keypoints[keep], found.scores[keep])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of ``boxes``."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    overlap = width * height
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - overlap
    return overlap / np.maximum(union, 1e-9)


def _weighted_nms(found: _Detections) -> _Detections:
    """MediaPipe's weighted NMS: the best detection and every box overlapping it by more than
    NMS_IOU form one face, whose box and keypoints are their score-weighted mean; it keeps
    the best score. Averaging the many anchors that fire on one face steadies the box."""
    order = np.argsort(-found.scores, kind="stable")
    boxes, keypoints, scores = found.boxes[order], found.keypoints[order], found.scores[order]
    merged_boxes, merged_keypoints, merged_scores = [], [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = _iou(boxes[remaining[0]], boxes[remaining])
        same = overlap > NMS_IOU
        same[0] = True
        members = remaining[same]
        weights = scores[members] / scores[members].sum()
        merged_boxes.append(weights @ boxes[members])
        merged_keypoints.append(np.tensordot(weights, keypoints[members], axes=1))
        merged_scores.append(scores[members[0]])
        remaining = remaining[~same]
    if not merged_scores:
        return found
    return _Detections(np.array(merged_boxes), np.array(merged_keypoints), np.array(merged_scores))


def _to_faces(found: _Detections, width: int, height: int) -> list[Face]:
    """Faces with boxes clipped to the picture; a box wholly outside it is no face."""
    faces = []
    for box, keypoints, score in zip(found.boxes, found.keypoints, found.scores, strict=True):
        x1, x2 = np.clip(box[[0, 2]], 0, width)
        y1, y2 = np.clip(box[[1, 3]], 0, height)
        if x2 > x1 and y2 > y1:
            landmarks = tuple((float(x), float(y)) for x, y in keypoints)
            faces.append(
                Face((float(x1), float(y1), float(x2), float(y2)), float(score), landmarks)
            )
    return faces


def _side(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return max(x2 - x1, y2 - y1)


def _area(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return (x2 - x1) * (y2 - y1)


_haar = threading.local()


def haar_faces(rgb: np.ndarray) -> list[Face]:
    """Faces found by OpenCV's frontal-face Haar cascade, largest first.

    The fallback for pictures where BlazeFace finds nothing. A CascadeClassifier must not be
    shared between threads, so each thread loads its own once.
    """
    cascade = getattr(_haar, "cascade", None)
    if cascade is None:
        cascade = _haar.cascade = cv2.CascadeClassifier(str(HAAR_CASCADE))
    height, width = rgb.shape[:2]
    small, scale_x, scale_y = _shrink(rgb, HAAR_MAX_SIDE)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    min_side = max(24, round(HAAR_MIN_FRACTION * min(gray.shape)))
    found = cascade.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=HAAR_MIN_NEIGHBOURS, minSize=(min_side, min_side)
    )
    faces = [
        Face(
            box=(
                float(x * scale_x),
                float(y * scale_y),
                float(min((x + w) * scale_x, width)),
                float(min((y + h) * scale_y, height)),
            ),
            score=HAAR_SCORE,
            landmarks=(),
        )
        for x, y, w, h in found
    ]
    return sorted(faces, key=_area, reverse=True)


@functools.lru_cache(maxsize=1)
def default_detector() -> FaceDetector:
    """The detector with the bundled model, built once per process and shared."""
    return FaceDetector()
