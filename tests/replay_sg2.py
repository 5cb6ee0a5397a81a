"""The StyleGAN2-ADA replay's settings and random draws, shared by benchmarks/make_stylegan2_replay_fixture.py
(NVIDIA's code) and tests/test_stylegan2_replay.py (ours). Every draw is regenerated from a seed -- real
batches, the latents of each phase, and a tape of standard normals that serves the synthesis noise and the
path-length noise, in call order, to whichever implementation runs -- so the fixture stores none of them."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

PARITY = Path(__file__).resolve().parents[2] / "shared" / "reference" / "stylegan2-parity" / \
    "stylegan2_ada_parity_32px.safetensors"  # the networks' initial weights (the parity fixture's 'uncond')
SETTINGS = dict(batch=4, iterations=10, lr=0.0025, r1_gamma=0.5, pl_weight=2.0, pl_interval=4, r1_interval=16,
                ema_kimg=0.01, z_dim=64, resolution=32)
PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


def real_batch(iteration: int, dtype=np.float32) -> torch.Tensor:
    """The iteration's real images in [-1, 1] (both D phases see them); float32 (or float64 for the
    double-precision replay: the same draws, rounded to float32 either way)."""
    rng = np.random.default_rng([1, iteration])
    return torch.from_numpy(rng.uniform(-1, 1, (SETTINGS["batch"], 3, 32, 32)).astype(np.float32).astype(dtype))


def phase_latents(iteration: int, dtype=np.float32) -> torch.Tensor:
    """(4 phases, batch, z_dim) latents, as the reference draws one block per phase (Greg uses the first half)."""
    rng = np.random.default_rng([2, iteration])
    return torch.from_numpy(rng.standard_normal((4, SETTINGS["batch"], SETTINGS["z_dim"])).astype(np.float32)
                            .astype(dtype))


class Tape:
    """Standard normals of one iteration, handed out in call order."""

    def __init__(self, iteration: int, dtype=np.float32):
        self.rng = np.random.default_rng([3, iteration])
        self.dtype = dtype
        self.calls: list[tuple[int, ...]] = []

    def normal(self, shape) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        self.calls.append(shape)
        return torch.from_numpy(self.rng.standard_normal(shape).astype(np.float32).astype(self.dtype))


@contextmanager
def taped_randn(tape: Tape):
    """torch.randn / torch.randn_like served from ``tape`` (any generator argument ignored) while inside."""
    randn, randn_like = torch.randn, torch.randn_like

    def taped(*size, generator=None, device=None, dtype=None, **_):
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return tape.normal(shape).to(device=device or "cpu", dtype=dtype or torch.get_default_dtype())

    def taped_like(t, **_):
        return tape.normal(t.shape).to(device=t.device, dtype=t.dtype)

    torch.randn, torch.randn_like = taped, taped_like
    try:
        yield tape
    finally:
        torch.randn, torch.randn_like = randn, randn_like
