"""One StyleGAN2-ADA training iteration in the reference's phases: G main, G path length (every
``pl_interval`` iterations), D main, D R1 (every ``r1_interval``), each with its own optimiser step.

Each phase draws its own latents (and, for a conditional G, labels from the data's distribution); both
D phases see the same real batch. A regulariser phase weights its loss by its interval and steps the
same lazily adjusted Adam as the main phase (``loss.lazy_adam``). Before every optimiser step the
gradients are averaged over processes and NaN/Inf entries are replaced (0, +-1e5), as the reference.
"""
from __future__ import annotations

import torch

from .loss import discriminator_loss, generator_loss, path_length_penalty, r1_penalty


def average_grads(acc, module: torch.nn.Module) -> None:
    """Mean gradient over processes: one all-reduce of all gradients flattened (one bucket, not one per tensor)."""
    if acc.num_processes == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = acc.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def clean_grads(module: torch.nn.Module) -> None:
    """NaN -> 0, +Inf -> 1e5, -Inf -> -1e5 in every gradient, in place."""
    for p in module.parameters():
        if p.grad is not None:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


def _optimise(run, module: torch.nn.Module, other: torch.nn.Module, opt: torch.optim.Optimizer, loss_fn) -> float:
    """One phase: gradients of ``loss_fn()`` for ``module`` only, averaged, cleaned, one optimiser step."""
    module.requires_grad_(True)
    other.requires_grad_(False)
    opt.zero_grad(set_to_none=True)
    loss, value = loss_fn()
    loss.backward()
    average_grads(run.acc, module)
    clean_grads(module)
    opt.step()
    return float(value)


def train_step(run) -> tuple[float, float, float, float]:
    """The four phases of iteration ``run.step``; returns (G loss, path-length penalty, D loss, R1 penalty)."""
    cfg, n = run.cfg, run.per_process
    real, c_real = run.batch()
    pl = r1 = 0.0
    real_logits = []  # D(real) of both D phases: the ADA statistic

    def g_main():
        loss = generator_loss(run.g_fwd, run.d_fwd, run.augment, run.latents(n), run.gen_c(n), cfg.style_mixing,
                              run.gen)
        return loss, loss.detach()

    def g_reg():
        k = max(1, n // 2)
        penalty = path_length_penalty(run.G, run.latents(k), run.gen_c(k), run.pl_mean, cfg.style_mixing, run.gen)
        return penalty * (cfg.pl_weight * cfg.pl_interval), penalty.detach()

    def d_main():
        loss, logits = discriminator_loss(run.g_fwd, run.d_fwd, run.augment, real, c_real, run.latents(n), run.gen_c(n),
                                          cfg.style_mixing, run.gen)
        real_logits.append(logits)
        return loss, loss.detach()

    def d_reg():
        penalty, logits = r1_penalty(run.D, run.augment, real, c_real, run.gen)
        real_logits.append(logits)
        return penalty * (run.gamma / 2 * cfg.r1_interval), penalty.detach()

    loss_g = _optimise(run, run.G, run.D, run.opt_g, g_main)
    if cfg.pl_weight and run.step % cfg.pl_interval == 0:
        pl = _optimise(run, run.G, run.D, run.opt_g, g_reg)
    loss_d = _optimise(run, run.D, run.G, run.opt_d, d_main)
    if run.gamma and run.step % cfg.r1_interval == 0:
        r1 = _optimise(run, run.D, run.G, run.opt_d, d_reg)
    if cfg.augment == "ada":
        for logits in real_logits:
            run.ada.accumulate(run.acc.gather(logits))
        run.ada.maybe_update(run.augment, run.step + 1, cfg.batch_size)
    return loss_g, pl, loss_d, r1
