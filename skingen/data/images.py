"""Decode any supported image file to RGB uint8, or say precisely why it cannot be used.

Policy (documented in the README): 8-bit RGB is used as is; grayscale is replicated to three
channels; 16-bit images are scaled to 8 bit (value >> 8); RGBA with a fully opaque alpha drops
the alpha; RGBA with transparent pixels, zero-byte, corrupt and truncated files are rejected
with a :class:`BadImage` whose message becomes the quarantine reason.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BadImage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

Image.LOAD_TRUNCATED_IMAGES = False


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype in (np.uint16, np.int32, np.int64) or arr.max(initial=0) > 255:
        return np.clip(arr.astype(np.int64) >> 8, 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _decode_pil(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise BadImage("not a readable image (corrupt or unknown format)") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            raise BadImage("truncated image file") from None
        raise BadImage(f"corrupt image: {msg}") from None
    except (SyntaxError, ValueError) as exc:
        raise BadImage(f"corrupt image: {exc}") from None
    return img


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array or raise BadImage with the reason."""
    path = Path(path)
    if not path.is_file():
        raise BadImage("image file not found")
    if path.stat().st_size == 0:
        raise BadImage("zero-byte file")
    img = _decode_pil(path)
    mode = img.mode
    if mode in ("RGB",):
        arr = np.asarray(img)
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            raise BadImage("image has transparent pixels (alpha < 255); flatten it onto a background first")
        arr = rgba[..., :3]
    elif mode.startswith("I;16") or mode in ("I", "F"):
        arr = _to_uint8(np.asarray(img))
        arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
    elif mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(img.convert("RGB"))
    else:
        raise BadImage(f"unsupported image mode {mode!r}; convert it to 8-bit RGB")
    arr = _to_uint8(np.asarray(arr))
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 8:
        raise BadImage(f"unusable image shape {arr.shape}")
    return np.ascontiguousarray(arr)


def image_note(path: str | os.PathLike) -> str:
    """Return a short note on a conversion the loader will apply ('' for plain 8-bit RGB)."""
    try:
        with Image.open(path) as img:
            mode = img.mode
    except Exception:  # noqa: BLE001 - the decode step reports the real reason
        return ""
    if mode == "RGB":
        return ""
    if mode.startswith("I;16") or mode == "I":
        return "16-bit converted to 8-bit"
    if mode in ("L", "1"):
        return "grayscale replicated to RGB"
    if mode in ("RGBA", "LA", "PA"):
        return "opaque alpha dropped"
    return f"{mode} converted to RGB"
