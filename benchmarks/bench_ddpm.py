"""DDPM benchmark (issue 4): seconds per training step of our loop vs a bare diffusers + Accelerate loop on
the same UNet (32 px preset) and batch, alternated in one process (target: ours <= 1.05x bare); and
sampling images/s of DDPM-1000 vs DDIM-50 at 32 px.

Usage: python benchmarks/bench_ddpm.py [--steps 20] [--batch 8]
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


def ours(shard: Path, out: Path, steps: int, batch: int) -> float:
    """Seconds per optimizer step (+ EMA) of our loop."""
    cfg = DDPMConfig(resolution=32, max_steps=steps, batch_size=batch, checkpoint_every=0, grid_images=0)
    acc, unet, opt, lr_sched, ema, noise, data, _ = _setup(shard, out, cfg)
    _step(acc, unet, opt, lr_sched, noise, data, cfg, 0)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        _step(acc, unet, opt, lr_sched, noise, data, cfg, i)
        ema.step(unet.parameters())
    return (time.perf_counter() - start) / steps


def bare(images: torch.Tensor, steps: int, batch: int) -> float:
    """Seconds per step of the plain diffusers example loop (no EMA, no clipping)."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    acc = Accelerator()
    unet = build_unet(32)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    unet, opt = acc.prepare(unet, opt)
    sched = DDPMScheduler(num_train_timesteps=1000)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        x = images[torch.randint(0, len(images), (batch,))]
        noise = torch.randn_like(x)
        t = torch.randint(0, 1000, (batch,))
        loss = torch.nn.functional.mse_loss(unet(sched.add_noise(x, noise, t), t).sample, noise)
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.mean(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "train.h5"
        with ShardWriter(shard, 32, attrs={"split": "train"}) as w:
            for i in range(64):
                w.add(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), CLASS_INDEX["MEL"], f"i{i}", f"i{i}", "x")
        images = torch.rand(64, 3, 32, 32) * 2 - 1
        a = [ours(shard, Path(tmp) / f"o{r}", args.steps, args.batch) for r in range(2)]
        b = [bare(images, args.steps, args.batch) for _ in range(2)]
        print(f"train step 32px bs{args.batch}: ours {min(a):.4f} s, bare {min(b):.4f} s, ratio {min(a) / min(b):.3f} "
              "(target <= 1.05)")
        from diffusers import DDPMPipeline, DDPMScheduler

        DDPMPipeline(unet=build_unet(32), scheduler=DDPMScheduler()).save_pretrained(Path(tmp) / "p")
        for sampler, steps, n in (("ddpm", 1000, 4), ("ddim", 50, 16)):
            start = time.perf_counter()
            sample_images(Path(tmp) / "p", n, sampler, steps, batch=n)
            print(f"sampling {sampler.upper()}-{steps} at 32 px: {n / (time.perf_counter() - start):.2f} images/s")


if __name__ == "__main__":
    main()
