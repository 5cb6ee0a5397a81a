"""Make tests/data/ddpm_replay.npz: diffusers' unconditional-training recipe (examples/unconditional_image_generation/
train_unconditional.py) run for a few steps on recorded draws, so a CI test can replay the draws through our trainer
and compare learning rates, losses, parameters and EMA step by step without diffusers' repository.

The reference is diffusers itself, imported unmodified from a checkout named by DIFFUSERS_PATH (its ``src`` goes
first on sys.path): its UNet2DModel, DDPMScheduler, EMAModel and get_scheduler, and the example script's own
defaults, read from its argparse calls with ``ast`` (Adam betas, weight decay, epsilon, EMA inverse gamma, power and
maximum decay, lr scheduler name, beta schedule). The training step follows the example's loop (its lines
~590-640 at the recorded commit): add_noise, the model's epsilon, MSE in float32, backward, clip to 1.0 when
gradients sync, optimizer step, scheduler step, zero_grad, then EMA step -- through an Accelerator with the model,
optimizer and scheduler prepared, as the example does, on one CPU process in fp32.

The draws (images after their flips, noise, timesteps) are our trainer's: ``skingen.generators.ddpm._draws`` for
(seed, micro-batch), recorded in the fixture, so the test checks both that our trainer still draws them and that
it trains on them as the example would. The initial weights are ``build_unet`` after ``set_seed`` (our trainer's
init; the UNet class is the reference's).

Usage: DIFFUSERS_PATH=/path/to/diffusers python benchmarks/make_ddpm_replay_fixture.py [--out tests/data/ddpm_replay.npz]
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

EXAMPLE = "examples/unconditional_image_generation/train_unconditional.py"
RECORDED_DEFAULTS = ("adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "ema_inv_gamma", "ema_power",
                     "lr_scheduler")
SETTINGS = dict(resolution=16, channels=(32, 64), layers_per_block=1, max_steps=6, batch_size=4, lr=1e-3,
                warmup_steps=2, ema_decay=0.9999, checkpoint_every=0, grid_images=0, log_every=1, seed=7)
# with gradient accumulation the schedule's length is counted in optimiser steps (ours); the example passes
# len(dataloader) x epochs -- micro-batches -- while its prepared scheduler steps once per optimiser step, so
# there its cosine reaches only 1/grad_accum of its length by the end of the run
VARIANTS = {"": SETTINGS, "accum_": {**SETTINGS, "grad_accum": 2, "max_steps": 3}}
N_IMAGES = 10


def reference_root() -> Path:
    """The diffusers checkout (DIFFUSERS_PATH), its src/ first on sys.path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference_checkout import diffusers_checkout

    return diffusers_checkout(EXAMPLE)


def example_defaults(root: Path) -> dict:
    """The example's argparse defaults, read from its source."""
    out = {}
    for node in ast.walk(ast.parse((root / EXAMPLE).read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
            name = ast.literal_eval(node.args[0]).lstrip("-")
            for kw in node.keywords:
                if kw.arg == "default":
                    try:
                        out[name] = ast.literal_eval(kw.value)
                    except ValueError:
                        out[name] = eval(compile(ast.Expression(kw.value), "<default>", "eval"))  # e.g. 3 / 4
    return out


def images(rng: np.random.Generator) -> np.ndarray:
    """Smooth random 16 px images (a colour gradient and a blob each), uint8."""
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    out = []
    for _ in range(N_IMAGES):
        base = rng.uniform(40, 215, size=3)
        tilt = rng.uniform(-40, 40, size=(2, 3))
        cy, cx, r = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(2, 5)
        blob = np.exp(-((yy * 15 - cy) ** 2 + (xx * 15 - cx) ** 2) / (2 * r * r))[..., None]
        img = base + tilt[0] * yy[..., None] + tilt[1] * xx[..., None] - 90 * blob
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def write_shard(path: Path, pixels: np.ndarray) -> None:
    """The train shard the replay trains on (MEL images)."""
    from skingen.data.classes import CLASS_INDEX
    from skingen.data.shards import ShardWriter

    with ShardWriter(path, 16, attrs={"split": "train"}) as w:
        for i, img in enumerate(pixels):
            w.add(img, CLASS_INDEX["MEL"], f"img{i}", f"les{i}", "x")


def _record_gradients(model, rec: dict) -> None:
    """Per tensor, the largest (over steps) gradient norm relative to the step's largest: a tensor whose gradient
    is zero in exact arithmetic (a bias before a per-channel GroupNorm, a key bias before softmax) shows ~1e-8 --
    Adam turns that rounding into steps of full size on every implementation, so the test leaves it out."""
    norms = {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}
    top = max(norms.values())
    for name, value in norms.items():
        rec["grad"][name] = max(rec["grad"].get(name, 0.0), value / top)


def reference_run(shard: Path, d: dict, settings: dict) -> dict:
    """The example's steps on our draws; returns lrs, losses, params and EMA after every step (last kept)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from skingen.generators.ddpm import DDPMConfig, _draws
    from skingen.generators.ddpm_data import TrainImages
    from skingen.generators.ddpm_model import build_unet

    cfg = DDPMConfig(**settings)
    set_seed(cfg.seed)
    data = TrainImages(shard, cfg.classes, cfg.resolution)
    model = build_unet(cfg.resolution, cfg.channels, cfg.layers_per_block)
    init = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    acc = Accelerator(cpu=True, mixed_precision="no", gradient_accumulation_steps=cfg.grad_accum)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=d["ema_inv_gamma"],
                   power=d["ema_power"])
    noise_scheduler = DDPMScheduler(num_train_timesteps=d["ddpm_num_steps"], beta_schedule=d["ddpm_beta_schedule"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(d["adam_beta1"], d["adam_beta2"]),
                                  weight_decay=d["adam_weight_decay"], eps=d["adam_epsilon"])
    lr_scheduler = get_scheduler(d["lr_scheduler"], optimizer=optimizer, num_warmup_steps=cfg.warmup_steps,
                                 num_training_steps=cfg.max_steps)
    model, optimizer, lr_scheduler = acc.prepare(model, optimizer, lr_scheduler)
    rec = {"lr": [], "loss": [], "x": [], "eps": [], "t": [], "grad": {}}
    losses = []
    for micro in range(cfg.max_steps * cfg.grad_accum):
        x, _, eps, t = _draws(data, cfg, micro, 0, 1)
        rec["x"].append(x.numpy()), rec["eps"].append(eps.numpy()), rec["t"].append(t.numpy())
        with acc.accumulate(model):
            pred = model(noise_scheduler.add_noise(x, eps, t), t, return_dict=False)[0]
            loss = torch.nn.functional.mse_loss(pred.float(), eps.float())
            acc.backward(loss)
            _record_gradients(model, rec)
            if acc.sync_gradients:
                acc.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if acc.sync_gradients:
            ema.step(model.parameters())
            rec["lr"].append(lr_scheduler.get_last_lr()[0])
            rec["loss"].append(float(np.mean(losses)))
            losses = []
    final = {k: v.detach().numpy() for k, v in acc.unwrap_model(model).state_dict().items()}
    ema_model = build_unet(cfg.resolution, cfg.channels, cfg.layers_per_block)
    ema.copy_to(ema_model.parameters())
    ema_state = {k: v.detach().numpy() for k, v in ema_model.state_dict().items()}
    return {"init": init, "final": final, "ema": ema_state, **rec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="tests/data/ddpm_replay.npz")
    args = parser.parse_args()
    root = reference_root()
    defaults = example_defaults(root)
    pixels = images(np.random.default_rng(2026))
    import diffusers

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from builders import projections

    out = {"images": pixels, "source": np.array(
        f"diffusers {diffusers.__version__} from {root} ({os.environ.get('DIFFUSERS_COMMIT', 'commit unknown')}); "
        f"{EXAMPLE} defaults {sorted((k, defaults[k]) for k in RECORDED_DEFAULTS)}")}
    for prefix, settings in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            write_shard(Path(tmp) / "train.h5", pixels)
            run = reference_run(Path(tmp) / "train.h5", defaults, settings)
        out.update({f"{prefix}lr": np.array(run["lr"]), f"{prefix}loss": np.array(run["loss"]),
                    f"{prefix}x": np.concatenate(run["x"]), f"{prefix}eps": np.concatenate(run["eps"]),
                    f"{prefix}t": np.concatenate(run["t"]), f"{prefix}sizes": np.array([len(t) for t in run["t"]]),
                    f"{prefix}settings": np.array(repr(settings))})
        for name in run["final"]:  # each update's norm and 8 random projections (the fixture stays small)
            if run["final"][name].dtype.kind == "f":
                for kind, after in (("update", run["final"]), ("ema_update", run["ema"])):
                    delta = after[name].astype(np.float64) - run["init"][name].astype(np.float64)
                    out[f"{prefix}{kind}_norm/{name}"] = np.linalg.norm(delta)
                    out[f"{prefix}{kind}_proj/{name}"] = projections(name, delta)
                out[f"{prefix}grad_rel/{name}"] = np.float64(run["grad"].get(name, 0.0))
        print(f"{prefix or 'plain '}: lr {np.round(run['lr'], 6).tolist()}, loss {np.round(run['loss'], 5).tolist()}")
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
