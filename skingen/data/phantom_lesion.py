"""Procedural dermoscopy-like lesions: class-dependent shape, border, colours and texture.

A lesion is rendered once in its own canonical frame (an RGBA image, lesion radius ~1/3 of the
frame); each photograph of it warps that frame with a pose (rotation, zoom, offset) so repeated
images of one lesion share identity but differ, as in HAM10000.

Planted class cues (``STYLES``), chosen to survive downscaling to 32-64 px so that a classifier
trained from random init on a few hundred images learns them (the demo):

- NV: round, soft-edged, even medium brown (1-2 colours), a regular pigment network.
- MEL: irregular asymmetric outline, 3-5 colours including black, blue-grey, red and white.
- BCC: pink and pearly, partly translucent, blue-grey nests, thick red arborizing vessels.
- BKL: light tan to yellow-brown, sharp "stuck-on" border, coarse dark cerebriform ridges.
- SCC: red-pink with a large white-yellow central keratin scale and dotted vessels.

Colour, size and outline ranges overlap and skin tone, lighting and artifacts vary, so the task is
not trivial -- but these cues are planted by hand: what a classifier learns here says nothing
about real dermoscopy.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CANON = 320  # canonical frame size in pixels; lesion radius ~= CANON / 3.2


@dataclass(frozen=True)
class ClassStyle:
    """Ranges the renderer draws from for one class; ranges overlap so the task is not trivial."""

    irregularity: tuple[float, float]  # amplitude of the boundary's Fourier harmonics
    softness: tuple[float, float]  # border blur as a fraction of the radius
    n_colours: tuple[int, int]  # number of colour regions (inclusive range)
    palette: tuple[tuple[int, int, int], ...]  # RGB colours the regions draw from
    network: tuple[float, float]  # pigment-network strength
    network_regularity: tuple[float, float]  # 1 = regular grid, 0 = chaotic
    vessels: str  # "", "arborizing", "dotted"
    ridges: float  # cerebriform ridge strength (seborrhoeic keratosis look)
    scale: float  # central keratin scale strength
    translucency: float  # how much skin shows through (pearly lesions)


STYLES: dict[str, ClassStyle] = {
    # NV: round, soft-edged, even medium brown, one or two colours, a regular network.
    "NV": ClassStyle((0.02, 0.08), (0.06, 0.16), (1, 2),
                     ((121, 78, 48), (146, 98, 62), (95, 60, 38), (165, 120, 85)),
                     (0.15, 0.4), (0.7, 1.0), "", 0.0, 0.0, 0.05),
    # MEL: irregular, asymmetric, three to five colours incl. black, blue-grey and white regression.
    "MEL": ClassStyle((0.07, 0.22), (0.03, 0.14), (3, 5),
                      ((60, 35, 25), (25, 18, 20), (95, 95, 120), (150, 60, 55),
                       (205, 195, 190), (120, 75, 45)),
                      (0.2, 0.55), (0.0, 0.5), "", 0.0, 0.0, 0.0),
    # BCC: pink, pearly, partly translucent, with blue-grey nests and thick arborizing vessels.
    "BCC": ClassStyle((0.05, 0.15), (0.08, 0.2), (2, 3),
                      ((225, 150, 160), (210, 135, 150), (105, 110, 150), (230, 170, 175)),
                      (0.0, 0.05), (0.0, 0.5), "arborizing", 0.0, 0.0, 0.25),
    # BKL: light tan to yellow-brown, sharp "stuck-on" border, coarse cerebriform ridges.
    "BKL": ClassStyle((0.03, 0.12), (0.02, 0.07), (1, 3),
                      ((190, 150, 85), (170, 130, 70), (205, 170, 105), (160, 125, 75)),
                      (0.0, 0.12), (0.3, 0.8), "", 0.7, 0.0, 0.05),
    # SCC: red-pink with a large central white-yellow keratin scale and dotted vessels.
    "SCC": ClassStyle((0.05, 0.16), (0.08, 0.22), (1, 3),
                      ((205, 95, 90), (185, 80, 75), (220, 120, 110)),
                      (0.0, 0.05), (0.0, 0.5), "dotted", 0.1, 0.95, 0.1),
}


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A (size, size) field in [0, 1] of smooth noise with about ``cells`` blobs per side."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _polar_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = (np.arange(size, dtype=np.float32) - size / 2 + 0.5) / (size / 3.2)
    x, y = np.meshgrid(ax, ax)
    return np.hypot(x, y), np.arctan2(y, x)


def lesion_alpha(rng: np.random.Generator, style: ClassStyle) -> np.ndarray:
    """Soft lesion mask in the canonical frame: radius r(theta) with class-dependent harmonics."""
    dist, theta = _polar_grid(CANON)
    amp = rng.uniform(*style.irregularity)
    radius = np.ones_like(theta)
    for k in range(2, 9):
        radius += amp / k ** 0.8 * rng.normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius *= rng.uniform(0.85, 1.1) * (1 + 0.15 * np.cos(theta - rng.uniform(0, 2 * np.pi)) * rng.uniform(0, 1))
    soft = rng.uniform(*style.softness)
    jag = 1 + amp * 2.0 * (smooth_noise(rng, CANON, 24) - 0.5)
    return 1.0 / (1.0 + np.exp(-(radius * jag - dist) / max(soft, 1e-3)))


def _colour_field(rng: np.random.Generator, style: ClassStyle) -> np.ndarray:
    n = int(rng.integers(style.n_colours[0], style.n_colours[1] + 1))
    idx = rng.choice(len(style.palette), size=n, replace=n > len(style.palette))
    colours = np.array([style.palette[i] for i in idx], np.float32)
    colours += rng.normal(0, 10, colours.shape)
    fields = np.stack([smooth_noise(rng, CANON, int(rng.integers(3, 7))) for _ in range(n)], -1)
    sharp = 6.0 if n > 2 else 3.0
    weights = np.exp(sharp * fields)
    weights /= weights.sum(-1, keepdims=True)
    return (weights[..., None] * colours).sum(-2)  # no BLAS: the same bits in any process, any thread count


def _network(rng: np.random.Generator, style: ClassStyle) -> np.ndarray:
    strength = rng.uniform(*style.network)
    if strength < 0.02:
        return np.zeros((CANON, CANON), np.float32)
    regular = rng.uniform(*style.network_regularity)
    freq = rng.uniform(0.18, 0.3)
    ax = np.arange(CANON, dtype=np.float32)
    x, y = np.meshgrid(ax, ax)
    warp = (1 - regular) * 25 * (smooth_noise(rng, CANON, 10) - 0.5)
    grid = np.abs(np.sin(freq * (x + warp))) * np.abs(np.sin(freq * (y - warp)))
    holes = (grid > 0.35).astype(np.float32)
    return strength * (1 - holes) * (0.6 + 0.8 * smooth_noise(rng, CANON, 6))


def _ridges(rng: np.random.Generator, strength: float) -> np.ndarray:
    if strength <= 0:
        return np.zeros((CANON, CANON), np.float32)
    field = smooth_noise(rng, CANON, 8)  # coarse folds: still visible at 32-64 px
    return strength * rng.uniform(0.7, 1.2) * (np.abs(np.sin(field * 24)) < 0.3).astype(np.float32)


def _vessels(rng: np.random.Generator, kind: str, alpha: np.ndarray) -> np.ndarray:
    layer = np.zeros((CANON, CANON), np.float32)
    if kind == "arborizing":
        for _ in range(int(rng.integers(2, 6))):
            p = np.array([CANON / 2, CANON / 2]) + rng.normal(0, CANON / 8, 2)
            angle = rng.uniform(0, 2 * np.pi)
            for depth in range(int(rng.integers(4, 8))):
                step = rng.uniform(8, 22)
                angle += rng.normal(0, 0.6)
                q = p + step * np.array([np.cos(angle), np.sin(angle)])
                width = max(3, 9 - depth)  # thick enough to survive downscaling to 64 px
                cv2.line(layer, tuple(int(v) for v in p), tuple(int(v) for v in q), 1.0, width, cv2.LINE_AA)
                if rng.random() < 0.4:
                    b = q + rng.uniform(6, 14) * np.array([np.cos(angle + 1.1), np.sin(angle + 1.1)])
                    cv2.line(layer, tuple(int(v) for v in q), tuple(int(v) for v in b), 1.0, 3, cv2.LINE_AA)
                p = q
    elif kind == "dotted":
        for _ in range(int(rng.integers(15, 60))):
            c = rng.normal(CANON / 2, CANON / 7, 2)
            cv2.circle(layer, (int(c[0]), int(c[1])), int(rng.integers(3, 6)), 1.0, -1, cv2.LINE_AA)
    return layer * (alpha > 0.3)


def render_lesion(rng: np.random.Generator, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Render one lesion of class ``label``: (colour float32 HxWx3 in 0..255, alpha HxW in 0..1)."""
    style = STYLES[label]
    alpha = lesion_alpha(rng, style)
    colour = _colour_field(rng, style)
    dark = _network(rng, style) + _ridges(rng, style.ridges)
    colour *= (1 - 0.55 * np.clip(dark, 0, 1))[..., None]
    if style.scale > 0:
        dist, _ = _polar_grid(CANON)
        blob = np.exp(-(dist / rng.uniform(0.25, 0.5)) ** 2) * style.scale
        blob *= 0.6 + 0.8 * smooth_noise(rng, CANON, 12)
        scale_rgb = np.array([235, 225, 190], np.float32)
        colour = colour * (1 - blob[..., None]) + scale_rgb * blob[..., None]
    vessels = _vessels(rng, style.vessels, alpha)
    vessel_rgb = np.array([175, 30, 40], np.float32)
    colour = colour * (1 - vessels[..., None]) + vessel_rgb * vessels[..., None]
    alpha = alpha * (1 - style.translucency * rng.uniform(0.5, 1.0))
    alpha = np.maximum(alpha, vessels * 0.9)
    return np.clip(colour, 0, 255).astype(np.float32), alpha.astype(np.float32)


@dataclass(frozen=True)
class Pose:
    """How one photograph sees a lesion: rotation, zoom, offset and lighting."""

    angle_deg: float
    zoom: float
    offset: tuple[float, float]
    gain: float
    warmth: float

    @classmethod
    def draw(cls, rng: np.random.Generator, first: bool) -> "Pose":
        """A pose; the first photograph of a lesion is near-canonical, later ones vary more."""
        spread = 0.3 if first else 1.0
        return cls(float(rng.uniform(0, 360)), float(np.exp(rng.normal(0, 0.15 * spread))),
                   (float(rng.normal(0, 0.04 * spread)), float(rng.normal(0, 0.04 * spread))),
                   float(np.exp(rng.normal(0, 0.08 * spread))), float(rng.normal(0, 0.04 * spread)))


def place_lesion(colour: np.ndarray, alpha: np.ndarray, pose: Pose, radius_px: float,
                 out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp the canonical lesion into an output frame of ``out_hw`` with ``pose``."""
    h, w = out_hw
    scale = radius_px * pose.zoom / (CANON / 3.2)
    mat = cv2.getRotationMatrix2D((CANON / 2, CANON / 2), pose.angle_deg, scale)
    mat[0, 2] += w / 2 - CANON / 2 + pose.offset[0] * w
    mat[1, 2] += h / 2 - CANON / 2 + pose.offset[1] * h
    out_c = cv2.warpAffine(colour, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out_a = cv2.warpAffine(alpha, mat, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out_c, out_a


def skin_background(rng: np.random.Generator, tone: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Skin of RGB ``tone`` with low-frequency mottling and fine grain, float32 0..255."""
    h, w = out_hw
    side = max(h, w)
    mottle = smooth_noise(rng, side, 6)[:h, :w] - 0.5
    grain = rng.normal(0, 3.0, (h, w)).astype(np.float32)
    skin = tone[None, None, :] * (1 + 0.12 * mottle[..., None]) + grain[..., None]
    return skin.astype(np.float32)


def draw_skin_tone(rng: np.random.Generator) -> np.ndarray:
    """An RGB skin tone from very light to dark (dermoscopy-lit), mostly light as in HAM10000."""
    light = np.array([235, 190, 170], np.float32)
    dark = np.array([120, 80, 60], np.float32)
    t = float(np.clip(rng.beta(1.5, 5.0), 0, 1))
    return light * (1 - t) + dark * t + rng.normal(0, 6, 3).astype(np.float32)
