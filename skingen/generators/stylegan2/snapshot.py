"""Network snapshots: G_ema weights as safetensors + ``network.json``; loading never unpickles."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ...atomic import atomic_path, write_json
from ...errors import UserError
from ..common import save_grid
from .networks import Generator, NetworkConfig


def _save_weights(module: torch.nn.Module, path: Path) -> None:
    import safetensors.torch

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, str(tmp))


def save_snapshot(G: Generator, folder: Path, meta: dict, grid_png: Path | None = None, grid_images: int = 0,
                  psi: float = 0.8, seed: int = 0, D: torch.nn.Module | None = None,
                  class_index: int | None = None) -> None:
    """Write ``folder/network.safetensors`` (G_ema), ``discriminator.safetensors`` (for transfer) and
    ``network.json`` (architecture, step, ...), and a sample grid."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_weights(G, folder / "network.safetensors")
    if D is not None:
        _save_weights(D, folder / "discriminator.safetensors")
    write_json(folder / "network.json", {"network": G.config_dict(), **meta})
    if grid_png is not None and grid_images:
        images = generate(G, np.arange(grid_images) + seed * 100_000, psi=psi, class_index=class_index)
        save_grid(images, grid_png)


def load_generator(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, dict]:
    """The snapshot's generator (eval mode) and its metadata."""
    import safetensors.torch

    folder = Path(folder)
    meta_path, weights = folder / "network.json", folder / "network.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder}: no StyleGAN2 snapshot (network.json + network.safetensors); train the cell first")
    meta = json.loads(meta_path.read_text())
    G = Generator(NetworkConfig(**meta["network"]))
    G.load_state_dict(safetensors.torch.load_file(str(weights)))
    return G.to(device).eval().requires_grad_(False), meta


def load_for_transfer(folder: str | Path, G: torch.nn.Module, D: torch.nn.Module) -> dict:
    """Start a run from a snapshot: G (and D, when saved) take its weights; shapes must match exactly."""
    import safetensors.torch

    folder = Path(folder)
    weights = folder / "network.safetensors"
    if not weights.is_file():
        raise UserError(f"init_from {folder}: no network.safetensors; give a StyleGAN2 cell's snapshot/ folder")
    meta = json.loads((folder / "network.json").read_text())
    pairs = [(G, weights)] + ([(D, folder / "discriminator.safetensors")]
                              if (folder / "discriminator.safetensors").is_file() else [])
    for module, path in pairs:
        try:
            module.load_state_dict(safetensors.torch.load_file(str(path)))
        except RuntimeError as exc:
            raise UserError(f"init_from {folder}: {path.name} does not fit this network ({str(exc).splitlines()[1].strip()}"
                            f"); use the same preset, resolution and conditioning ({meta['network']})") from None
    return meta


@torch.no_grad()
def generate(G: Generator, seeds, psi: float = 0.8, class_index: int | None = None, batch: int = 32,
             device: str | torch.device | None = None) -> np.ndarray:
    """uint8 images (N, R, R, 3), one per seed (z from that seed), with truncation ``psi``; constant noise."""
    dev = torch.device(device) if device else next(G.parameters()).device
    out = []
    seeds = list(seeds)
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        z = torch.stack([torch.randn(G.cfg.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in chunk]).to(dev)
        c = None
        if G.cfg.c_dim:
            if class_index is None:
                raise UserError("this generator is class-conditional: give the class to sample")
            c = torch.nn.functional.one_hot(torch.full((len(chunk),), class_index), G.cfg.c_dim).float().to(dev)
        img = G(z, c, psi=psi, noise_mode="const")
        out.append((img.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)
