"""The one crop function shared by training and inference.

A classifier only works on crops that look like the ones it was trained on, so
the detector's box goes through exactly the same steps at inference as the
labelled boxes of whole-photo datasets do at training time: square the box
around its centre, widen it by the manifest's margin, replicate the border
where the square leaves the picture, convert to grey, resize with area
averaging.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def square_box(box: Box, margin: float) -> tuple[int, int, int, int]:
    """The square (x1, y1, x2, y2) around ``box``, each side widened by ``margin`` × its size."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    side = max(side, 1.0)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left = round(cx - side / 2.0)
    top = round(cy - side / 2.0)
    size = round(side)
    return left, top, left + size, top + size


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey copy of an RGB or grey uint8 image."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def crop_face(image: np.ndarray, box: Box, size: int, margin: float) -> np.ndarray:
    """A ``size``×``size`` grey uint8 crop of ``box`` in an RGB or grey uint8 image."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = square_box(box, margin)
    inside = image[max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)]
    if inside.size == 0:
        return np.zeros((size, size), dtype=np.uint8)
    gray = to_gray(inside)
    pad_top, pad_left = max(-y1, 0), max(-x1, 0)
    pad_bottom, pad_right = max(y2 - height, 0), max(x2 - width, 0)
    if pad_top or pad_left or pad_bottom or pad_right:
        gray = cv2.copyMakeBorder(
            gray, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE
        )
    side = gray.shape[0]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interpolation)
