"""Artifact-removal and normalisation steps. Each takes an RGB uint8 image and explicit parameters.

Kernel sizes and radii are given in pixels at a 450 px short side (HAM10000's 600x450) and scaled
linearly to the image at hand, so one preset works for the phantom and for real data alike.
"""
from __future__ import annotations

import cv2
import numpy as np

REFERENCE_SHORT_SIDE = 450
INPAINT = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
KERNEL_SHAPES = {"cross": cv2.MORPH_CROSS, "rect": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE}


def scaled(px: float, image: np.ndarray, odd: bool = False, minimum: int = 1) -> int:
    """``px`` (defined at a 450 px short side) scaled to ``image``; optionally forced odd."""
    value = max(minimum, int(round(px * min(image.shape[:2]) / REFERENCE_SHORT_SIDE)))
    return value + 1 if odd and value % 2 == 0 else value


def _choice(table: dict, key: str, what: str):
    if key not in table:
        raise ValueError(f"{what} {key!r} unknown; use one of {', '.join(table)}")
    return table[key]


def inpaint(image: np.ndarray, mask: np.ndarray, radius: int, method: str, max_side: int = 0) -> np.ndarray:
    """cv2.inpaint; with ``max_side`` large regions are filled at reduced scale, only masked pixels replaced."""
    if not mask.any():
        return image
    flag = _choice(INPAINT, method, "inpaint method")
    h, w = mask.shape
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        small = cv2.resize(image, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask, small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        filled = cv2.resize(cv2.inpaint(small, small_mask, max(1, int(radius * f)), flag), (w, h),
                            interpolation=cv2.INTER_LINEAR)
        out = image.copy()
        out[mask > 0] = filled[mask > 0]
        return out
    return cv2.inpaint(image, mask, radius, flag)


def hair_mask(image: np.ndarray, kernel_size: int = 17, kernel_shape: str = "cross", blur: int = 3,
              threshold: int = 10, dilate: int = 1) -> np.ndarray:
    """DullRazor's hair mask: grey -> black-hat (cross kernel) -> blur -> threshold (-> dilate)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    k = scaled(kernel_size, image, odd=True, minimum=3)
    kernel = cv2.getStructuringElement(_choice(KERNEL_SHAPES, kernel_shape, "kernel_shape"), (k, k))
    hat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel)
    if blur > 1:
        b = blur if blur % 2 else blur + 1
        hat = cv2.GaussianBlur(hat, (b, b), 0)
    mask = (hat > threshold).astype(np.uint8) * 255
    if dilate > 0:
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=int(dilate))
    return mask


def dullrazor(image: np.ndarray, kernel_size: int = 17, kernel_shape: str = "cross", blur: int = 3,
              threshold: int = 10, dilate: int = 1, inpaint_radius: int = 6, method: str = "telea") -> np.ndarray:
    """Hair removal: DullRazor mask, then inpainting (defaults: 17x17 cross black-hat as in the Kaggle
    ISIC variant, blur 3 and radius 6 Telea as in the widely copied 9x9 version)."""
    mask = hair_mask(image, kernel_size, kernel_shape, blur, threshold, dilate)
    return inpaint(image, mask, scaled(inpaint_radius, image), method)


def ruler_mask(image: np.ndarray, kernel_size: int = 9, threshold: int = 30, border_fraction: float = 0.2,
               min_length: int = 8, min_aspect: float = 2.5) -> np.ndarray:
    """Ruler ticks: thin high-contrast (dark or light) straight strokes near the image border."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    k = scaled(kernel_size, image, odd=True, minimum=3)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    hat = np.maximum(cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel), cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel))
    strokes = (hat > threshold).astype(np.uint8)
    h, w = grey.shape
    bx, by = int(border_fraction * w), int(border_fraction * h)
    inner = np.zeros_like(strokes)
    inner[by:h - by, bx:w - bx] = 1
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    mask = np.zeros_like(strokes)
    min_len = scaled(min_length, image, minimum=3)
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        long_side, short_side = max(bw, bh), max(1, min(bw, bh))
        comp = labels == i
        if long_side >= min_len and long_side / short_side >= min_aspect and not (comp & (inner > 0)).any():
            mask[comp] = 255
    return cv2.dilate(mask, np.ones((3, 3), np.uint8))


def ruler_removal(image: np.ndarray, kernel_size: int = 9, threshold: int = 30, border_fraction: float = 0.2,
                  min_length: int = 8, min_aspect: float = 2.5, inpaint_radius: int = 3,
                  method: str = "telea") -> np.ndarray:
    """Remove ruler tick marks near the border by inpainting them."""
    mask = ruler_mask(image, kernel_size, threshold, border_fraction, min_length, min_aspect)
    return inpaint(image, mask, scaled(inpaint_radius, image), method)


def dark_corner_mask(image: np.ndarray, threshold: int = 80, min_area_fraction: float = 0.002,
                     grow: int = 30) -> np.ndarray:
    """Dark-corner (vignette) mask: dark regions connected to an image corner."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    dark = (grey < threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    h, w = grey.shape
    corners = {labels[0, 0], labels[0, w - 1], labels[h - 1, 0], labels[h - 1, w - 1]} - {0}
    mask = np.zeros((h, w), np.uint8)
    for i in corners:
        if stats[i, cv2.CC_STAT_AREA] >= min_area_fraction * h * w:
            mask[labels == i] = 255
    if not mask.any():
        return mask
    k = scaled(grow, image, odd=True, minimum=3)  # cover the soft rim of the field of view
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def dark_corners(image: np.ndarray, threshold: int = 80, min_area_fraction: float = 0.002, grow: int = 30,
                 mode: str = "inpaint", inpaint_radius: int = 10, method: str = "ns") -> np.ndarray:
    """Dark-corner handling: ``inpaint`` the corners (at reduced scale) or ``mask`` them with the skin median."""
    mask = dark_corner_mask(image, threshold, min_area_fraction, grow)
    if not mask.any():
        return image
    if mask.mean() / 255 > 0.9:
        raise ValueError(f"dark-corner mask covers {mask.mean() / 2.55:.0f}% of the image; "
                         "is the image black or badly under-exposed?")
    if mode == "mask":
        out = image.copy()
        out[mask > 0] = np.median(image[mask == 0], axis=0).astype(np.uint8)
        return out
    if mode != "inpaint":
        raise ValueError(f"mode {mode!r} unknown; use inpaint or mask")
    return inpaint(image, mask, scaled(inpaint_radius, image), method, max_side=160)


def specular_mask(image: np.ndarray, s_max: int = 60, v_min: int = 230, max_area_fraction: float = 0.05) -> np.ndarray:
    """Specular highlights: low saturation, high value (HSV); empty when implausibly large."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 1] < s_max) & (hsv[..., 2] > v_min)).astype(np.uint8) * 255
    if mask.mean() / 255 > max_area_fraction:
        return np.zeros_like(mask)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8))


def specular_removal(image: np.ndarray, s_max: int = 60, v_min: int = 230, max_area_fraction: float = 0.05,
                     inpaint_radius: int = 3, method: str = "telea") -> np.ndarray:
    """Inpaint specular highlights (optional step; off in the default advanced preset)."""
    mask = specular_mask(image, s_max, v_min, max_area_fraction)
    return inpaint(image, mask, scaled(inpaint_radius, image), method)


def shades_of_gray(image: np.ndarray, p: float = 6.0, gamma: float = 0.0) -> np.ndarray:
    """Shades-of-Gray colour constancy (Minkowski p-norm illuminant), clipped to 0..255 before uint8."""
    img = image.astype(np.float64)
    if gamma:
        img = 255.0 * (img / 255.0) ** (1.0 / gamma)
    illum = np.power(np.mean(np.power(img, p), axis=(0, 1)), 1.0 / p)
    illum = illum / max(np.linalg.norm(illum), 1e-9)
    out = img / (illum * np.sqrt(3.0) + 1e-9)
    return np.clip(out, 0, 255).astype(np.uint8)
