"""Sampling a trained DDPM (EMA snapshot): DDPM with N steps or DDIM with K steps, seeded, batched,
into a synthetic shard with provenance, or into a PNG grid."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..progress import progress
from .common import sample_classes, save_grid, write_synthetic_shard

SAMPLERS = ("ddpm", "ddim")


def _load(pipeline_dir: Path, sampler: str):
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

    if not (pipeline_dir / "unet" / "config.json").is_file():
        raise UserError(f"{pipeline_dir}: no trained DDPM snapshot (unet/); train the generator cell first")
    if sampler not in SAMPLERS:
        raise UserError(f"sampler {sampler!r} unknown; use ddpm or ddim")
    unet = UNet2DModel.from_pretrained(str(pipeline_dir), subfolder="unet")
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    return unet.eval(), cls.from_pretrained(str(pipeline_dir), subfolder="scheduler")


@torch.no_grad()
def sample_images(pipeline_dir: str | os.PathLike, n: int, sampler: str = "ddim", steps: int = 50, seed: int = 0,
                  batch: int = 32, class_index: int | None = None, desc: str = "sampling") -> np.ndarray:
    """``n`` images (n, R, R, 3) uint8; batch ``b`` uses seed ``seed + b`` (reproducible for a batch size)."""
    unet, sched = _load(Path(pipeline_dir), sampler)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet.to(device)
    sched.set_timesteps(steps)
    res = unet.config.sample_size
    out = []
    for b, start in enumerate(progress(range(0, n, batch), desc=desc, unit="batch")):
        size = min(batch, n - start)
        gen = torch.Generator().manual_seed(seed + b)
        x = torch.randn((size, 3, res, res), generator=gen).to(device)
        labels = None if class_index is None else torch.full((size,), class_index, device=device)
        for t in sched.timesteps:
            eps = unet(x, t, class_labels=labels).sample
            x = sched.step(eps, t, x, generator=gen).prev_sample if sampler == "ddpm" else sched.step(eps, t, x).prev_sample
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, res, res, 3), np.uint8)


def sample_grid(pipeline_dir: Path, out: Path, n: int = 16, steps: int = 25, seed: int = 0,
                class_index: int | None = None) -> Path:
    """A square-ish PNG grid of ``n`` DDIM samples."""
    return save_grid(sample_images(pipeline_dir, n, "ddim", steps, seed, batch=n, class_index=class_index,
                                   desc="grid"), out)


def sample_to_shard(cell_dir: str | os.PathLike, out_shard: str | os.PathLike, n: int, label: str,
                    image_size: int, sampler: str = "ddim", steps: int = 50, seed: int = 0, batch: int = 32,
                    conditional: bool = False, generator_cell: str = "", extra_attrs: dict | None = None) -> Path:
    """Sample ``n`` images of class ``label`` from a DDPM cell into a synthetic shard (DESIGN schema)."""
    cell_dir = Path(cell_dir)
    snapshot = json.loads((cell_dir / "pipeline" / "snapshot.json").read_text())
    names = sample_classes(cell_dir, label, snapshot.get("class_names"), extra_attrs, conditional)
    images = sample_images(cell_dir / "pipeline", n, sampler, steps, seed, batch,
                           names.index(label) if conditional else None)
    attrs = {"synthetic": True, "generator": "ddpm", "generator_cell": generator_cell or str(cell_dir),
             "checkpoint_step": snapshot["step"], "ema": snapshot["ema"], "sampler": sampler, "sampling_steps": steps,
             "sampling_seed": seed, "synthetic_class": label, "conditional": conditional, **(extra_attrs or {}),
             "class_names": names}
    return write_synthetic_shard(out_shard, images, label, image_size, attrs, f"SYN_ddpm_{seed}", "synthetic:ddpm", n)
