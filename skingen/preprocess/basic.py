"""The basic pipeline's step: centre crop to the short side, then area-interpolated resize."""
from __future__ import annotations

import cv2
import numpy as np


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``image`` to a square on its short side, resize to ``size`` (area when shrinking)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top:top + side, left:left + side]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
    out = cv2.resize(crop, (size, size), interpolation=interp)
    return np.ascontiguousarray(out, dtype=np.uint8)
