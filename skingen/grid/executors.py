"""Executors: ``debug`` runs cells in this process; ``local`` and ``slurm`` submit them with submitit
(a fresh log folder per submission, since a reused one can return stale results).

Each executor is a backend the scheduler (``schedule.py``) hands ready cells to, stage by stage, and
asks for finished ones: ``submit(stage, work)``, ``collect()`` (waits until at least one cell has
finished while any is out), ``busy()`` and ``cancel()``.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from pathlib import Path

import submitit

from ..atomic import write_json
from .jobs import CellJob
from .lock import end_local_worker
from .plan import STAGES, Cell
from .profile import Profile, slurm_parameters, tasks_per_node
from .store import cell_state, marker

log = logging.getLogger(__name__)
Work = tuple[Cell, dict[str, str]]  # a cell and its input folders
Outcome = tuple[Cell, bool]  # a finished cell and whether it is done
LIGHT_STAGES = frozenset({"clf_metrics"})  # seconds of work: the local executor runs them in process


def _record_failure(cell: Cell, root: Path, error: str, log_path: str) -> None:
    folder = cell.folder(root)
    if cell_state(cell, root) != "failed":  # the job itself writes FAILED unless it was killed
        folder.mkdir(parents=True, exist_ok=True)
        first = next((line.strip() for line in error.splitlines() if line.strip()), "unknown error")
        write_json(folder / "FAILED", {"error": first, "log": log_path})
    (folder / "RUNNING").unlink(missing_ok=True)


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


class DebugBackend:
    """Run each cell in this process when it is submitted; a failure is recorded and the rest go on."""

    def __init__(self, root: Path):
        self.root, self.finished = root, []

    def submit(self, stage: str, work: list[Work]) -> None:
        """Run ``work`` now, one cell after another."""
        for cell, inputs in work:
            try:
                CellJob()(cell.to_json(), str(self.root), inputs)
                self.finished.append((cell, True))
            except Exception as exc:  # noqa: BLE001 - recorded in FAILED by the store
                _record_failure(cell, self.root, f"{type(exc).__name__}: {exc}", str(cell.folder(self.root) / "error.txt"))
                self.finished.append((cell, False))

    def busy(self) -> bool:
        return bool(self.finished)

    def collect(self) -> list[Outcome]:
        out, self.finished = self.finished, []
        return out

    def cancel(self) -> None:
        pass


class SubmititBackend:
    """Cells as submitit jobs: SLURM job arrays per stage (chunked below MaxArraySize), or local processes
    ``max_parallel`` at a time across stages, earlier stages first (the longest chains start first)."""

    def __init__(self, kind: str, root: Path, profile: Profile, max_parallel: int = 2, poll: float = 1.0):
        self.kind, self.root, self.profile, self.poll = kind, root, profile, poll
        self.max_parallel = max(1, max_parallel)
        self.queue: list[tuple[str, Cell, dict]] = []
        self.running: list[tuple[Cell, submitit.Job]] = []
        self.inline = DebugBackend(root)
        self.executors: dict[str, submitit.AutoExecutor] = {}
        self.array_chunk = 0  # below the cluster's MaxArraySize, asked once
        if kind == "local":  # local jobs inherit this environment: share the cores instead of oversubscribing
            os.environ["SKINGEN_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.max_parallel))

    def _executor(self, stage: str) -> submitit.AutoExecutor:
        """One executor (and log folder) per stage and run, with the stage's resources."""
        if stage not in self.executors:
            folder = self.root / ".submitit" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}-{stage}"
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster=self.kind)
            res = self.profile.for_stage(stage)
            if self.kind == "slurm":
                executor.update_parameters(name=f"skingen-{stage}", **slurm_parameters(res, self.root))
            else:
                executor.update_parameters(timeout_min=res.timeout_min, tasks_per_node=tasks_per_node(res))
            self.executors[stage] = executor
        return self.executors[stage]

    def submit(self, stage: str, work: list[Work]) -> None:
        """SLURM: submit the stage's arrays now. Local: queue the cells (light stages run in process)."""
        if self.kind == "local":
            if stage in LIGHT_STAGES:
                self.inline.submit(stage, work)
            else:
                self.queue += [(stage, c, i) for c, i in work]
                self.queue.sort(key=lambda item: STAGES.index(item[0]))  # stable: plan order within a stage
                self._fill()
            return
        executor = self._executor(stage)
        self.array_chunk = self.array_chunk or max(1, max_array_size() - 1)
        for start in range(0, len(work), self.array_chunk):
            part = work[start:start + self.array_chunk]
            jobs = executor.map_array(CellJob(), [c.to_json() for c, _ in part], [str(self.root)] * len(part),
                                      [i for _, i in part])
            log.info("%s: submitted array %s (%d cells), logs in %s", stage, jobs[0].job_id.split("_")[0], len(part),
                     executor.folder)
            self.running += list(zip([c for c, _ in part], jobs))

    def _fill(self) -> None:
        while self.queue and len(self.running) < self.max_parallel:
            stage, cell, inputs = self.queue.pop(0)
            self.running.append((cell, self._executor(stage).submit(CellJob(), cell.to_json(), str(self.root), inputs)))

    def busy(self) -> bool:
        return bool(self.queue or self.running or self.inline.busy())

    def _outcome(self, cell: Cell, job: submitit.Job) -> bool:
        exc = job.exception()
        if exc is not None:
            state = job.state if job.state not in ("UNKNOWN", "FAILED", "COMPLETED") else ""
            _record_failure(cell, self.root, f"{state + ': ' if state else ''}{type(exc).__name__}: {exc}",
                            str(job.paths.stderr))
        return exc is None

    def collect(self) -> list[Outcome]:
        """Finished cells; waits (polling) until at least one has finished while any is out."""
        out = self.inline.collect()
        while not out and self.running:
            finished = [(c, j) for c, j in self.running if j.done()]
            if not finished:
                time.sleep(self.poll)
                continue
            gone = {id(j) for _, j in finished}
            self.running = [(c, j) for c, j in self.running if id(j) not in gone]
            out = [(c, self._outcome(c, j)) for c, j in finished]
        self._fill()
        return out

    def cancel(self, grace: float = 30.0) -> None:
        """Cancel local jobs (they would outlive us otherwise); SLURM jobs keep running on the cluster.

        submitit cancels a local job with SIGINT to its controller, which a process started in the background
        (``nohup skingen run ... &``) inherits as ignored; so each worker that has marked its cell RUNNING is
        also ended directly -- SIGTERM (a training cell saves its state), SIGKILL after ``grace`` seconds."""
        if self.kind == "local":
            for cell, job in self.running:
                job.cancel(check=False)
                if end_local_worker(marker(cell.folder(self.root) / "RUNNING"), grace):
                    log.info("%s: ended its worker", cell.name)


def make_backend(kind: str, root: Path, profile: Profile, max_parallel: int, poll: float):
    """The backend of executor ``kind`` (debug, local or slurm)."""
    return DebugBackend(root) if kind == "debug" else SubmititBackend(kind, root, profile, max_parallel, poll)
