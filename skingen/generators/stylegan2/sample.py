"""Sample a trained StyleGAN2-ADA cell into a synthetic shard (truncation psi, seeds, batches)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...progress import progress
from ..common import sample_classes, write_synthetic_shard
from .snapshot import generate, load_generator


def sample_to_shard(cell_dir: str | os.PathLike, out_shard: str | os.PathLike, n: int, label: str, image_size: int,
                    psi: float = 0.8, seed: int = 0, batch: int = 32, generator_cell: str = "",
                    extra_attrs: dict | None = None) -> Path:
    """``n`` images of class ``label`` from the cell's G_ema snapshot into a synthetic shard with provenance."""
    G, meta = load_generator(Path(cell_dir) / "snapshot")
    names = sample_classes(Path(cell_dir), label, meta.get("class_names"), extra_attrs, bool(G.cfg.c_dim))
    trained_on = meta["config"]["classes"]
    if not G.cfg.c_dim and label not in trained_on:
        raise UserError(f"{cell_dir}: unconditional generator trained on {', '.join(trained_on)}, not {label}")
    attrs = {"synthetic": True, "generator": "stylegan2_ada", "generator_cell": generator_cell or str(cell_dir),
             "checkpoint_step": meta["step"], "kimg": meta["kimg"], "ema": True, "truncation_psi": psi,
             "sampling_seed": seed, "synthetic_class": label, "conditional": bool(G.cfg.c_dim),
             "ada_p": meta["ada_p"], **(extra_attrs or {}), "class_names": names}
    class_index = names.index(label) if G.cfg.c_dim else None
    seeds = np.arange(n) + seed * 1_000_000  # one z seed per image

    def images():
        for start in progress(range(0, n, batch), desc=f"stylegan2 sample {label}", unit="batch", leave=False):
            yield from generate(G, seeds[start:start + batch], psi, class_index, batch)
    return write_synthetic_shard(out_shard, images(), label, image_size, attrs, f"SYN_stylegan2_{seed}",
                                 "synthetic:stylegan2_ada", n)
