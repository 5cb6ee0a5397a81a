"""One feature pass per image set, cached in an HDF5 features file and reused by every metric.

An image set is a shard, optionally narrowed to one class. Its features file (DESIGN schema) holds
``image_id`` and one dataset per extractor, (N, D) float32, plus ``<extractor>_logits`` where the
extractor has logits; each dataset's attrs name the extractor, its weights sha256 and the image set
id, so a stale cache (other images, other weights) is recomputed, never reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from ..data.classes import shard_classes
from ..data.shards import STR, ShardReader
from ..errors import UserError
from ..progress import progress
from .extractors import Extractor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSet:
    """The images of ``shard`` (all, or only class ``label``)."""

    shard: Path
    label: str | None = None

    def indices(self, reader: ShardReader) -> np.ndarray:
        """Row indices of the set in the shard."""
        if self.label is None:
            return np.arange(len(reader))
        names = shard_classes(reader)
        if self.label not in names:
            raise UserError(f"class {self.label!r} unknown; use one of {', '.join(names)}")
        return np.flatnonzero(reader.labels == names.index(self.label))

    def set_id(self, reader: ShardReader, idx: np.ndarray) -> str:
        """Content id: pipeline, size, class and the image ids selected."""
        ident = {"pipeline": reader.attrs.get("pipeline"), "params": reader.attrs.get("pipeline_params"),
                 "size": reader.attrs.get("image_size"), "label": self.label,
                 "ids": [reader.image_ids[i] for i in idx]}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """Readable name, e.g. ``train.h5[MEL]``."""
        return f"{self.shard.name}[{self.label or 'all'}]"


@dataclass
class Features:
    """Cached features of one image set under one extractor."""

    features: np.ndarray
    logits: np.ndarray | None
    image_ids: list[str]
    indices: np.ndarray
    set_id: str
    extractor: str
    weights_sha256: str

    def __len__(self) -> int:
        return len(self.features)


def _batches(reader: ShardReader, idx: np.ndarray, extractor: Extractor, batch_size: int):
    """Resized float batches. On a GPU the next batch is prepared in a thread while the current one runs;
    on a CPU the forward pass already uses every core, and a third thread only stalls its OpenMP workers."""
    def prepare(chunk: np.ndarray) -> torch.Tensor:
        arr = np.stack([extractor.resize(reader.image(int(i))) for i in chunk])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    chunks = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    if extractor.device.type == "cpu":
        yield from (prepare(c) for c in chunks)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(prepare, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            batch = pending.result()
            pending = pool.submit(prepare, chunks[k + 1]) if k + 1 < len(chunks) else None
            yield batch


def _read_cache(path: Path, extractor: Extractor, set_id: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    if not path.is_file():
        return None
    with h5py.File(path, "r") as h5:
        ds = h5.get(extractor.name)
        if ds is None or ds.attrs.get("image_set") != set_id or ds.attrs.get("weights_sha256") != extractor.weights_sha256:
            return None
        logits = h5.get(f"{extractor.name}_logits")
        return ds[:], None if logits is None else logits[:]


def _write_cache(path: Path, extractor: Extractor, set_id: str, ids: list[str], feats: np.ndarray,
                 logits: np.ndarray | None, describe: str) -> None:
    """Add this extractor's datasets to the features file atomically (copy, edit, rename)."""
    with atomic_path(path) as tmp:
        if path.is_file():
            shutil.copyfile(path, tmp)
        _add_datasets(tmp, path.is_file(), extractor, set_id, ids, feats, logits, describe)


def _add_datasets(tmp: Path, existing: bool, extractor: Extractor, set_id: str, ids: list[str], feats: np.ndarray,
                  logits: np.ndarray | None, describe: str) -> None:
    with h5py.File(tmp, "a" if existing else "w") as h5:
        if "image_id" in h5 and h5.attrs.get("image_set") != set_id:
            for key in list(h5.keys()):
                del h5[key]
        h5.attrs["image_set"] = set_id
        h5.attrs["description"] = describe
        if "image_id" not in h5:
            h5.create_dataset("image_id", data=np.array(ids, dtype=object), dtype=STR)
        for key, data in ((extractor.name, feats), (f"{extractor.name}_logits", logits)):
            if key in h5:
                del h5[key]
            if data is None:
                continue
            ds = h5.create_dataset(key, data=data.astype(np.float32), fletcher32=True)  # a flipped chunk fails on read
            ds.attrs.update({"extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
                             "image_set": set_id, "implementation": extractor.implementation})


def extract_features(image_set: ImageSet, extractor: Extractor, cache: str | os.PathLike | None = None,
                     batch_size: int = 64) -> Features:
    """Features of ``image_set``: read from ``cache`` when it matches, else computed once and written there."""
    reader = ShardReader(image_set.shard)
    idx = image_set.indices(reader)
    if len(idx) == 0:
        raise UserError(f"{image_set.shard}: no images of class {image_set.label}; nothing to score")
    set_id = image_set.set_id(reader, idx)
    ids = [reader.image_ids[i] for i in idx]
    cache_path = Path(cache) if cache else None
    cached = _read_cache(cache_path, extractor, set_id) if cache_path else None
    if cached is not None:
        log.info("features of %s (%s) from cache %s", image_set.describe(), extractor.name, cache_path)
        return Features(cached[0], cached[1], ids, idx, set_id, extractor.name, extractor.weights_sha256)
    feats, logits = [], []
    bar = progress(total=len(idx), desc=f"features {image_set.describe()} [{extractor.name}]", unit="img", leave=False)
    for batch in _batches(reader, idx, extractor, batch_size):
        f, lg = extractor(batch)
        feats.append(f)
        if lg is not None:
            logits.append(lg)
        bar.update(len(batch))
    bar.close()
    reader.close()
    out = Features(np.concatenate(feats), np.concatenate(logits) if logits else None, ids, idx, set_id,
                   extractor.name, extractor.weights_sha256)
    if cache_path:
        _write_cache(cache_path, extractor, set_id, ids, out.features, out.logits, image_set.describe())
        log.info("features of %s (%s) cached in %s", image_set.describe(), extractor.name, cache_path)
    return out


def load_cached_features(path: str | os.PathLike, extractor: str) -> np.ndarray:
    """The ``extractor`` features stored in a features file (written by :func:`extract_features`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: features file missing; run the generative-metrics cell that writes it")
    with h5py.File(path, "r") as h5:
        if extractor not in h5:
            raise UserError(f"{path}: no {extractor!r} features (has {', '.join(k for k in h5 if k != 'image_id')}); "
                            "re-run its metrics with that extractor")
        return h5[extractor][:]
