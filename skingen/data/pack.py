"""Pack a split into HDF5 shards ``DIR/{train,val,test}.h5`` through a preprocessing pipeline."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import write_csv, write_json
from ..errors import BadImage, UserError
from ..parallel import process_pool
from ..preprocess import Pipeline, get_pipeline
from .classes import ClassSet, load_class_set
from .images import load_rgb
from .shards import ShardWriter
from .split import SPLITS
from .tables import read_table

log = logging.getLogger(__name__)


def _prepare(args: tuple[str, Pipeline, int]) -> tuple[np.ndarray | None, str]:
    path, pipeline, size = args
    try:
        return pipeline(load_rgb(path), size), ""
    except BadImage as exc:
        return None, str(exc)


def _images(rows: list[dict], pipeline: Pipeline, size: int, workers: int, desc: str):
    jobs = [(r["path"], pipeline, size) for r in rows]
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=None)
    if workers > 1 and len(jobs) > 32:
        with process_pool(workers) as pool:
            for res in pool.map(_prepare, jobs, chunksize=16):
                bar.update()
                yield res
    else:
        for job in jobs:
            bar.update()
            yield _prepare(job)
    bar.close()


def read_split(path: Path, class_set: ClassSet | None = None) -> list[dict]:
    """Rows of a split.csv with known splits and labels of the class set."""
    class_set = load_class_set(class_set)
    if not path.is_file():
        raise UserError(f"{path}: no such split file; run 'skingen data split' first")
    _, rows = read_table(path, ("image_id", "lesion_id", "label", "split", "path"))
    for i, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise UserError(f"{path} line {i}: split {row['split']!r} invalid; re-run 'skingen data split'")
        if row["label"] not in class_set.index:
            raise UserError(f"{path} line {i}: label {row['label']!r} is not one of {', '.join(class_set.classes)} "
                            f"(class set {class_set.name}); pass the --classes it was split with")
    return rows


def pack(split_csv: str | os.PathLike, out: str | os.PathLike, size: int, pipeline: str | os.PathLike = "basic",
         workers: int = 1, classes: str | os.PathLike | dict | ClassSet | None = None) -> dict[str, Path]:
    """Write one shard per split; unreadable images go to ``out/quarantine.csv``. Returns the shards.

    Labels index the set's classes that have images (a class the split dropped has no index); the
    shards' ``class_names`` attribute lists them."""
    split_csv, out = Path(split_csv), Path(out)
    if size < 8:
        raise UserError(f"--size must be at least 8 px (got {size})")
    pipe = get_pipeline(pipeline)
    class_set = load_class_set(classes)
    rows = read_split(split_csv, class_set)
    names = [c for c in class_set.classes if any(r["label"] == c for r in rows)]
    index = {c: i for i, c in enumerate(names)}
    split_hash = hashlib.sha256(split_csv.read_bytes()).hexdigest()
    shards, quarantine, counts = {}, [], {}
    for split in SPLITS:
        sub = [r for r in rows if r["split"] == split]
        attrs = {"split": split, "split_sha256": split_hash, "split_file": str(split_csv.resolve()),
                 "class_names": names, "class_set": class_set.name}
        with ShardWriter(out / f"{split}.h5", size, pipe.name, pipe.record(), attrs, capacity=len(sub)) as w:
            for row, (image, reason) in zip(sub, _images(sub, pipe, size, workers, f"pack {split}")):
                if image is None:
                    quarantine.append({"source": row.get("source", ""), "image_id": row["image_id"],
                                       "path": row["path"], "reason": reason})
                    continue
                w.add(image, index[row["label"]], row["image_id"], row["lesion_id"], row.get("source", ""))
            counts[split] = w.n
        shards[split] = out / f"{split}.h5"
    write_csv(out / "quarantine.csv", ("source", "image_id", "path", "reason"), quarantine)
    write_json(out / "pack.json", {"pipeline": pipe.record(), "image_size": size, "counts": counts, "classes": names,
                                   "quarantined": len(quarantine), "split_sha256": split_hash})
    log.info("pack: %s images into %s (%d quarantined)", counts, out, len(quarantine))
    return shards
