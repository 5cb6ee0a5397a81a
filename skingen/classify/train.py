"""Train one classifier cell on Accelerate: arm-composed train set, model selection on val by
macro-F1, test predictions written once from the selected weights, resumable on SIGUSR2/SIGTERM.

Outputs in ``out``: ``predictions.csv``, ``curves.csv``, ``best_model.pt`` (network snapshot),
``state/`` + ``progress.json`` (full training state, separate from the network), ``train_summary.json``.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..atomic import atomic_path, write_csv, write_json
from ..data.classes import metric_target, shard_classes
from ..data.shards import ShardDataset, ShardReader
from ..errors import UserError
from ..metrics.diagnostic import all_metrics
from ..metrics.predictions import write_predictions
from ..progress import progress
from .arms import ArmConfig, ArmDataset, build_arm
from .loop import Preempted, Progress, StopFlag, epoch_batches, loader, mean_over_processes, predict
from .models import create_model
from .syncbn import batchnorm_kind, convert_sync_batchnorm
from .transforms import eval_transform, gta_transform, train_transform

log = logging.getLogger(__name__)
CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_macro_f1", "val_balanced_accuracy", "lr", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Classifier training; defaults are the original recipe (SGD 1e-3, momentum 0.9, steps at 50/83 %)."""

    model: str = "resnet18"
    pretrained: bool = False
    weights_dir: str | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.83)
    gamma: float = 0.1
    mixed_precision: str = "no"
    grad_accum: int = 1
    num_workers: int = 0
    seed: int = 0
    gradcam_per_class: int = 2
    checkpoint_every: int = 1  # epochs between full-state saves; 0: only when stopped by a signal
    keep_weights: str = "best"  # "none": delete best_model.pt and the training state once predictions are written
    sync_batchnorm: bool = True  # with several processes, BatchNorm statistics over the global batch


@dataclass
class Run:
    """Everything the epoch loop needs."""

    cfg: TrainConfig
    out: Path
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: torch.nn.Module
    train_ds: ArmDataset
    val_ds: ShardDataset
    progress: Progress


def initial_model(cfg: TrainConfig, num_classes: int, image_size: int) -> torch.nn.Module:
    """The model a cell starts from: seeded by the classifier seed alone, right before it is built, so every
    cell with that seed (any arm, pipeline or dose) starts from the same weights -- the report resamples
    seed labels jointly because of it."""
    torch.manual_seed(cfg.seed)
    return create_model(cfg.model, num_classes=num_classes, image_size=image_size, pretrained=cfg.pretrained,
                        weights_dir=cfg.weights_dir)


def _setup(shards: Path, out: Path, cfg: TrainConfig, arm_cfg: ArmConfig) -> tuple[Run, dict, ShardDataset]:
    for split in ("train", "val", "test"):
        if not (shards / f"{split}.h5").is_file():
            raise UserError(f"{shards / (split + '.h5')}: missing; run 'skingen data pack' first")
    set_seed(cfg.seed)
    real = ShardReader(shards / "train.h5")
    size = int(real.attrs["image_size"])
    arm, synthetic = build_arm(real, arm_cfg)
    train_ds = ArmDataset(real, synthetic, arm, train_transform(size), gta_transform(size), seed=cfg.seed)
    val_ds = ShardDataset([shards / "val.h5"], transform=_chw_eval())
    test_ds = ShardDataset([shards / "test.h5"], transform=_chw_eval())
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                              cpu=not torch.cuda.is_available())  # cpu=True lets several CPU processes use gloo
    model = initial_model(cfg, len(shard_classes(real)), size)
    if uses_sync_batchnorm(cfg, accelerator):
        model = convert_sync_batchnorm(model, accelerator.device.type)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = sorted({max(1, round(m * cfg.epochs)) for m in cfg.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=cfg.gamma)
    # The scheduler is not prepared: Accelerate would step it once per process per call, so its epochs would
    # run N times too fast on N processes. Registered, it is still saved and restored with the state.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    weights = None if arm.class_weights is None else arm.class_weights.to(accelerator.device)
    progress = Progress()
    if (out / "progress.json").is_file() and (out / "state").is_dir():
        accelerator.load_state(str(out / "state"))
        progress = Progress.load(out / "progress.json")
        log.info("resuming %s at epoch %d batch %d", out, progress.epoch, progress.batch)
    run = Run(cfg, out, accelerator, model, optimizer, scheduler, torch.nn.CrossEntropyLoss(weight=weights),
              train_ds, val_ds, progress)
    return run, arm.composition, test_ds


def uses_sync_batchnorm(cfg: TrainConfig, accelerator: Accelerator) -> bool:
    """BatchNorm over the global batch when asked and with several processes: torch's SyncBatchNorm on GPUs,
    :class:`.syncbn.GlobalBatchNorm2d` on CPU processes (see :func:`.syncbn.convert_sync_batchnorm`)."""
    return cfg.sync_batchnorm and accelerator.num_processes > 1


def _chw_eval():
    norm = eval_transform()
    return lambda image: norm(torch.from_numpy(image).permute(2, 0, 1))


def _save_state(run: Run) -> None:
    run.accelerator.wait_for_everyone()
    run.accelerator.save_state(str(run.out / "state"))
    if run.accelerator.is_main_process:
        run.progress.save(run.out / "progress.json")


def global_batch_loss(run: Run, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """This process's share of the loss over the global batch: its (class-weighted) sum over the global
    weight, times the number of processes, so that the average gradient Accelerate takes over processes is the
    gradient of the one-process loss (a per-process weighted mean would weight processes, not images)."""
    losses = torch.nn.functional.cross_entropy(logits, y, weight=run.loss_fn.weight, reduction="none")
    weight = run.loss_fn.weight[y] if run.loss_fn.weight is not None else torch.ones_like(losses)
    total = weight.sum().detach()
    acc = run.accelerator
    if acc.num_processes > 1:
        total = acc.reduce(total, reduction="sum")
    return losses.sum() * acc.num_processes / total


def _train_epoch(run: Run, stop: StopFlag, stop_after_steps: int | None) -> float:
    acc, cfg, p = run.accelerator, run.cfg, run.progress
    batches = epoch_batches(len(run.train_ds), cfg.batch_size, cfg.seed, p.epoch, acc.process_index,
                            acc.num_processes, start=p.batch)
    bar = progress(loader(run.train_ds, batches, cfg.num_workers, seed=cfg.seed * 100003 + p.epoch),
                   total=len(batches), desc=f"{run.out.name} epoch {p.epoch + 1}/{cfg.epochs}", unit="batch",
                   enabled=acc.is_main_process, leave=False)
    run.train_ds.epoch = p.epoch
    for x, y in bar:
        with acc.accumulate(run.model):
            loss = global_batch_loss(run, run.model(x.to(acc.device)), y.to(acc.device))
            acc.backward(loss)
            run.optimizer.step()
            run.optimizer.zero_grad()
        p.epoch_loss_sum += mean_over_processes(acc, loss)
        p.batch += 1
        p.step += 1
        if stop.requested or (stop_after_steps is not None and p.step >= stop_after_steps):
            _save_state(run)
            raise Preempted(f"stopped at epoch {p.epoch} batch {p.batch}; state saved in {run.out / 'state'}")
    return p.epoch_loss_sum / p.batch if p.batch else float("nan")


def _end_epoch(run: Run, train_loss: float, seconds: float) -> None:
    acc, p = run.accelerator, run.progress
    prob = predict(run.model, run.val_ds, acc, num_workers=run.cfg.num_workers)
    y = run.val_ds.labels
    target = metric_target(shard_classes(run.val_ds.readers[0]), run.train_ds.arm.composition["target_class"])
    val = all_metrics(y, prob, target)
    val_loss = float(-np.log(np.clip(prob[np.arange(len(y)), y], 1e-12, 1)).mean())
    p.curves.append({"epoch": p.epoch, "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6),
                     "val_macro_f1": round(val["macro_f1"], 6), "val_balanced_accuracy": round(val["balanced_accuracy"], 6),
                     "lr": run.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3)})
    if acc.is_main_process:
        log.info("%s: epoch %d/%d done: train loss %.4f, val loss %.4f, val macro-F1 %.3f, lr %g, %.1f s", run.out.name,
                 p.epoch + 1, run.cfg.epochs, train_loss, val_loss, val["macro_f1"], p.curves[-1]["lr"], seconds)
    if val["macro_f1"] > p.best_score and acc.is_main_process:
        p.best_score, p.best_epoch = val["macro_f1"], p.epoch
        with atomic_path(run.out / "best_model.pt") as tmp:
            torch.save(acc.unwrap_model(run.model).state_dict(), tmp)
    run.scheduler.step()
    p.epoch, p.batch, p.epoch_loss_sum = p.epoch + 1, 0, 0.0
    if acc.is_main_process:
        write_csv(run.out / "curves.csv", CURVE_COLUMNS, p.curves)
    every = run.cfg.checkpoint_every
    if every and (p.epoch % every == 0 or p.epoch == run.cfg.epochs):
        _save_state(run)
    else:
        acc.wait_for_everyone()


def train_classifier(shards: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig,
                     arm_cfg: ArmConfig, stop_after_steps: int | None = None) -> dict:
    """Train (or resume) one cell and write its outputs; raises Preempted after saving state on a signal."""
    shards, out = Path(shards), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run, composition, test_ds = _setup(shards, out, cfg, arm_cfg)
    start = time.perf_counter()
    with StopFlag() as stop:
        while run.progress.epoch < cfg.epochs:
            t0 = time.perf_counter()
            loss = _train_epoch(run, stop, stop_after_steps)
            _end_epoch(run, loss, time.perf_counter() - t0)
    return _finish(run, test_ds, composition, time.perf_counter() - start)


def _finish(run: Run, test_ds: ShardDataset, composition: dict, seconds: float) -> dict:
    acc, out = run.accelerator, run.out
    model = acc.unwrap_model(run.model)
    model.load_state_dict(torch.load(out / "best_model.pt", map_location="cpu", weights_only=True))
    prob = predict(run.model, test_ds, acc, num_workers=run.cfg.num_workers)
    summary = {"config": asdict(run.cfg), "arm": composition, "best_epoch": run.progress.best_epoch,
               "best_val_macro_f1": run.progress.best_score, "steps": run.progress.step,
               "train_seconds_this_process": round(seconds, 2), "num_processes": acc.num_processes,
               "device": str(acc.device), "mixed_precision": run.cfg.mixed_precision,
               "sync_batchnorm": uses_sync_batchnorm(run.cfg, acc), "batchnorm": batchnorm_kind(model),
               "augmentation_seeds": "per image: SeedSequence([seed, epoch, index])",
               "data_sharding": "each global batch of the epoch's permutation dealt round-robin to the processes"}
    if acc.is_main_process:
        reader = test_ds.readers[0]
        write_predictions(out / "predictions.csv", reader.image_ids, reader.lesion_ids, reader.labels, prob,
                          shard_classes(reader))
        if run.cfg.gradcam_per_class:
            from .gradcam import gradcam_grid

            gradcam_grid(model, run.cfg.model, test_ds, out / "gradcam.png", run.cfg.gradcam_per_class)
        write_json(out / "train_summary.json", summary)
    acc.wait_for_everyone()
    if run.cfg.keep_weights == "none" and acc.is_main_process:
        drop_weights(out)
    return summary


def drop_weights(out: Path) -> None:
    """Delete a finished cell's network snapshot and training state (``keep_weights = "none"``)."""
    import shutil

    (out / "best_model.pt").unlink(missing_ok=True)
    (out / "progress.json").unlink(missing_ok=True)
    shutil.rmtree(out / "state", ignore_errors=True)
