"""Pieces of the training loop: deterministic per-epoch batch order, stop signals, progress, prediction."""
from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..errors import UserError


class Preempted(Exception):
    """Training stopped on a signal after saving its full state; rerunning resumes it."""


class StopFlag:
    """Set by SIGUSR2/SIGTERM (SLURM's pre-timeout and preemption signals) while training runs."""

    SIGNALS = (signal.SIGUSR2, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.requested = True

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Progress:
    """Where training is: next epoch and batch, optimiser steps, best validation score, curve rows."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    epoch_loss_sum: float = 0.0  # over the batches of the current epoch done so far
    curves: list = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write atomically as JSON."""
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Progress":
        """Read a saved progress file."""
        return cls(**json.loads(path.read_text()))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  start: int = 0) -> list[np.ndarray]:
    """This process's share of the batches of epoch ``epoch``, from batch ``start``: a seeded permutation cut
    into global batches of ``batch_size``, each dealt round-robin to the ``world`` processes, so that batch k of
    all processes together is batch k of one process whatever their number. A last batch with fewer images
    than processes is dropped (with several processes only: at most world - 1 images an epoch)."""
    if batch_size < world:
        raise UserError(f"[train] batch_size = {batch_size} is smaller than the {world} processes: each global batch "
                        f"is dealt across them, one image each at least; set batch_size >= {world}")
    order = np.random.default_rng([seed, epoch]).permutation(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if world > 1 and batches and len(batches[-1]) < world:
        batches = batches[:-1]
    return [b[rank::world] for b in batches][start:]


def mean_over_processes(accelerator, loss: torch.Tensor) -> float:
    """``loss`` averaged over the processes (each holding its share of the global batch's loss, scaled so that
    their mean is the global batch's): what a curve logs, whatever the number of processes."""
    loss = loss.detach()
    return float(accelerator.reduce(loss, "mean") if accelerator.num_processes > 1 else loss)


def loader(dataset, batches: list[np.ndarray], num_workers: int, seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over explicit batches; workers start from a fork server (no inherited locks).

    Its own generator keeps the global torch RNG untouched; augmentation is seeded per image
    (:class:`.arms.ArmDataset`), so a resumed run, any number of workers and any number of processes
    draw the same augmentations.
    """
    extra = {"multiprocessing_context": "forkserver"} if num_workers else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed), **extra)


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, accelerator, batch_size: int = 128, num_workers: int = 0) -> np.ndarray:
    """Softmax probabilities (N, C) of ``model`` over ``dataset`` in dataset order."""
    model.eval()
    index = np.arange(len(dataset))
    batches = [index[i:i + batch_size] for i in range(0, len(index), batch_size)]
    out = []
    for x, _ in loader(dataset, batches, num_workers):
        with accelerator.autocast():
            logits = model(x.to(accelerator.device))
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, 5))
