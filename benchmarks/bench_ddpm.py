"""DDPM benchmark (issue 4): seconds per training step of our loop vs a bare diffusers + Accelerate loop on
the same UNet (32 px preset), batch and per-step work (clip, LR schedule, EMA), stepped alternately in one
process and compared by median step time (target: ours <= 1.05x bare); and
sampling images/s of DDPM-1000 vs DDIM-50 at 32 px.

Usage: python benchmarks/bench_ddpm.py [--steps 40] [--batch 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardWriter
from skingen.generators.ddpm import DDPMConfig, _setup, _step
from skingen.generators.ddpm_model import build_unet
from skingen.generators.ddpm_sample import sample_images


def ours_step(shard: Path, out: Path, batch: int):
    """One optimizer step (+ EMA) of our loop, as a closure over its state."""
    cfg = DDPMConfig(resolution=32, max_steps=1000, batch_size=batch, checkpoint_every=0, grid_images=0)
    acc, unet, opt, lr_sched, ema, noise, data, _ = _setup(shard, out, cfg)
    counter = iter(range(10 ** 9))

    def step() -> None:
        _step(acc, unet, opt, lr_sched, noise, data, cfg, next(counter))
        ema.step(unet.parameters())
    return step


def bare_step(images: torch.Tensor, batch: int):
    """One step of a bare loop doing what diffusers' train_unconditional example does per step
    (noise, MSE, backward, clip, AdamW, LR schedule, EMA) without our data, resume and signal handling."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    acc = Accelerator()
    unet = build_unet(32)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    lr_sched = get_cosine_schedule_with_warmup(opt, 500, 10000)
    unet, opt, lr_sched = acc.prepare(unet, opt, lr_sched)
    sched = DDPMScheduler(num_train_timesteps=1000)

    def step() -> None:
        x = images[torch.randint(0, len(images), (batch,))]
        noise = torch.randn_like(x)
        t = torch.randint(0, 1000, (batch,))
        loss = torch.nn.functional.mse_loss(unet(sched.add_noise(x, noise, t), t).sample, noise)
        acc.backward(loss)
        acc.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        opt.zero_grad()
        ema.step(unet.parameters())
    return step


def alternate(a, b, steps: int) -> tuple[float, float]:
    """Median seconds per step of ``a`` and ``b``, stepped alternately so drift hits both alike."""
    for f in (a, b, a, b):  # warm-up
        f()
    ta, tb = [], []
    for _ in range(steps):
        for f, times in ((a, ta), (b, tb)):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
    return float(np.median(ta)), float(np.median(tb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "train.h5"
        with ShardWriter(shard, 32, attrs={"split": "train"}) as w:
            for i in range(64):
                w.add(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"i{i}", "x")
        images = torch.rand(64, 3, 32, 32) * 2 - 1
        a, b = alternate(ours_step(shard, Path(tmp) / "o", args.batch), bare_step(images, args.batch), args.steps)
        print(f"train step 32px bs{args.batch}: ours {a:.4f} s, bare {b:.4f} s (medians of {args.steps} alternated "
              f"steps), ratio {a / b:.3f} (target <= 1.05)")
        from diffusers import DDPMPipeline, DDPMScheduler

        DDPMPipeline(unet=build_unet(32), scheduler=DDPMScheduler()).save_pretrained(Path(tmp) / "p")
        for sampler, steps, n in (("ddpm", 1000, 4), ("ddim", 50, 16)):
            start = time.perf_counter()
            sample_images(Path(tmp) / "p", n, sampler, steps, batch=n)
            print(f"sampling {sampler.upper()}-{steps} at 32 px: {n / (time.perf_counter() - start):.2f} images/s")


if __name__ == "__main__":
    main()
