"""StyleGAN2 losses: non-saturating logistic, R1 and path-length regularisation, style mixing.

Every generator pass (the G loss, the fakes D trains on, the path-length batch) maps z in training
mode, which moves ``w_avg``, and mixes styles with probability ``mixing_prob``, as the reference's
``run_G``. Lazy regularisation: a regulariser taken every k steps is weighted by k in its own
optimiser step, and the optimiser's learning rate and betas are rescaled by k / (k + 1)
(``lazy_adam``). R1 is taken with respect to the un-augmented real images, through the augmentation.
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


def mapped_ws(G: Generator, z: torch.Tensor, c: torch.Tensor | None, mixing_prob: float,
              gen: torch.Generator | None) -> torch.Tensor:
    """ws for a batch; with probability ``mixing_prob`` the layers after a random cutoff come from a second z
    (whose mapping leaves ``w_avg`` alone)."""
    ws = G.mapping(z, c)
    if mixing_prob > 0 and torch.rand([], generator=gen).item() < mixing_prob:
        cutoff = int(torch.randint(1, ws.shape[1], [], generator=gen))
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        ws = torch.cat([ws[:, :cutoff], G.mapping(z2, c, skip_w_avg_update=True)[:, cutoff:]], dim=1)
    return ws


def generator_loss(G: Generator, D: Discriminator, augment: AugmentPipe, z, c, mixing_prob: float, gen) -> torch.Tensor:
    """Non-saturating logistic loss of the generator: softplus(-D(aug(G(z))))."""
    img = G.synthesis(mapped_ws(G, z, c, mixing_prob, gen))
    return F.softplus(-D(augment(img, gen), c)).mean()


def path_length_penalty(G: Generator, z, c, pl_mean: torch.Tensor, mixing_prob: float, gen,
                        decay: float = 0.01) -> torch.Tensor:
    """(|J_w^T y| - a)^2 with y ~ N(0, I)/sqrt(HW) and a the running mean of the lengths after this batch's
    update (stored detached in ``pl_mean``, differentiated through in the penalty, as the reference)."""
    ws = mapped_ws(G, z, c, mixing_prob, gen)
    img = G.synthesis(ws)
    noise = torch.randn(img.shape, generator=gen).to(img.device) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    target = pl_mean.lerp(lengths.mean(), decay)  # not detached: the penalty differentiates through the update
    pl_mean.copy_(target.detach())
    # img * 0: every parameter that shapes the image gets a (zero) gradient, so Adam steps it as the reference does
    return (lengths - target).square().mean() + img[:, 0, 0, 0].sum() * 0


def discriminator_loss(G: Generator, D: Discriminator, augment: AugmentPipe, real, c_real, z, c_gen,
                       mixing_prob: float, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """softplus(D(aug(fake))) + softplus(-D(aug(real))) with style-mixed fakes; returns (loss, real logits)."""
    with torch.no_grad():
        fake = G.synthesis(mapped_ws(G, z, c_gen, mixing_prob, gen))
    loss_fake = F.softplus(D(augment(fake, gen), c_gen))
    logits = D(augment(real.detach(), gen), c_real)
    return loss_fake.mean() + F.softplus(-logits).mean(), logits.detach()


def r1_penalty(D: Discriminator, augment: AugmentPipe, real, c_real, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """|grad_x D(aug(x))|^2 on the real images (batch mean); returns (penalty, real logits)."""
    real = real.detach().requires_grad_(True)
    logits = D(augment(real, gen), c_real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    # logits * 0: D's output bias, which R1 does not depend on, still gets a (zero) gradient (see path_length_penalty)
    return grad.square().sum(dim=(1, 2, 3)).mean() + logits.sum() * 0, logits.detach()
