"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data").

Every image the discriminator sees (real and generated) passes through the same differentiable
pipeline. Each transform is applied per sample with probability p. The geometric ones (x-flip,
90-degree rotations, integer translation, isotropic scaling, arbitrary rotation, anisotropic
scaling, fractional translation) are composed into one 3x3 matrix per sample and applied with a
single bilinear resampling (reflection padding); the colour ones (brightness, contrast, luma flip,
hue rotation, saturation) into one 4x4 matrix. p adapts from r_t = E[sign(D(real))] toward a target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


def _matrix(rows: list, n: int, device) -> torch.Tensor:
    """Stack per-sample entries (tensors (N,) or floats) into (N, k, k) matrices."""
    return torch.stack([torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device).expand(n)
                                     for v in row], dim=-1) for row in rows], dim=-2)


def translate2d(tx, ty, n, dev):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, dev)


def scale2d(sx, sy, n, dev):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, dev)


def rotate2d(theta, n, dev):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n, dev)


class AugmentPipe(torch.nn.Module):
    """The ADA pipeline; ``p`` is a buffer so it is saved with the module's state."""

    def __init__(self, transforms: tuple[str, ...] = GEOMETRIC + COLOUR, translate_std: float = 0.125,
                 scale_std: float = 0.2, aniso_std: float = 0.2, brightness_std: float = 0.2,
                 contrast_std: float = 0.5, saturation_std: float = 1.0):
        super().__init__()
        unknown = set(transforms) - set(GEOMETRIC + COLOUR)
        if unknown:
            raise ValueError(f"unknown augmentations {sorted(unknown)}")
        self.transforms = tuple(transforms)
        self.std = dict(translate=translate_std, scale=scale_std, aniso=aniso_std, brightness=brightness_std,
                        contrast=contrast_std, saturation=saturation_std)
        self.register_buffer("p", torch.zeros([]))

    def _gate(self, n: int, dev, gen, prob=None) -> torch.Tensor:
        """1 where a sample gets the transform (probability p), else 0."""
        prob = self.p if prob is None else prob
        return (torch.rand(n, device=dev, generator=gen) < prob).float()

    def _geometry(self, n: int, size: int, dev, gen) -> torch.Tensor:
        """Per-sample 3x3 matrices mapping output to input coordinates (normalised [-1, 1])."""
        g = torch.eye(3, device=dev).repeat(n, 1, 1)
        on = lambda name: name in self.transforms  # noqa: E731 - tiny local predicate
        rand = lambda: torch.rand(n, device=dev, generator=gen)  # noqa: E731
        randn = lambda: torch.randn(n, device=dev, generator=gen)  # noqa: E731
        if on("xflip"):
            flip = self._gate(n, dev, gen) * (rand() < 0.5).float()
            g = g @ scale2d(1 - 2 * flip, torch.ones(n, device=dev), n, dev)
        if on("rotate90"):
            k = torch.floor(rand() * 4) * self._gate(n, dev, gen)
            g = g @ rotate2d(k * math.pi / 2, n, dev)
        if on("xint"):
            frac = (torch.rand(2, n, device=dev, generator=gen) * 2 - 1) * 0.125 * self._gate(n, dev, gen)
            t = torch.round(frac * size) * 2 / size  # whole pixels, in normalised [-1, 1] units
            g = g @ translate2d(t[0], t[1], n, dev)
        if on("scale"):
            s = torch.exp2(randn() * self.std["scale"] * self._gate(n, dev, gen))
            g = g @ scale2d(s, s, n, dev)
        p_rot = 1 - torch.sqrt((1 - self.p).clamp(0, 1))  # rotation before and after aniso: p overall
        if on("rotate"):
            g = g @ rotate2d((rand() * 2 - 1) * math.pi * self._gate(n, dev, gen, p_rot), n, dev)
        if on("aniso"):
            s = torch.exp2(randn() * self.std["aniso"] * self._gate(n, dev, gen))
            g = g @ scale2d(s, 1 / s, n, dev)
        if on("rotate"):
            g = g @ rotate2d((rand() * 2 - 1) * math.pi * self._gate(n, dev, gen, p_rot), n, dev)
        if on("xfrac"):
            gate = self._gate(n, dev, gen)
            g = g @ translate2d(randn() * self.std["translate"] * 2 * gate, randn() * self.std["translate"] * 2 * gate,
                                n, dev)
        return g

    def _colour(self, n: int, dev, gen) -> torch.Tensor:
        """Per-sample 4x4 colour matrices acting on homogeneous RGB in [-1, 1]."""
        c = torch.eye(4, device=dev).repeat(n, 1, 1)
        v = LUMA.to(dev)
        vv = torch.outer(v, v)
        on = lambda name: name in self.transforms  # noqa: E731
        if on("brightness"):
            b = torch.randn(n, device=dev, generator=gen) * self.std["brightness"] * self._gate(n, dev, gen)
            c = _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], n, dev) @ c
        if on("contrast"):
            s = torch.exp2(torch.randn(n, device=dev, generator=gen) * self.std["contrast"] * self._gate(n, dev, gen))
            c = _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n, dev) @ c
        if on("lumaflip"):
            i = torch.floor(torch.rand(n, device=dev, generator=gen) * 2) * self._gate(n, dev, gen)
            c = (torch.eye(4, device=dev) - 2 * vv * i[:, None, None]) @ c
        if on("hue"):
            theta = (torch.rand(n, device=dev, generator=gen) * 2 - 1) * math.pi * self._gate(n, dev, gen)
            c = _rotate_about(v[:3], theta) @ c
        if on("saturation"):
            s = torch.exp2(torch.randn(n, device=dev, generator=gen) * self.std["saturation"] * self._gate(n, dev, gen))
            c = (vv + (torch.eye(4, device=dev) - vv) * s[:, None, None]) @ c
        return c

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch (N, 3, H, W) in [-1, 1]; identity when p == 0."""
        if float(self.p) <= 0:
            return images
        n, _, h, w = images.shape
        dev = images.device
        geo = [t for t in self.transforms if t in GEOMETRIC]
        x = images
        if geo:
            theta = self._geometry(n, h, dev, generator)[:, :2, :]
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if any(t in COLOUR for t in self.transforms):
            c = self._colour(n, dev, generator).to(x.dtype)
            x = torch.einsum("nij,njhw->nihw", c[:, :3, :3], x) + c[:, :3, 3, None, None]
        return x


def _rotate_about(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) rotations by ``theta`` about a unit 3-D axis (Rodrigues)."""
    n = theta.shape[0]
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], device=theta.device)
    eye = torch.eye(3, device=theta.device)
    r = eye + torch.sin(theta)[:, None, None] * k + (1 - torch.cos(theta))[:, None, None] * (k @ k)
    out = torch.eye(4, device=theta.device).repeat(n, 1, 1)
    out[:, :3, :3] = r
    return out


@dataclass
class AdaController:
    """Moves p toward the overfitting target: up when E[sign(D(real))] > target, down otherwise."""

    target: float = 0.6
    interval: int = 4  # discriminator steps between adjustments
    speed_kimg: float = 500.0  # images for p to traverse 0 -> 1
    sign_sum: float = 0.0
    count: int = 0
    r_t: float = 0.0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add one batch of D(real) outputs."""
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += real_logits.numel()

    def maybe_update(self, pipe: AugmentPipe, step: int, batch_size: int) -> bool:
        """Every ``interval`` steps, adjust ``pipe.p``; returns whether it adjusted."""
        if step % self.interval or not self.count:
            return False
        self.r_t = self.sign_sum / self.count
        adjust = math.copysign(1.0, self.r_t - self.target) * batch_size * self.interval / (self.speed_kimg * 1000)
        pipe.p.copy_((pipe.p + adjust).clamp(0, 1))
        self.sign_sum, self.count = 0.0, 0
        return True
