"""DDPM training images: the train split's images of the chosen classes only (PROTOCOL rule 4)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.classes import shard_classes
from ..data.shards import ShardReader
from ..errors import UserError


def micro_batch(n: int, micro_size: int, seed: int, micro: int, rank: int = 0, world: int = 1) -> tuple[np.ndarray, slice]:
    """Micro-batch ``micro`` of shuffled epochs over ``n`` images (the example's shuffled DataLoader, no
    drop_last: an epoch's last batch is smaller): its global indices and this process's slice of them.
    Processes split each global batch, so together they train on what one process would."""
    per_epoch = -(-n // micro_size)
    epoch, k = divmod(micro, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    batch = order[k * micro_size:(k + 1) * micro_size]
    bounds = np.linspace(0, len(batch), world + 1).round().astype(int)
    return batch, slice(int(bounds[rank]), int(bounds[rank + 1]))


def process_share(batch_len: int, mine: slice, world: int) -> tuple[float, slice]:
    """The factor on this process's mean loss so that the gradient the processes average is the whole batch's
    mean (``world`` x its share of the batch: shares differ when the batch does not split evenly), and the slice
    it runs -- one image at factor 0 when its share is empty, so that it still takes part in the all-reduce."""
    weight = world * (mine.stop - mine.start) / batch_len
    return weight, (slice(0, 1) if mine.stop == mine.start else mine)


class TrainImages:
    """uint8 images (N, R, R, 3) of ``classes`` from a train shard, with their labels and ids."""

    def __init__(self, train_shard: str | Path, classes: tuple[str, ...], resolution: int, resize=None):
        reader = ShardReader(train_shard)
        if reader.attrs.get("split") not in (None, "train"):
            raise UserError(f"{train_shard}: split is {reader.attrs.get('split')!r}; generators train on the train split only")
        self.class_names = shard_classes(reader)  # label index order (conditional models' class count)
        unknown = [c for c in classes if c not in self.class_names]
        if unknown:
            raise UserError(f"classes {unknown} unknown; use names from {', '.join(self.class_names)}")
        wanted = {self.class_names.index(c) for c in classes}
        idx = [i for i, y in enumerate(reader.labels) if int(y) in wanted]
        if not idx:
            raise UserError(f"{train_shard}: no train images of {', '.join(classes)}")
        resize = resize or _resize
        self.images = np.stack([resize(reader.image(i), resolution) for i in idx])
        self.labels = torch.tensor([int(reader.labels[i]) for i in idx])
        self.image_ids = [reader.image_ids[i] for i in idx]
        self.source = str(reader.path)

    def __len__(self) -> int:
        return len(self.images)

    def ids_sha256(self) -> str:
        """Hash of the training image ids (recorded as provenance)."""
        return hashlib.sha256("\n".join(self.image_ids).encode()).hexdigest()

    def batch(self, indices: np.ndarray, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1], NCHW, randomly flipped (torch RNG: saved with the training state), and labels."""
        x = torch.from_numpy(self.images[indices]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if flip:
            mask = torch.rand(len(indices)) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        return x, self.labels[indices]


def _resize(image: np.ndarray, resolution: int) -> np.ndarray:
    if image.shape[0] == resolution:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > resolution else cv2.INTER_CUBIC
    return cv2.resize(image, (resolution, resolution), interpolation=interp)
