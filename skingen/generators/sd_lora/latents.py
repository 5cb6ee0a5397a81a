"""Training data for ``sd_lora``: the train shard's images at the base's resolution, their VAE posteriors (both
flips) and the class prompts' text embeddings, computed once and cached in an HDF5 file beside the image shards.

The example encodes every batch with the VAE and the text encoder, both frozen; their outputs depend only on
the image, the flip and the prompt, so a step needs only the posterior's mean and std (the latent is still drawn
from it each step, as the example's ``latent_dist.sample()``) and the prompt's embedding.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from ...atomic import atomic_path
from ...progress import progress
from ..ddpm_data import TrainImages
from .base import Base
from .config import SDLoRAConfig, class_prompt

log = logging.getLogger(__name__)
CACHE_VERSION = 2


def lanczos(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resize as the example's ``transforms.Resize(resolution)`` on a square PIL image (Lanczos)."""
    if image.shape[0] == resolution:
        return image
    return np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.LANCZOS))


def training_images(train_shard: Path, cfg: SDLoRAConfig) -> TrainImages:
    """The train split's images the LoRA learns: the target class, or every class with ``classes = "all"``."""
    from ...data.classes import shard_classes
    from ...data.shards import ShardReader

    reader = ShardReader(train_shard)
    names = shard_classes(reader)
    wanted = (cfg.target_class,) if cfg.classes == "target" else tuple(names)
    return TrainImages(train_shard, wanted, cfg.resolution, resize=lanczos)


@dataclass
class Encoded:
    """Posterior mean and std per image and flip (N, F, C, h, w), prompt per image, prompt embeddings."""

    mean: np.ndarray
    std: np.ndarray
    prompt_index: np.ndarray
    prompts: list[str]
    prompt_ids: np.ndarray
    text: np.ndarray
    path: str = ""
    channels_last: bool = False  # the VAE's output layout on this device (CPU kernels give channels-last)

    def posterior(self, idx: np.ndarray, flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of images ``idx`` with the given flips."""
        f = flip.long().numpy() if self.mean.shape[1] > 1 else np.zeros(len(idx), int)
        # in the layout the VAE hands its latents on: strides choose the UNet's kernels, and so the last bits
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return (torch.from_numpy(np.ascontiguousarray(self.mean[idx, f])).contiguous(memory_format=fmt),
                torch.from_numpy(np.ascontiguousarray(self.std[idx, f])).contiguous(memory_format=fmt))

    def embeddings(self, idx: np.ndarray) -> torch.Tensor:
        """Text embeddings of images ``idx``' prompts."""
        return torch.from_numpy(self.text[self.prompt_index[idx]])


def prompts_of(data: TrainImages, cfg: SDLoRAConfig) -> tuple[list[str], np.ndarray]:
    """The prompt per class present and each image's prompt index."""
    codes = sorted({data.class_names[int(y)] for y in data.labels}, key=data.class_names.index)
    prompts = [class_prompt(cfg.prompt_template, c) for c in codes]
    index = np.array([codes.index(data.class_names[int(y)]) for y in data.labels])
    return prompts, index


def token_ids(base: Base, prompts: list[str]) -> torch.Tensor:
    """Prompts tokenised as the example does (padded to the tokenizer's maximum length, truncated)."""
    tok = base.tokenizer
    return tok(prompts, max_length=tok.model_max_length, padding="max_length", truncation=True,
               return_tensors="pt").input_ids


@torch.no_grad()
def encode_text(base: Base, ids: torch.Tensor) -> torch.Tensor:
    """The text encoder's last hidden states for token ids."""
    device = next(base.text_encoder.parameters()).device
    return base.text_encoder(ids.to(device), return_dict=False)[0]


@torch.no_grad()
def encode_images(base: Base, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior's mean and std for images in [-1, 1] (NCHW)."""
    p = next(base.vae.parameters())
    # contiguous NCHW, as the example's collate makes it: a channels-last view picks other conv kernels
    dist = base.vae.encode(pixels.to(p.device, p.dtype).contiguous()).latent_dist
    return dist.mean, dist.std


def cache_key(base: Base, cfg: SDLoRAConfig, data: TrainImages, prompts: list[str], dtype: torch.dtype) -> str:
    """What the cache depends on: base, resolution, images, flips, prompts and the encoders' dtype."""
    pixels = hashlib.sha256(np.ascontiguousarray(data.images).tobytes()).hexdigest()  # re-packed images change it
    text = json.dumps([CACHE_VERSION, base.fingerprint, cfg.resolution, data.ids_sha256(), pixels, cfg.random_flip,
                       prompts, str(dtype)])
    return hashlib.sha256(text.encode()).hexdigest()


def encode_all(base: Base, data: TrainImages, cfg: SDLoRAConfig, batch: int = 8) -> Encoded:
    """Encode every image (and its mirror) and every prompt."""
    prompts, index = prompts_of(data, cfg)
    ids = token_ids(base, prompts)
    flips = (False, True) if cfg.random_flip else (False,)
    means, stds, layout = [], [], False
    for start in progress(range(0, len(data), batch), desc="sd_lora latents", unit="batch"):
        x, _ = data.batch(np.arange(start, min(len(data), start + batch)), False)
        per_flip = [encode_images(base, x.flip(3) if f else x) for f in flips]
        layout = per_flip[0][0].stride(1) == 1  # channels innermost: the VAE's output (and its samples) channels-last
        means.append(torch.stack([m for m, _ in per_flip], 1).float().cpu().numpy())
        stds.append(torch.stack([s for _, s in per_flip], 1).float().cpu().numpy())
    return Encoded(np.ascontiguousarray(np.concatenate(means)), np.ascontiguousarray(np.concatenate(stds)), index,
                   prompts, ids.numpy(), encode_text(base, ids).float().cpu().numpy(), channels_last=layout)


def cached_encoding(base: Base, data: TrainImages, cfg: SDLoRAConfig, train_shard: Path, fallback: Path,
                    dtype: torch.dtype) -> Encoded:
    """The encoding from ``<shards>/latents/`` (beside the image shards; the cell's folder when that is not
    writable), computed and written atomically when missing or stale."""
    prompts, _ = prompts_of(data, cfg)
    key = cache_key(base, cfg, data, prompts, dtype)
    for folder in (train_shard.parent / "latents", fallback / "latents"):
        path = folder / f"sd-{key[:20]}.h5"
        if path.is_file():
            log.info("sd_lora: latents and prompt embeddings from %s", path)
            return _read(path)
    enc = encode_all(base, data, cfg)
    for folder in (train_shard.parent / "latents", fallback / "latents"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / f"sd-{key[:20]}.h5", enc, key)
            enc.path = str(folder / f"sd-{key[:20]}.h5")
            log.info("sd_lora: latents and prompt embeddings cached in %s", enc.path)
            return enc
        except OSError:
            continue
    return enc


def _write(path: Path, enc: Encoded, key: str) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name in ("mean", "std", "prompt_index", "prompt_ids", "text"):
            h5.create_dataset(name, data=getattr(enc, name))
        h5.attrs["prompts"] = json.dumps(enc.prompts)
        h5.attrs["channels_last"] = enc.channels_last
        h5.attrs["key"] = key


def _read(path: Path) -> Encoded:
    with h5py.File(path, "r") as h5:
        arrays = {n: h5[n][()] for n in ("mean", "std", "prompt_index", "prompt_ids", "text")}
        prompts = json.loads(h5.attrs["prompts"])
        layout = bool(h5.attrs.get("channels_last", False))
    return Encoded(prompts=prompts, path=str(path), channels_last=layout, **arrays)
