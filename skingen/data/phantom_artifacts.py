"""Dermoscopy artifacts drawn as separate layers over a clean image, each with its own mask bit.

Every artifact returns (colour, alpha) in image space; the composite is
``clean * (1 - alpha) + colour * alpha`` applied in a fixed order, and the ground-truth mask ORs
each layer's bit where its alpha exceeds 0.25.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

MASK_BITS: dict[str, int] = {"hair": 1, "vignette": 2, "ruler": 4, "bubble": 8, "specular": 16}
DEFAULT_RATES: dict[str, float] = {"hair": 0.5, "vignette": 0.3, "ruler": 0.15, "bubble": 0.2, "specular": 0.3}
Layer = tuple[np.ndarray, np.ndarray]


def _blank(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)


def hair(rng: np.random.Generator, h: int, w: int) -> Layer:
    """Dark curved hairs as quadratic Bezier curves, 1-3 px thick at 256 px."""
    colour, alpha = _blank(h, w)
    unit = min(h, w) / 256
    shade = np.array([30, 22, 18], np.float32) + rng.uniform(0, 40)
    colour[:] = shade
    for _ in range(int(rng.integers(3, 35))):
        p0, p2 = rng.uniform(-0.1, 1.1, 2) * (w, h), rng.uniform(-0.1, 1.1, 2) * (w, h)
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.2, 2) * (w, h)
        t = np.linspace(0, 1, 40)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        thick = max(1, int(round(rng.uniform(1, 3) * unit)))
        cv2.polylines(alpha, [pts.astype(np.int32)], False, float(rng.uniform(0.8, 1.0)), thick, cv2.LINE_AA)
    return colour, alpha


def vignette(rng: np.random.Generator, h: int, w: int) -> Layer:
    """Dark corners outside a circle (the dermatoscope's field of view)."""
    colour, _ = _blank(h, w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2 + rng.normal(0, 0.03 * w), h / 2 + rng.normal(0, 0.03 * h)
    radius = rng.uniform(0.36, 0.47) * np.hypot(w, h)
    edge = rng.uniform(0.01, 0.04) * min(h, w)
    alpha = 1 / (1 + np.exp(-(np.hypot(x - cx, y - cy) - radius) / edge))
    colour[:] = rng.uniform(0, 15)
    return colour, alpha.astype(np.float32)


def ruler(rng: np.random.Generator, h: int, w: int) -> Layer:
    """A ruler edge with tick marks along one side of the image."""
    colour, alpha = _blank(h, w)
    colour[:] = (20, 20, 25) if rng.random() < 0.7 else (235, 235, 235)
    unit = min(h, w) / 256
    side = int(rng.integers(4))
    margin = int(rng.uniform(0.05, 0.15) * min(h, w))
    length = h if side in (0, 1) else w
    step = max(3, int(rng.uniform(6, 10) * unit))
    for i, pos in enumerate(range(int(0.1 * length), int(0.9 * length), step)):
        tick = int((12 if i % 5 == 0 else 6) * unit)
        if side == 0:
            a, b = (margin, pos), (margin + tick, pos)
        elif side == 1:
            a, b = (w - margin, pos), (w - margin - tick, pos)
        elif side == 2:
            a, b = (pos, margin), (pos, margin + tick)
        else:
            a, b = (pos, h - margin), (pos, h - margin - tick)
        cv2.line(alpha, a, b, 1.0, max(1, int(unit)), cv2.LINE_AA)
    return colour, alpha


def bubble(rng: np.random.Generator, h: int, w: int) -> Layer:
    """Gel bubbles: bright thin rims with a faint bright interior."""
    colour, alpha = _blank(h, w)
    colour[:] = 245
    for _ in range(int(rng.integers(1, 6))):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = int(rng.uniform(0.02, 0.08) * min(h, w)) + 2
        cv2.circle(alpha, c, r, 0.15, -1, cv2.LINE_AA)
        cv2.circle(alpha, c, r, 0.85, max(1, r // 8), cv2.LINE_AA)
    return colour, alpha


def specular(rng: np.random.Generator, h: int, w: int) -> Layer:
    """Small saturated white glare spots."""
    colour, alpha = _blank(h, w)
    colour[:] = 255
    for _ in range(int(rng.integers(3, 15))):
        c = (int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.15, 0.85) * h))
        axes = (int(rng.uniform(1, 5) * min(h, w) / 256) + 1, int(rng.uniform(1, 4) * min(h, w) / 256) + 1)
        cv2.ellipse(alpha, c, axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    return colour, alpha


DRAWERS: dict[str, Callable[[np.random.Generator, int, int], Layer]] = {
    "vignette": vignette, "bubble": bubble, "specular": specular, "ruler": ruler, "hair": hair,
}
ORDER = ("specular", "bubble", "hair", "ruler", "vignette")  # bottom to top


def apply_artifacts(rng: np.random.Generator, clean: np.ndarray,
                    rates: dict[str, float] = DEFAULT_RATES) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Composite random artifacts over ``clean``; return (image, bitmask uint8, artifact names)."""
    h, w = clean.shape[:2]
    image = clean.astype(np.float32).copy()
    mask = np.zeros((h, w), np.uint8)
    present = []
    for name in ORDER:
        if rng.random() >= rates.get(name, 0.0):
            continue
        colour, alpha = DRAWERS[name](rng, h, w)
        image = image * (1 - alpha[..., None]) + colour * alpha[..., None]
        mask[alpha > 0.25] |= MASK_BITS[name]
        present.append(name)
    return np.clip(image, 0, 255).astype(np.uint8), mask, present
