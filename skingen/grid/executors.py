"""Executors: ``debug`` runs cells in this process; ``local`` and ``slurm`` submit them with submitit
(a fresh log folder per submission, since a reused one can return stale results)."""
from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import submitit
from tqdm import tqdm

from ..atomic import write_json
from .jobs import CellJob
from .plan import Cell
from .profile import Profile, slurm_parameters, tasks_per_node
from .store import cell_state

log = logging.getLogger(__name__)
Work = tuple[Cell, dict[str, str]]  # a cell and its input folders


def _record_failure(cell: Cell, root: Path, error: str, log_path: str) -> None:
    folder = cell.folder(root)
    if cell_state(cell, root) != "failed":  # the job itself writes FAILED unless it was killed
        folder.mkdir(parents=True, exist_ok=True)
        first = next((line.strip() for line in error.splitlines() if line.strip()), "unknown error")
        write_json(folder / "FAILED", {"error": first, "log": log_path})
    (folder / "RUNNING").unlink(missing_ok=True)


def run_debug(work: list[Work], root: Path, on_done: Callable[[Cell, bool], None], **_: object) -> None:
    """Run each cell in this process, one after another; a failure is recorded and the rest go on."""
    for cell, inputs in work:
        try:
            CellJob()(cell.to_json(), str(root), inputs)
            on_done(cell, True)
        except Exception as exc:  # noqa: BLE001 - recorded in FAILED by the store
            _record_failure(cell, root, f"{type(exc).__name__}: {exc}", str(cell.folder(root) / "error.txt"))
            on_done(cell, False)


def max_array_size() -> int:
    """The cluster's MaxArraySize (arrays are chunked below it)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20).stdout
        for line in out.splitlines():
            if line.strip().startswith("MaxArraySize"):
                return int(line.split("=")[1])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    return 1001


def _executor(kind: str, root: Path) -> tuple[submitit.AutoExecutor, Path]:
    folder = root / ".submitit" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    return submitit.AutoExecutor(folder=folder / "%j", cluster=kind), folder


def _wait(jobs: list[tuple[Cell, submitit.Job]], root: Path, on_done, poll: float) -> None:
    pending = list(jobs)
    while pending:
        still = []
        for cell, job in pending:
            if not job.done():
                still.append((cell, job))
                continue
            exc = job.exception()
            if exc is None:
                on_done(cell, True)
            else:
                state = job.state if job.state not in ("UNKNOWN", "FAILED", "COMPLETED") else ""
                _record_failure(cell, root, f"{state + ': ' if state else ''}{type(exc).__name__}: {exc}",
                                str(job.paths.stderr))
                on_done(cell, False)
        pending = still
        if pending:
            time.sleep(poll)


def run_submitit(work: list[Work], root: Path, on_done, kind: str, stage: str, profile: Profile,
                 max_parallel: int = 2, poll: float = 1.0) -> None:
    """Submit a stage wave: SLURM job arrays (chunked), or local processes ``max_parallel`` at a time."""
    res = profile.for_stage(stage)
    executor, folder = _executor(kind, root)
    if kind == "slurm":
        executor.update_parameters(name=f"skingen-{stage}", **slurm_parameters(res, root))
        chunk = max(1, max_array_size() - 1)
        for start in range(0, len(work), chunk):
            part = work[start:start + chunk]
            jobs = executor.map_array(CellJob(), [c.to_json() for c, _ in part], [str(root)] * len(part),
                                      [i for _, i in part])
            log.info("%s: submitted array %s (%d cells), logs in %s", stage, jobs[0].job_id.split("_")[0], len(part), folder)
            _wait(list(zip([c for c, _ in part], jobs)), root, on_done, poll)
        return
    executor.update_parameters(timeout_min=res.timeout_min, tasks_per_node=tasks_per_node(res))
    # local jobs inherit this environment: share the cores instead of oversubscribing them
    os.environ["SKINGEN_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, max_parallel)))
    queue = list(work)
    running: list[tuple[Cell, submitit.Job]] = []
    try:
        while queue or running:
            while queue and len(running) < max_parallel:
                cell, inputs = queue.pop(0)
                running.append((cell, executor.submit(CellJob(), cell.to_json(), str(root), inputs)))
            finished = [pair for pair in running if pair[1].done()]
            if finished:
                running = [pair for pair in running if not pair[1].done()]
                _wait(finished, root, on_done, poll)
            else:
                time.sleep(poll)
    except KeyboardInterrupt:
        for _, job in running:  # local jobs would outlive us otherwise
            job.cancel(check=False)
        raise


def progress_callback(stage: str, total: int) -> tuple[Callable[[Cell, bool], None], tqdm, list]:
    """A per-stage progress bar and a callback printing one line per finished cell."""
    bar = tqdm(total=total, desc=stage, unit="cell", disable=None)
    results: list = []

    def on_done(cell: Cell, ok: bool) -> None:
        results.append((cell, ok))
        bar.update()
        tqdm.write(f"{'done  ' if ok else 'FAILED'} {cell.stage}/{cell.name}-{cell.key[:8]}")

    return on_done, bar, results
