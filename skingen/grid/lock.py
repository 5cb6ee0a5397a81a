"""One driver per results folder, and what a dead driver left running.

``FolderLock`` holds an advisory ``flock`` on ``ROOT/.driver.lock`` for the driver's life and writes the
holder (host, pid, start, command) into it. A second ``skingen run`` on the folder stops with one line
naming the holder. The kernel drops the lock when its process dies, however it dies, so a lock left by a
killed driver is simply taken over (logged). The lock is advisory and needs a file system that
supports ``flock`` across the hosts that may run drivers (local disks, Lustre/GPFS, NFSv4 do).

``reclaim_running`` deals with cells whose ``RUNNING`` marker outlived their driver: a worker process on
this host that is gone has its marker removed (the cell is retried); one still alive is an orphan of a
killed driver and is ended -- SIGTERM, which training cells answer by saving their full state, so the
retry resumes them -- never left to run beside a second copy of itself. A SLURM job still queued or
running is waited for.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UserError
from .plan import Cell
from .store import cell_state, marker, process_start, process_stat

log = logging.getLogger(__name__)
LOCK_NAME = ".driver.lock"


class FolderLock:
    """Exclusive advisory lock on a results folder for the life of a driver (a context manager)."""

    def __init__(self, root: Path):
        self.root, self.path, self.fd = Path(root), Path(root) / LOCK_NAME, -1

    def __enter__(self) -> "FolderLock":
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the results folder's lock ({exc.strerror or exc}); pass "
                            "--out DIR on a writable file system") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.fd)
            raise UserError(f"{self.root}: another 'skingen run' is driving this results folder (host "
                            f"{holder.get('host', '?')}, pid {holder.get('pid', '?')}, since "
                            f"{holder.get('since_text', '?')}); wait for it, or stop it (kill {holder.get('pid', 'PID')}) "
                            "and run again") from None
        previous = self._holder()
        if previous.get("pid"):
            log.warning("%s: taking over the lock of a driver that is gone (host %s, pid %s, since %s)", self.root,
                        previous.get("host"), previous.get("pid"), previous.get("since_text"))
        self._write({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                     "since_text": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)})
        return self

    def _holder(self) -> dict:
        try:
            return json.loads(os.pread(self.fd, 1 << 16, 0).decode() or "{}")
        except (OSError, ValueError):
            return {}

    def _write(self, info: dict) -> None:
        # In place, not by rename: the lock belongs to this inode.
        data = json.dumps(info).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def __exit__(self, *_: object) -> None:
        self._write({})
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _alive_here(info: dict) -> bool:
    pid = info.get("pid")
    if not isinstance(pid, int) or info.get("host") != socket.gethostname():
        return False
    start = process_start(pid)
    return start is not None and (info.get("start") is None or str(info.get("start")) == start)


def _submitit_controller(pid: int) -> int | None:
    """The submitit local controller that started worker ``pid`` (it restarts a worker that exits to be
    requeued, so it goes first), or None."""
    stat = process_stat(pid)
    try:
        ppid = int(stat[1]) if stat else -1
        cmdline = Path(f"/proc/{ppid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return ppid if b"submitit" in cmdline else None


def _end_process(pid: int, grace: float) -> None:
    """SIGTERM (a training cell saves its state), then SIGKILL after ``grace`` seconds; a submitit local
    controller above it is killed first, so that nothing restarts it."""
    if (controller := _submitit_controller(pid)) is not None:
        os.kill(controller, signal.SIGKILL)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            if process_start(pid) is None or _zombie(pid):
                return
            time.sleep(0.2)


def end_local_worker(info: dict, grace: float) -> bool:
    """End the worker a RUNNING marker's ``info`` names, when it is alive on this host (the same process, not a
    reused pid): its submitit controller first, then SIGTERM (a training cell saves its state), SIGKILL after
    ``grace`` seconds. True if there was one to end."""
    if not _alive_here(info):
        return False
    _end_process(int(info["pid"]), grace)
    return True


def _zombie(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is None or stat[0] == "Z"


def _slurm_alive(job_id: str) -> bool:
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def reclaim_running(cells: list[Cell], root: Path, grace: float = 60.0, poll: float = 5.0) -> list[str]:
    """Settle the cells marked RUNNING before this driver starts any: gone -> retried, local orphans ended,
    live SLURM jobs waited for. Call while holding the folder's lock. Returns one line per cell settled."""
    lines = []
    for cell in cells:
        if cell_state(cell, root) != "running":
            continue
        path = cell.folder(root) / "RUNNING"
        info = marker(path)
        name = f"{cell.stage}/{cell.folder(root).name}"
        job = info.get("slurm_job_id")
        if job and _slurm_alive(str(job)):
            log.info("%s: still running as SLURM job %s; waiting for it (it is never started twice)", name, job)
            while _slurm_alive(str(job)):
                time.sleep(poll)
            lines.append(f"{name}: waited for SLURM job {job}")
        elif _alive_here(info):
            log.warning("%s: worker pid %s outlived its driver; ending it (SIGTERM: training cells save their "
                        "state and resume)", name, info["pid"])
            end_local_worker(info, grace)
            lines.append(f"{name}: ended orphaned worker pid {info['pid']}")
        else:
            lines.append(f"{name}: its worker is gone; retried")
        if cell_state(cell, root) == "running":
            path.unlink(missing_ok=True)
    return lines
