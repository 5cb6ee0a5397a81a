"""DDPM training: diffusers UNet2DModel + DDPMScheduler, our own Accelerate loop (epsilon-prediction,
MSE, AdamW with warm-up + cosine, clipping, EMA, mixed precision, accumulation), resumable.

Outputs: ``state/`` + ``progress.json`` (training state), ``pipeline/`` (EMA network snapshot in
diffusers format), ``curves.csv``, ``samples/step_<k>.png`` grids, ``train_summary.json``.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_csv, write_json
from ..classify.loop import Preempted, Progress, StopFlag, mean_over_processes
from ..progress import progress
from .common import write_rank_digest
from .ddpm_data import TrainImages, micro_batch, process_share
from .ddpm_model import build_unet, load_unet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DDPMConfig:
    """Everything a DDPM cell depends on."""

    resolution: int = 32
    channels: tuple[int, ...] = ()
    layers_per_block: int = 2
    classes: tuple[str, ...] = ("MEL",)
    conditional: bool = False
    max_steps: int = 10000
    epochs: int = 0  # > 0: the run's length in epochs over the training images (then max_steps is ignored)
    batch_size: int = 16
    lr: float = 1e-4
    warmup_steps: int = 500
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    mixed_precision: str = "no"
    dtype: str = "float32"  # "float64": exactness checks (1 vs N processes); slow, CPU only in practice
    grad_accum: int = 1
    ema_decay: float = 0.9999
    num_train_timesteps: int = 1000
    random_flip: bool = True
    checkpoint_every: int = 1000
    grid_images: int = 16
    grid_steps: int = 25
    log_every: int = 10
    init_from: str = ""
    seed: int = 0


def micro_size(cfg: DDPMConfig) -> int:
    """Images in one micro-batch over all processes (the batch split over gradient accumulation)."""
    return max(1, cfg.batch_size // cfg.grad_accum)


def run_steps(cfg: DDPMConfig, n_images: int) -> int:
    """Optimiser steps of the run: ``epochs`` over the images (each epoch ceil(n / micro-batch) micro-batches,
    the last one smaller), or ``max_steps``."""
    if cfg.epochs > 0:
        return max(1, -(-cfg.epochs * -(-n_images // micro_size(cfg)) // cfg.grad_accum))
    return max(1, cfg.max_steps)


def precision_used(cfg: DDPMConfig) -> str:
    """The precision the run uses: fp16 (autocast + loss scaling, the original's) needs a GPU; on a CPU the
    run falls back to fp32 and says so in the log and in train_summary.json."""
    if cfg.mixed_precision == "fp16" and not torch.cuda.is_available():
        log.warning("mixed_precision = 'fp16' needs a GPU; this CPU run trains in fp32 (recorded)")
        return "no"
    return cfg.mixed_precision


def cast_inputs(x: torch.Tensor, eps: torch.Tensor, precision: str,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and noise in the dtype the example feeds them: float16 under fp16 (its ``weight_dtype``), else as
    drawn (float32, or the run's ``dtype``); the loss is taken against the noise in float32 (or ``dtype``)."""
    if precision == "fp16":
        return x.half(), eps.half()
    return x.to(dtype), eps.to(dtype)


def train_dtype(cfg: DDPMConfig) -> torch.dtype:
    """The dtype of the network's parameters and of the loss: float32, or float64 for exactness checks."""
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def _setup(train_shard: Path, out: Path, cfg: DDPMConfig):
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    set_seed(cfg.seed)
    data = TrainImages(train_shard, cfg.classes, cfg.resolution)
    n_class = len(data.class_names) if cfg.conditional else None
    unet = (load_unet(cfg.init_from, cfg.resolution, n_class) if cfg.init_from
            else build_unet(cfg.resolution, cfg.channels or None, cfg.layers_per_block, n_class))
    if train_dtype(cfg) != torch.float32:
        unet = unet.to(train_dtype(cfg))
    acc = Accelerator(mixed_precision=precision_used(cfg), gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available())
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, betas=(0.95, 0.999), weight_decay=cfg.weight_decay)
    lr_sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, run_steps(cfg, len(data)))
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    # lr_sched is not prepared: Accelerate would step it once per process per call (N x too fast on N
    # processes); it steps once per optimiser step below and is saved with the state all the same.
    unet, opt = acc.prepare(unet, opt)
    ema.to(acc.device)
    acc.register_for_checkpointing(ema)
    acc.register_for_checkpointing(lr_sched)
    progress = Progress()
    if (out / "progress.json").is_file() and (out / "state").is_dir():
        acc.load_state(str(out / "state"))
        progress = Progress.load(out / "progress.json")
    noise = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="linear")
    return acc, unet, opt, lr_sched, ema, noise, data, progress


def _save(acc, out: Path, progress: Progress) -> None:
    acc.wait_for_everyone()
    acc.save_state(str(out / "state"))
    if acc.is_main_process:
        progress.save(out / "progress.json")


def _draws(data: TrainImages, cfg: DDPMConfig, micro: int, rank: int, world: int):
    """This process's part of micro-batch ``micro``: images, labels, noise and timesteps. Flips, noise and
    timesteps are drawn for the whole global micro-batch from (seed, micro) and sliced, so they do not depend
    on the number of processes; ``weight`` is the factor on this process's loss (:func:`.ddpm_data.process_share`)."""
    batch, mine = micro_batch(len(data), micro_size(cfg), cfg.seed, micro, rank, world)
    weight, mine = process_share(len(batch), mine, world)
    x, labels = data.batch(batch[mine], False)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + micro)
    flip = torch.rand(len(batch), generator=gen)[mine] < 0.5
    eps = torch.randn((len(batch), *x.shape[1:]), generator=gen)[mine]
    t = torch.randint(0, cfg.num_train_timesteps, (len(batch),), generator=gen)[mine]
    if cfg.random_flip:
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x, labels, eps, t, weight


def _step(acc, unet, opt, lr_sched, noise, data: TrainImages, cfg: DDPMConfig, micro: int) -> float:
    x, labels, eps, t, weight = _draws(data, cfg, micro, acc.process_index, acc.num_processes)
    dtype = train_dtype(cfg)
    x, eps = cast_inputs(x.to(acc.device), eps.to(acc.device), acc.mixed_precision, dtype)
    t = t.to(acc.device)
    with acc.accumulate(unet):
        with acc.autocast():
            pred = unet(noise.add_noise(x, eps, t), t, class_labels=labels.to(acc.device) if cfg.conditional else None).sample
        loss = torch.nn.functional.mse_loss(pred.to(dtype), eps.to(dtype))
        acc.backward(loss * weight if weight != 1 else loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()
        if acc.sync_gradients:  # one schedule step per optimiser step, whatever the processes and accumulation
            lr_sched.step()
        opt.zero_grad()
    return mean_over_processes(acc, loss * weight)  # a share may be a stand-in image at weight 0


def train_ddpm(train_shard: str | os.PathLike, out: str | os.PathLike, cfg: DDPMConfig,
               stop_after_steps: int | None = None) -> dict:
    """Train (or resume) a DDPM on the train shard's images of ``cfg.classes``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    acc, unet, opt, lr_sched, ema, noise, data, p = _setup(Path(train_shard), out, cfg)
    start, losses = time.perf_counter(), []
    steps = run_steps(cfg, len(data))
    bar = progress(total=steps, initial=p.step, desc=f"ddpm {out.name}", unit="step", enabled=acc.is_main_process)
    with StopFlag() as stop, bar:
        while p.step < steps:
            for _ in range(cfg.grad_accum):
                losses.append(_step(acc, unet, opt, lr_sched, noise, data, cfg, p.batch))
                p.batch += 1  # micro-batches so far: the data seed of the next one
            ema.step(unet.parameters())
            p.step += 1
            bar.update(1)
            if p.step % cfg.log_every == 0 or p.step == steps:
                p.curves.append({"step": p.step, "loss": round(float(np.mean(losses)), 6), "lr": lr_sched.get_last_lr()[0]})
                losses = []
            if stop.requested or (stop_after_steps is not None and p.step >= stop_after_steps and p.step < steps):
                _save(acc, out, p)
                raise Preempted(f"stopped at step {p.step}; state saved in {out / 'state'}")
            if cfg.checkpoint_every and p.step % cfg.checkpoint_every == 0:
                _save(acc, out, p)
                _snapshot(acc, unet, ema, noise, out, cfg, p.step, p.curves, data.class_names)
    _save(acc, out, p)
    _snapshot(acc, unet, ema, noise, out, cfg, p.step, p.curves, data.class_names)
    return _summary(acc, unet, ema, data, out, cfg, p, time.perf_counter() - start)


def _snapshot(acc, unet, ema, noise, out: Path, cfg: DDPMConfig, step: int, curves: list,
              class_names: tuple[str, ...]) -> None:
    """EMA weights as a diffusers pipeline folder (the network snapshot) and a sample grid."""
    if not acc.is_main_process:
        return
    from diffusers import DDPMPipeline

    from .ddpm_sample import sample_grid

    ema_unet = copy.deepcopy(acc.unwrap_model(unet)).to("cpu")
    ema.copy_to(ema_unet.parameters())
    if train_dtype(cfg) != torch.float32:
        ema_unet.to(torch.float32)  # a float64 exactness run still snapshots the network samplers load
    DDPMPipeline(unet=ema_unet, scheduler=noise).save_pretrained(str(out / "pipeline"))
    write_json(out / "pipeline" / "snapshot.json", {"step": step, "ema": True, "ema_decay": cfg.ema_decay,
                                                     "config": asdict(cfg), "class_names": list(class_names)})
    write_csv(out / "curves.csv", ("step", "loss", "lr"), curves)
    if cfg.grid_images:
        sample_grid(out / "pipeline", out / "samples" / f"step_{step:07d}.png", cfg.grid_images, cfg.grid_steps,
                    cfg.seed, class_index=None)


def _summary(acc, unet, ema, data: TrainImages, out: Path, cfg: DDPMConfig, p: Progress, seconds: float) -> dict:
    write_rank_digest(acc.unwrap_model(unet), out, acc.process_index)
    per_process = max(1, micro_size(cfg) // acc.num_processes)
    summary = {"config": asdict(cfg), "steps": p.step, "seconds_this_process": round(seconds, 2),
               "mixed_precision_used": acc.mixed_precision, "dtype": cfg.dtype,
               "num_processes": acc.num_processes, "per_process_batch": per_process,
               "effective_batch": micro_size(cfg) * cfg.grad_accum,
               "random_streams": "each global micro-batch's images, flips, noise and timesteps from (seed, micro-batch "
                                 "index), split across processes: the same on any number of them",
               "epochs_seen": round(p.batch * micro_size(cfg) / max(1, len(data)), 3),
               "train_images": len(data), "train_image_ids_sha256": data.ids_sha256(), "train_shard": data.source,
               "final_loss": p.curves[-1]["loss"] if p.curves else None}
    if acc.is_main_process:
        write_json(out / "train_summary.json", summary)
    acc.wait_for_everyone()
    return summary
