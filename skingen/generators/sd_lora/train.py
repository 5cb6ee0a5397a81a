"""``sd_lora`` training: our Accelerate loop after diffusers' ``train_text_to_image_lora.py`` — frozen VAE and text
encoder, LoRA (peft) on the UNet's attention projections, epsilon or v-prediction loss with optional noise offset
and Min-SNR weighting, AdamW, the example's lr schedules counted in optimiser steps, clipping, mixed precision
with the LoRA weights in float32 — over cached latents and prompt embeddings, resumable.

Outputs: ``state/`` + ``progress.json`` (training state: LoRA, optimiser, schedule), ``snapshot/`` (the LoRA as
``pytorch_lora_weights.safetensors``, which ``StableDiffusionPipeline.load_lora_weights`` reads, and
``snapshot.json``), ``curves.csv``, ``samples/step_<k>.png``, ``train_summary.json``.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...atomic import write_csv, write_json
from ...classify.loop import Preempted, Progress, StopFlag, mean_over_processes
from ...progress import progress
from ..common import write_rank_digest
from ..ddpm_data import micro_batch, process_share
from .base import load_base
from .config import SDLoRAConfig, precision_used, validate, weight_dtype
from .latents import cached_encoding, encode_images, encode_text, prompts_of, token_ids, training_images
from .snapshot import TARGET_MODULES, add_lora, load_state, lora_parameters, save_snapshot, save_state

log = logging.getLogger(__name__)


def micro_size(cfg: SDLoRAConfig) -> int:
    """Images in one micro-batch over all processes."""
    return max(1, cfg.batch_size // cfg.grad_accum)


def run_steps(cfg: SDLoRAConfig, n_images: int) -> int:
    """Optimiser steps of the run: ``epochs`` over the images, or ``max_steps``."""
    if cfg.epochs > 0:
        return max(1, -(-cfg.epochs * -(-n_images // micro_size(cfg)) // cfg.grad_accum))
    return max(1, cfg.max_steps)


def draws(n_batch: int, latent_shape: tuple[int, ...], seed: int, micro: int, timesteps: int) -> dict:
    """Every random draw of global micro-batch ``micro``, from (seed, micro) alone, so that they do not depend on the
    number of processes: flips, the posterior sample's noise, the diffusion noise, the offset noise, timesteps."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + micro)
    return {"flip": torch.rand(n_batch, generator=gen) < 0.5,
            "posterior": torch.randn((n_batch, *latent_shape), generator=gen),
            "noise": torch.randn((n_batch, *latent_shape), generator=gen),
            "offset": torch.randn((n_batch, latent_shape[0], 1, 1), generator=gen),
            "timesteps": torch.randint(0, timesteps, (n_batch,), generator=gen)}


def diffusion_loss(unet, sched, latents, noise, t, text, cfg: SDLoRAConfig) -> torch.Tensor:
    """The example's loss: MSE to the noise (epsilon) or the velocity, optionally Min-SNR weighted."""
    from diffusers.training_utils import compute_snr

    kind = sched.config.prediction_type
    target = noise if kind == "epsilon" else sched.get_velocity(latents, noise, t)
    pred = unet(sched.add_noise(latents, noise, t), t, text, return_dict=False)[0]
    if not cfg.snr_gamma:
        return torch.nn.functional.mse_loss(pred.float(), target.float())
    snr = compute_snr(sched, t)
    weights = torch.clamp(snr, max=cfg.snr_gamma) / (snr if kind == "epsilon" else snr + 1)
    per_image = torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_image * weights).mean()


class Trainer:
    """One ``sd_lora`` run's parts: base, encoded data, LoRA UNet, optimiser, schedule, accelerator."""

    def __init__(self, train_shard: Path, out: Path, cfg: SDLoRAConfig):
        from accelerate import Accelerator
        from diffusers.optimization import get_scheduler

        validate(cfg)
        self.cfg, self.out = cfg, out
        self.acc = Accelerator(mixed_precision=precision_used(cfg), gradient_accumulation_steps=cfg.grad_accum,
                               cpu=not torch.cuda.is_available())
        self.dtype = weight_dtype(self.acc.mixed_precision)
        self.base = load_base(cfg.base, self.dtype, str(self.acc.device))
        if cfg.prediction_type:
            self.base.scheduler.register_to_config(prediction_type=cfg.prediction_type)
        self.data = training_images(train_shard, cfg)
        self.prompts = prompts_of(self.data, cfg)  # (prompt per class, prompt index per image)
        with self.acc.main_process_first():  # the main process encodes; the others read its cache
            self.enc = (cached_encoding(self.base, self.data, cfg, train_shard, out, self.dtype)
                        if cfg.cache_latents else None)
        unet = add_lora(self.base.unet, cfg, cfg.seed)
        if cfg.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        params = lora_parameters(unet)
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
        # not prepared: one schedule step per optimiser step whatever the number of processes
        self.lr_sched = get_scheduler(cfg.lr_scheduler, opt, num_warmup_steps=cfg.warmup_steps,
                                      num_training_steps=run_steps(cfg, len(self.data)))
        self.unet, self.opt = self.acc.prepare(unet, opt)
        self.progress = Progress()
        if (out / "state" / "training_state.pt").is_file():
            self.progress = Progress(**load_state(out / "state", self.acc.unwrap_model(self.unet), self.opt,
                                                  self.lr_sched, self.acc.scaler, self.identity()))

    def identity(self) -> dict:
        """What a saved state must have been trained with to be resumed here."""
        c = self.cfg
        return {"base_fingerprint": self.base.fingerprint, "rank": c.rank, "alpha": c.lora_alpha(),
                "resolution": c.resolution, "classes": c.classes, "target_class": c.target_class}

    def latent_shape(self) -> tuple[int, ...]:
        """(C, h, w) of one latent."""
        factor = 2 ** (len(self.base.vae.config.block_out_channels) - 1)
        return (self.base.vae.config.latent_channels, self.cfg.resolution // factor, self.cfg.resolution // factor)

    def inputs(self, idx: np.ndarray, d: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior mean/std and text embeddings of images ``idx`` with flips ``d['flip']``: from the cache, or
        encoded now as the example does every step."""
        if self.enc is not None:
            mean, std = self.enc.posterior(idx, d["flip"])
            return mean, std, self.enc.embeddings(idx)
        x, _ = self.data.batch(idx, False)
        x = torch.where(d["flip"][:, None, None, None], x.flip(3), x) if self.cfg.random_flip else x
        mean, std = encode_images(self.base, x)
        prompts, index = self.prompts
        return mean, std, encode_text(self.base, token_ids(self.base, [prompts[i] for i in index[idx]]))

    def step(self, micro: int) -> float:
        """One micro-batch: forward, backward; clip, optimiser and schedule step at the accumulation boundary."""
        acc, cfg = self.acc, self.cfg
        batch, mine = micro_batch(len(self.data), micro_size(cfg), cfg.seed, micro, acc.process_index,
                                  acc.num_processes)
        weight, mine = process_share(len(batch), mine, acc.num_processes)
        d = {k: v[mine] for k, v in draws(len(batch), self.latent_shape(), cfg.seed, micro,
                                          self.base.scheduler.config.num_train_timesteps).items()}
        if not cfg.random_flip:
            d["flip"] = torch.zeros_like(d["flip"])
        mean, std, text = self.inputs(batch[mine], d)
        dev, dt = acc.device, self.dtype
        latents = (mean.to(dev, dt) + std.to(dev, dt) * d["posterior"].to(dev, dt)) * self.base.vae.config.scaling_factor
        noise = d["noise"].to(dev, dt)
        if cfg.noise_offset:
            noise = noise + cfg.noise_offset * d["offset"].to(dev, dt)
        with acc.accumulate(self.unet), acc.autocast():
            loss = diffusion_loss(self.unet, self.base.scheduler, latents, noise, d["timesteps"].to(dev),
                                  text.to(dev, dt), cfg)
            acc.backward(loss * weight if weight != 1 else loss)
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(lora_parameters(self.unet), cfg.grad_clip)
            self.opt.step()
            if acc.sync_gradients and not acc.optimizer_step_was_skipped:  # fp16: no step, no schedule step
                self.lr_sched.step()
            self.opt.zero_grad()
        return mean_over_processes(acc, loss * weight)  # a share may be a stand-in image at weight 0

    def save(self) -> None:
        """Training state (LoRA, optimiser, schedule) and progress, by the main process."""
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            save_state(self.out / "state", self.acc.unwrap_model(self.unet), self.opt, self.lr_sched, self.acc.scaler,
                       self.identity(), asdict(self.progress))
            self.progress.save(self.out / "progress.json")  # for people and 'skingen status'; resume reads the state


def train_sd_lora(train_shard: str | os.PathLike, out: str | os.PathLike, cfg: SDLoRAConfig,
                  stop_after_steps: int | None = None) -> dict:
    """Train (or resume) a LoRA on the base over the train shard's images with their class prompts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = Trainer(Path(train_shard), out, cfg)
    p, steps, start = t.progress, run_steps(cfg, len(t.data)), time.perf_counter()
    # the log window's losses so far, kept in the progress so that a resumed run logs what a continuous one does
    # (Progress's epoch_loss_sum and epoch serve here as the window's sum and count)
    log.info("sd_lora: %d images, %d optimiser steps, LoRA rank %d on %s; outputs in %s", len(t.data), steps,
             cfg.rank, "/".join(TARGET_MODULES), out)
    t.unet.train()
    bar = progress(total=steps, initial=p.step, desc=f"sd_lora {out.name}", unit="step",
                   enabled=t.acc.is_main_process)
    with StopFlag() as stop, bar:
        while p.step < steps:
            for _ in range(cfg.grad_accum):
                p.epoch_loss_sum += t.step(p.batch)
                p.epoch += 1
                p.batch += 1
            p.step += 1
            bar.update(1)
            if p.step % cfg.log_every == 0 or p.step == steps:
                p.curves.append({"step": p.step, "loss": round(p.epoch_loss_sum / p.epoch, 6),
                                 "lr": t.lr_sched.get_last_lr()[0]})
                p.epoch_loss_sum, p.epoch = 0.0, 0
            if stop.requested or (stop_after_steps is not None and p.step >= stop_after_steps and p.step < steps):
                t.save()
                raise Preempted(f"stopped at step {p.step}; state saved in {out / 'state'}")
            if cfg.checkpoint_every and p.step % cfg.checkpoint_every == 0:
                t.save()
                _snapshot(t, p.step)
    t.save()
    _snapshot(t, p.step)
    return _summary(t, time.perf_counter() - start)


def _snapshot(t: Trainer, step: int) -> None:
    if not t.acc.is_main_process:
        return
    from .sample import sample_grid

    save_snapshot(t.out / "snapshot", t.acc.unwrap_model(t.unet), t.cfg, t.base, step, t.data.class_names)
    write_csv(t.out / "curves.csv", ("step", "loss", "lr"), t.progress.curves)
    if t.cfg.grid_images:
        sample_grid(t.out, t.out / "samples" / f"step_{step:07d}.png", t.cfg.grid_images)


def _summary(t: Trainer, seconds: float) -> dict:
    unet = t.acc.unwrap_model(t.unet)
    write_rank_digest(unet, t.out, t.acc.process_index, lora_parameters(unet))  # the frozen base is the base folder
    cfg, p = t.cfg, t.progress
    summary = {"config": asdict(cfg), "steps": p.step, "seconds_this_process": round(seconds, 2),
               "mixed_precision_used": t.acc.mixed_precision, "num_processes": t.acc.num_processes,
               "effective_batch": micro_size(cfg) * cfg.grad_accum, "base": str(t.base.folder),
               "base_fingerprint": t.base.fingerprint, "pretrained_from": pretrained_name(cfg.base),
               "prediction_type": t.base.scheduler.config.prediction_type,
               "latent_cache": t.enc.path if t.enc is not None else None,
               "epochs_seen": round(p.batch * micro_size(cfg) / max(1, len(t.data)), 3),
               "train_images": len(t.data), "train_image_ids_sha256": t.data.ids_sha256(),
               "train_shard": t.data.source, "final_loss": p.curves[-1]["loss"] if p.curves else None}
    if t.acc.is_main_process:
        write_json(t.out / "train_summary.json", summary)
    t.acc.wait_for_everyone()
    return summary


def pretrained_name(base: str) -> str:
    """A short name of the base the LoRA starts from (shown in the generative table and the verdict)."""
    return Path(str(base).rstrip("/")).name.replace("standin:", "sd-standin-")
