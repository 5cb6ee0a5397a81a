"""The cell store: ``cell.json`` + outputs + ``DONE`` (holding the key) written last and atomically.

A cell is done iff ``DONE`` exists and holds its key. ``RUNNING`` and ``FAILED`` markers (JSON) say
where the job's log is and, for failures, the last error line.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import time
import traceback
from pathlib import Path

from .. import __version__
from ..atomic import write_json, write_text
from ..errors import UserError
from . import damage
from .plan import Cell

STATES = ("done", "running", "failed", "pending")


def cell_state(cell: Cell, root: Path) -> str:
    """done / running / failed / pending for ``cell`` under results root ``root``."""
    folder = cell.folder(root)
    done = folder / "DONE"
    if done.is_file() and done.read_text().strip() == cell.key:
        return "done"
    if (folder / "FAILED").is_file():
        return "failed"
    if (folder / "RUNNING").is_file():
        return "running"
    return "pending"


def stale_folders(cell: Cell, root: Path) -> list[Path]:
    """Folders of the same stage and name with another key: results of an older config."""
    stage_dir = Path(root) / cell.stage
    if not stage_dir.is_dir():
        return []
    return sorted(p for p in stage_dir.glob(f"{cell.name}-*") if p.name != cell.folder(root).name
                  and p.name[len(cell.name) + 1:].isalnum() and len(p.name) == len(cell.name) + 9)


def marker(path: Path) -> dict:
    """The JSON content of a RUNNING/FAILED marker ({} if unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def process_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or None if there is no such
    process on this host."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid`` on this host, or None if there is none;
    with the pid it names a process even after its pid is reused."""
    stat = process_stat(pid)
    return None if stat is None else stat[19]


def _job_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid()),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    try:
        import submitit

        env = submitit.JobEnvironment()
        info.update({"job_id": env.job_id, "log": str(env.paths.stderr).replace("%t", "0")})
    except RuntimeError:
        pass
    return info


def _versions() -> dict:
    import numpy
    import torch

    return {"skingen": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__}


def execute_cell(cell: Cell, root: Path, inputs: dict[str, Path], fn, is_main: bool = True) -> dict:
    """Run ``fn`` for ``cell`` with the store protocol around it; only the main process writes markers."""
    folder = cell.folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    record = {**cell.to_json(), "versions": _versions(), "job": _job_info(), "inputs": {k: str(v) for k, v in inputs.items()}}
    if is_main:
        (folder / "FAILED").unlink(missing_ok=True)
        if (folder / "error.txt").is_file():  # keep the last failure's traceback, out of the way of this attempt's
            os.replace(folder / "error.txt", folder / "error.previous.txt")
        write_json(folder / "RUNNING", {**record["job"], "since": time.time()})
    start = time.time()
    try:
        result = fn(cell, folder, inputs)
    except BaseException as exc:
        if is_main and not _is_preemption(exc):
            write_text(folder / "error.txt", traceback.format_exc())
            named = damage.explain(cell, root, inputs, exc)  # a damaged input or state file: named, its cell marked
            error = str(named) if named else f"{type(exc).__name__}: {exc}".splitlines()[0]
            write_json(folder / "FAILED", {**record["job"], "error": error, "traceback": str(folder / "error.txt"),
                                           "input_error": named is None and isinstance(exc, UserError)})
            (folder / "RUNNING").unlink(missing_ok=True)
            if named:
                raise named from exc
        raise
    if is_main:
        record.update({"result": result, "timings": {"start": start, "end": time.time(), "seconds": time.time() - start}})
        write_json(folder / "cell.json", record)
        write_text(folder / "DONE", cell.key + "\n")
        (folder / "RUNNING").unlink(missing_ok=True)
    return result


def _is_preemption(exc: BaseException) -> bool:
    from ..classify.loop import Preempted

    return isinstance(exc, Preempted)
