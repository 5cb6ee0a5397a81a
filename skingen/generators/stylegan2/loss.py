"""StyleGAN2 losses: non-saturating logistic, lazy R1 and path-length regularisation, style mixing.

Lazy regularisation: a regulariser evaluated every k steps is weighted by k, and the optimiser's
learning rate and betas are rescaled by k / (k + 1) (``lazy_adam``), as in the StyleGAN2 paper.
R1 is taken with respect to the un-augmented real images, through the augmentation pipeline.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment import AugmentPipe
from .networks import Discriminator, Generator


def lazy_adam(params, lr: float, betas: tuple[float, float], interval: int) -> torch.optim.Adam:
    """Adam with lr and betas adjusted for a regulariser applied every ``interval`` steps."""
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8)


def r1_gamma_default(resolution: int, batch_size: int) -> float:
    """The StyleGAN2-ADA heuristic: gamma = 0.0002 * resolution^2 / batch size."""
    return 0.0002 * resolution ** 2 / batch_size


def mapped_ws(G: Generator, z: torch.Tensor, c: torch.Tensor | None, mixing_prob: float,
              gen: torch.Generator | None) -> torch.Tensor:
    """ws for a batch; with probability ``mixing_prob`` the layers after a random cutoff come from a second z."""
    ws = G.mapping(z, c, update_w_avg=True)
    if mixing_prob > 0:
        n, num_ws = ws.shape[:2]
        if torch.rand([], generator=gen).item() < mixing_prob:
            cutoff = int(torch.randint(1, num_ws, [], generator=gen))
            z2 = torch.randn(z.shape, generator=gen).to(z.device)
            ws = torch.cat([ws[:, :cutoff], G.mapping(z2, c)[:, cutoff:]], dim=1)
    return ws


def generator_loss(G: Generator, D: Discriminator, augment: AugmentPipe, z, c, mixing_prob: float, gen) -> torch.Tensor:
    """Non-saturating logistic loss of the generator: softplus(-D(aug(G(z))))."""
    img = G.synthesis(mapped_ws(G, z, c, mixing_prob, gen))
    return F.softplus(-D(augment(img, gen), c)).mean()


def path_length_penalty(G: Generator, z, c, pl_mean: torch.Tensor, gen, decay: float = 0.01) -> torch.Tensor:
    """(|J_w^T y| - a)^2 with y ~ N(0, I)/sqrt(HW) and a the running mean of the lengths (updated in place)."""
    ws = G.mapping(z, c)
    img = G.synthesis(ws)
    noise = torch.randn(img.shape, generator=gen).to(img.device) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    pl_mean.copy_(pl_mean.lerp(lengths.mean().detach(), decay))
    return (lengths - pl_mean).square().mean()


def discriminator_loss(G: Generator, D: Discriminator, augment: AugmentPipe, real, c_real, z, c_gen,
                       r1_gamma: float, do_r1: bool, gen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """softplus(D(fake)) + softplus(-D(real)) [+ gamma/2 |grad_x D(x)|^2 on reals]; returns (loss, real logits, r1)."""
    with torch.no_grad():
        fake = G(z, c_gen)
    loss_fake = F.softplus(D(augment(fake, gen), c_gen))
    real = real.detach().requires_grad_(do_r1)
    logits = D(augment(real, gen), c_real)
    loss = loss_fake.mean() + F.softplus(-logits).mean()
    r1 = torch.zeros([], device=real.device)
    if do_r1:
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean()
        loss = loss + r1 * (r1_gamma / 2)
    return loss, logits.detach(), r1.detach()
