"""Before/after panel: one row per artifact type; columns input, each pipeline, clean ground truth."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from ..data.images import load_rgb
from ..data.phantom_artifacts import MASK_BITS
from .basic import square_resize
from .registry import Pipeline

TILE = 160


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (TILE, 16), (0, 0, 0), -1)
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def pick_examples(rows: list[dict]) -> dict[str, str]:
    """For each artifact type, an image showing it (preferring one with the fewest other artifacts)."""
    examples = {}
    for name in MASK_BITS:
        having = [r for r in rows if name in r["artifacts"].split(";")]
        if having:
            examples[name] = min(having, key=lambda r: len(r["artifacts"].split(";")))["image_id"]
    return examples


def before_after_panel(root: Path, rows: list[dict], pipes: list[Pipeline], out: Path) -> Path:
    """Write the panel PNG atomically and return its path."""
    lines = []
    for artifact, image_id in pick_examples(rows).items():
        image = load_rgb(root / "images" / f"{image_id}.jpg")
        clean = load_rgb(root / "ground_truth" / f"{image_id}_clean.png")
        tiles = [_label(square_resize(image, TILE), f"{artifact}: input")]
        tiles += [_label(p(image, TILE), p.name) for p in pipes]
        tiles.append(_label(square_resize(clean, TILE), "clean (truth)"))
        lines.append(np.hstack(tiles))
    panel = np.vstack(lines) if lines else np.zeros((TILE, TILE, 3), np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out
