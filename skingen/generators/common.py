"""What every generator writes the same way: synthetic shards, sample grids, per-rank parameter digests."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch

from ..atomic import atomic_path
from ..data.classes import CLASS_NAMES
from ..data.shards import ShardWriter
from ..errors import UserError


def sample_classes(cell_dir: Path, label: str, recorded: list[str] | None, extra_attrs: dict | None,
                   conditional: bool) -> list[str]:
    """The class names the synthetic shard's labels index: the caller's (a study passes its real shards'),
    else the ones the generator was trained with. A conditional generator's class input follows the names
    it was trained with, so a caller's different order is refused rather than silently relabelled."""
    names = list((extra_attrs or {}).get("class_names") or recorded or CLASS_NAMES)
    if label not in names:
        raise UserError(f"class {label!r} unknown; use one of {', '.join(names)}")
    if conditional and recorded and list(recorded) != names:
        raise UserError(f"{cell_dir}: conditional generator trained with classes {', '.join(recorded)}, asked to "
                        f"label by {', '.join(names)}; sample it for shards of its own class set")
    return names


def write_synthetic_shard(out_shard: str | os.PathLike, images: Iterable[np.ndarray], label: str, image_size: int,
                          attrs: dict, id_prefix: str, source: str, capacity: int = 0) -> Path:
    """Images of class ``label`` (resized to ``image_size`` when needed) into a synthetic shard with ``attrs``;
    ids are ``<id_prefix>_<index:06d>``; labels index ``attrs["class_names"]`` (the real shards' classes)."""
    names = list(attrs.get("class_names", CLASS_NAMES))
    if label not in names:
        raise UserError(f"class {label!r} unknown; use one of {', '.join(names)}")
    with ShardWriter(out_shard, image_size, pipeline="synthetic", attrs=attrs, capacity=capacity) as w:
        for i, img in enumerate(images):
            if img.shape[0] != image_size:
                img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA)
            name = f"{id_prefix}_{i:06d}"
            w.add(np.ascontiguousarray(img), names.index(label), name, name, source)
    return Path(out_shard)


def image_grid(images: np.ndarray) -> np.ndarray:
    """Tile (N, H, W, 3) images into a near-square grid."""
    n, h, w, _ = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return grid


def save_grid(images: np.ndarray, out: Path) -> Path:
    """A grid of ``images`` as a PNG, written atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_grid(images), cv2.COLOR_RGB2BGR))
    with atomic_path(out) as tmp:
        tmp.write_bytes(buf.tobytes())
    return out


def write_rank_digest(module: torch.nn.Module, out: Path, rank: int, params=None) -> None:
    """``out/ranks/rank<k>.sha256`` of the module's parameters, or of ``params`` (multi-process runs must agree)."""
    digest = hashlib.sha256()
    for param in (module.parameters() if params is None else params):
        digest.update(param.detach().float().cpu().numpy().tobytes())
    (out / "ranks").mkdir(exist_ok=True)
    (out / "ranks" / f"rank{rank}.sha256").write_text(digest.hexdigest())
