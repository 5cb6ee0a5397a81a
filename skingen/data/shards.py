"""HDF5 shards (DESIGN contract): atomic single-writer files, lazy per-worker readers, a torch Dataset.

Schema: ``images`` uint8 (N, H, W, 3), one chunk per image, uncompressed by default (fastest
reads; ``compression="lzf"`` is the lossless space saver); ``labels`` int64; both with HDF5's
Fletcher-32 checksum per chunk (``checksum``), so a chunk changed on disk fails when read instead of
training a classifier on corrupted pixels;
``image_id``, ``lesion_id``, ``source`` UTF-8 strings; attrs ``class_names``, ``pipeline``,
``pipeline_params`` (JSON), ``image_size``, ``skingen_version`` and any extra provenance.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
import torch
import torch.utils.data

from .. import __version__
from ..errors import DamagedFile, UserError
from .classes import CLASS_NAMES

STR = h5py.string_dtype("utf-8")


class ShardWriter:
    """Append images to a new shard; it appears at ``path`` only when ``close()`` succeeds.

    A lock file next to the target makes a second concurrent writer of the same shard fail fast.
    """

    def __init__(self, path: str | os.PathLike, image_size: int, pipeline: str = "basic",
                 pipeline_params: dict | None = None, attrs: dict | None = None, capacity: int = 0,
                 compression: str | None = None, checksum: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise UserError(f"{self.path}: another writer holds {self.lock}; wait for it, "
                            "or delete the lock if no writer is running") from None
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.size = image_size
        self.n = 0
        self.h5 = h5py.File(self.tmp, "w")
        cap = max(capacity, 1)
        self.images = self.h5.create_dataset("images", (cap, image_size, image_size, 3), np.uint8,
                                             maxshape=(None, image_size, image_size, 3),
                                             chunks=(1, image_size, image_size, 3), compression=compression,
                                             fletcher32=checksum)
        self.labels = self.h5.create_dataset("labels", (cap,), np.int64, maxshape=(None,), fletcher32=checksum)
        self.ids = {k: self.h5.create_dataset(k, (cap,), STR, maxshape=(None,))
                    for k in ("image_id", "lesion_id", "source")}
        meta = {"class_names": list(CLASS_NAMES), "pipeline": pipeline, "image_size": image_size,
                "pipeline_params": json.dumps(pipeline_params or {}, sort_keys=True),
                "skingen_version": __version__, **(attrs or {})}
        for key, value in meta.items():
            self.h5.attrs[key] = value

    def add(self, image: np.ndarray, label: int, image_id: str, lesion_id: str, source: str) -> None:
        """Append one (size, size, 3) uint8 image with its label and ids."""
        if image.shape != (self.size, self.size, 3) or image.dtype != np.uint8:
            raise ValueError(f"image {image_id}: expected ({self.size}, {self.size}, 3) uint8, got {image.shape} {image.dtype}")
        if self.n >= self.images.shape[0]:
            new = max(self.n * 2, 16)
            for ds in (self.images, self.labels, *self.ids.values()):
                ds.resize(new, axis=0)
        self.images[self.n] = image
        self.labels[self.n] = label
        for key, value in zip(("image_id", "lesion_id", "source"), (image_id, lesion_id, source)):
            self.ids[key][self.n] = value
        self.n += 1

    def close(self) -> Path:
        """Trim, flush and atomically rename the shard into place; release the lock."""
        try:
            for ds in (self.images, self.labels, *self.ids.values()):
                ds.resize(self.n, axis=0)
            self.h5.attrs["count"] = self.n
            self.h5.close()
            os.replace(self.tmp, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Discard the temporary file and release the lock (safe to call twice)."""
        try:
            self.h5.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.tmp.unlink(missing_ok=True)
        self.lock.unlink(missing_ok=True)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ShardReader:
    """Read-only view of one shard; the HDF5 handle opens lazily in each process and is never pickled."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such shard; run 'skingen data pack' first")
        self._h5: h5py.File | None = None
        self._images: h5py.Dataset | None = None
        self._pid = None
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise DamagedFile(self.path, str(exc).splitlines()[0], "re-create it ('skingen data pack' or the "
                              "command that wrote it)") from None
        with h5:
            if "images" not in h5 or "labels" not in h5:
                raise UserError(f"{self.path}: not a SkinGenBench shard (no images/labels); re-pack it")
            self.attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in h5.attrs.items()}
            self.labels = h5["labels"][:]
            self.image_ids = [s.decode() if isinstance(s, bytes) else s for s in h5["image_id"][:]]
            self.lesion_ids = [s.decode() if isinstance(s, bytes) else s for s in h5["lesion_id"][:]]

    def _dataset(self) -> h5py.Dataset:
        # Opened on first use in each process (DataLoader workers fork after construction).
        if self._images is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._images = self._h5["images"]
            self._pid = os.getpid()
        return self._images

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        """The i-th image, (H, W, 3) uint8."""
        return self._dataset()[i]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"] = state["_images"] = state["_pid"] = None
        return state

    def close(self) -> None:
        """Close the handle of this process, if open."""
        if self._h5 is not None:
            self._h5.close()
        self._h5 = self._images = None


class ShardDataset(torch.utils.data.Dataset):
    """A torch Dataset over one or more shards: items are (uint8 CHW tensor, or transform(HWC array), label)."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Callable | None = None):
        self.readers = [ShardReader(p) for p in paths]
        self.transform = transform
        self.offsets = np.cumsum([0] + [len(r) for r in self.readers])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def labels(self) -> np.ndarray:
        """All labels in dataset order."""
        return np.concatenate([r.labels for r in self.readers]) if self.readers else np.zeros(0, np.int64)

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        image = self.readers[k].image(index - int(self.offsets[k]))
        label = int(self.readers[k].labels[index - int(self.offsets[k])])
        if self.transform is not None:
            return self.transform(image), label
        return torch.from_numpy(image).permute(2, 0, 1), label  # CHW view; collate makes it contiguous
