"""Public API: a trained (or imported) StyleGAN2-ADA snapshot as plain PyTorch modules.

    from skingen.generators.stylegan2 import load_generator, load_discriminator
    G = load_generator("results/demo/train_gen/<cell>/snapshot")
    img = G(z, c, truncation_psi=0.7, noise_mode="const")   # (N, 3, R, R), raw, roughly [-1, 1]
    ws = G.mapping(z, c, truncation_psi=0.7); img = G.synthesis(ws, noise_mode="const")
    logits = load_discriminator(snapshot_dir)(img, c)      # (N, 1)

``G.z_dim`` and ``G.c_dim`` give the input sizes; ``c`` is a one-hot (N, c_dim) tensor, or None when
``c_dim`` is 0. The modules are in eval mode with gradients off.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import UserError
from .networks import Discriminator, Generator, NetworkConfig
from .snapshot import load_generator as _load_generator_and_meta


def load_generator(snapshot_dir: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The snapshot's generator (G_ema)."""
    G, _ = _load_generator_and_meta(snapshot_dir, device)
    return G


def load_discriminator(snapshot_dir: str | Path, device: str | torch.device = "cpu") -> Discriminator:
    """The snapshot's discriminator (``discriminator.safetensors`` beside ``network.json``)."""
    import safetensors.torch

    folder = Path(snapshot_dir)
    meta_path, weights = folder / "network.json", folder / "discriminator.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder}: no StyleGAN2 discriminator (network.json + discriminator.safetensors)")
    D = Discriminator(NetworkConfig(**json.loads(meta_path.read_text())["network"]))
    D.load_state_dict(safetensors.torch.load_file(str(weights)))
    return D.to(device).eval().requires_grad_(False)
