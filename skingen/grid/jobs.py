"""The function every executor runs for a cell (in process, as a local process or a SLURM task).

``CellJob`` is submitit-Checkpointable: on SIGUSR2 (timeout) or SIGTERM (preemption) the training
loop saves its full state and stops; the job then hands itself back to submitit, which requeues it,
and the requeued job resumes from that state.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import submitit

from ..classify.loop import Preempted
from .plan import Cell
from .stages import STAGE_FUNCTIONS
from .store import execute_cell


def _distributed_rank() -> int:
    """Export torch.distributed variables for multi-task jobs; return this task's global rank."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return 0
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.global_rank


def _limit_threads() -> None:
    """One torch thread per allotted CPU (SLURM's cpus-per-task, or the local executor's share)."""
    threads = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SKINGEN_THREADS")
    if threads and threads.isdigit():
        import torch

        torch.set_num_threads(int(threads))


def _log_to_stderr() -> None:
    """INFO lines (progress, epochs) into the job's log: a worker process starts with no logging set up."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("accelerate", "submitit", "timm", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


class CellJob(submitit.helpers.Checkpointable):
    """Run one cell; requeue through submitit when training was stopped by a signal."""

    def __call__(self, cell_json: dict, root: str, inputs: dict[str, str]) -> dict:
        cell = Cell(**cell_json)
        _log_to_stderr()
        _limit_threads()
        rank = _distributed_rank()
        try:
            return execute_cell(cell, Path(root), {k: Path(v) for k, v in inputs.items()},
                                STAGE_FUNCTIONS[cell.stage], is_main=rank == 0)
        except Preempted:
            handler = signal.getsignal(signal.SIGUSR2)
            if callable(handler) and os.environ.get("SUBMITIT_EXECUTOR"):
                handler(signal.SIGUSR2, None)  # submitit: checkpoint() + requeue + exit
            raise

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Resubmit the same cell; its training state on disk makes the rerun a resume."""
        return submitit.helpers.DelayedSubmission(CellJob(), *args, **kwargs)
