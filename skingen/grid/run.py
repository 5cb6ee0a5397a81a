"""``skingen run``: plan a study, skip done cells, run the rest stage by stage; ``skingen status``."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from ..atomic import write_json
from ..errors import UserError
from . import damage
from .executors import make_backend
from .lock import FolderLock, reclaim_running
from .plan import STAGES, Cell, plan_study
from .profile import Profile, load_profile
from .preflight import check_or_raise
from .schedule import run_cells
from .spec import StudySpec, load_study
from .store import cell_state, marker, stale_folders

log = logging.getLogger(__name__)


def results_root(spec: StudySpec, out: str | os.PathLike | None) -> Path:
    """Where the study's cells live (default ``results/<study name>``)."""
    return Path(out) if out else Path("results") / spec.name


def plan_table(cells: list[Cell], root: Path) -> list[str]:
    """Per stage: how many cells are done, running, failed, pending and stale."""
    lines = [f"{'stage':<14} {'cells':>5} {'done':>5} {'running':>7} {'failed':>6} {'pending':>7} {'stale':>5}"]
    for stage in STAGES:
        sub = [c for c in cells if c.stage == stage]
        if not sub:
            continue
        states = Counter(cell_state(c, root) for c in sub)
        stale = sum(bool(stale_folders(c, root)) or damage.damaged(c, root) is not None for c in sub)
        lines.append(f"{stage:<14} {len(sub):>5} {states['done']:>5} {states['running']:>7} {states['failed']:>6} "
                     f"{states['pending']:>7} {stale:>5}")
    return lines


def _save_plan(spec: StudySpec, cells: list[Cell], root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec.path, root / "study.toml")
    write_json(root / "plan.json", {"study": spec.name, "created": time.time(), "cells": [c.to_json() for c in cells]})


REPO_ROOT = Path(__file__).resolve().parents[2]  # where slurm/profiles/ ships with the code


def _profile(spec: StudySpec, kind: str) -> Profile:
    """The executor profile; a relative path is looked up from the study's folder, its parent, here, then the
    repository the code runs from (its slurm/profiles/)."""
    if kind == "debug":
        return Profile()
    given = Path(spec.executor.profile)
    study_dir = Path(spec.path).resolve().parent
    tried = [given] if given.is_absolute() else list(dict.fromkeys(
        [study_dir / given, study_dir.parent / given, Path.cwd() / given, REPO_ROOT / given]))
    for path in tried:
        if path.is_file():
            return load_profile(path)
    raise UserError(f"{spec.path}: executor.profile {given} not found (tried {', '.join(map(str, tried))}); "
                    f"set [executor] profile to a profile's path (the shipped ones: {REPO_ROOT / 'slurm/profiles'})")


def run_study(study: str | os.PathLike, executor: str | None = None, out: str | os.PathLike | None = None,
              dry_run: bool = False, poll: float = 1.0, until: str | None = None, check: bool = False,
              preflight: bool = True, clean_stale: bool = False) -> dict[str, Counter]:
    """Run every cell not yet done, each as soon as its dependencies are (stages up to ``until`` only, then no
    report); returns per-stage counts. ``dry_run`` and ``check`` write nothing into the results folder;
    ``check``: only the preflight checks (always run before SLURM unless ``preflight`` is off, as in the
    driver job, whose submitter ran them). A run holds the folder's lock (``lock.py``) throughout."""
    if until is not None and until not in STAGES:
        raise UserError(f"--until {until!r}: not a stage; stages in order: {', '.join(STAGES)}")
    spec = load_study(study)
    kind = executor or spec.executor.kind
    root = results_root(spec, out).resolve()
    cells = plan_study(spec)
    stages = STAGES[:STAGES.index(until) + 1] if until else STAGES
    if dry_run:
        print("\n".join(plan_table(cells, root)))
        return {}
    profile = _profile(spec, kind)
    if check:
        check_or_raise(spec, cells, root, kind, profile, stages)
        return {}
    with FolderLock(root), _sigterm_as_interrupt():
        for line in reclaim_running(cells, root):
            log.info("%s", line)
        if clean_stale:
            remove_old_config_folders(cells, root)
        summary = _drive(spec, cells, root, kind, profile, stages, preflight, poll)
    if until:
        print(f"stopped after stage {until} as asked; run again without --until for the rest and the report")
    else:
        from ..report.build import build_report

        print(f"report (the study's closing analysis) -> {build_report(root)}")
    if lines := input_error_lines(cells, root):  # retrying would fail the same way: exit 2, not 1
        failed, blocked = (sum(c[k] for c in summary.values()) for k in ("failed", "blocked"))
        raise UserError("\n".join(lines + [f"{failed} cell(s) failed, {blocked} blocked by them; "
                                            "'skingen status' lists them"]))
    return summary


def old_config_folders(cells: list[Cell], root: Path) -> list[Path]:
    """Folders that hold results of another config of a planned cell (same stage and name, other key)."""
    return sorted({folder for cell in cells for folder in stale_folders(cell, root)})


def remove_old_config_folders(cells: list[Cell], root: Path) -> None:
    """``run --clean-stale``: delete the results of old configs (a changed study leaves them behind)."""
    for folder in old_config_folders(cells, root):
        shutil.rmtree(folder)
        log.info("removed %s: results of an old config of this study", folder)


def input_error_lines(cells: list[Cell], root: Path) -> list[str]:
    """One line per cell that failed on bad input (its FAILED marker says so), with the fix."""
    lines = []
    for cell in cells:
        info = marker(cell.folder(root) / "FAILED") if cell_state(cell, root) == "failed" else {}
        if info.get("input_error"):
            error = str(info.get("error", "?")).removeprefix("UserError: ")
            lines.append(f"{error} (cell {cell.stage}/{cell.folder(root).name}: an input error; "
                         "fix the input, then run again)")
    return lines


def _drive(spec: StudySpec, cells: list[Cell], root: Path, kind: str, profile: Profile, stages: tuple[str, ...],
           preflight: bool, poll: float) -> dict[str, Counter]:
    """Rebuild damaged cells, check, save the plan and run the cells; raise on damage found meanwhile."""
    damage.reset(cells, root)  # cells found damaged earlier are rebuilt from nothing
    if kind == "slurm" and preflight:
        check_or_raise(spec, cells, root, kind, profile, stages, marking=True)
    elif lines := damage.scan(cells, root):
        raise UserError("\n".join(lines))
    _save_plan(spec, cells, root)
    backend = make_backend(kind, root, profile, spec.executor.max_parallel, poll)
    summary = run_cells(cells, root, backend, kind, stages)
    print("\n".join(plan_table(cells, root)))
    if lines := damage.marked_lines(cells, root):  # found by cells of this run: rebuilt by the next
        raise UserError("\n".join(lines))
    return summary


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM to the driver stops it as Ctrl-C does: its local workers are cancelled, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def submit_driver(study: str | os.PathLike, out: str | os.PathLike | None = None) -> str:
    """Submit ``skingen run --executor slurm`` itself as a small SLURM job, so the submitting shell may exit.

    The driver submits each stage's job array, waits for it, then writes the report; returns its job id.
    """
    import submitit

    spec = load_study(study)
    root = results_root(spec, out).resolve()
    cells = plan_study(spec)
    damage.reset(cells, root)
    check_or_raise(spec, cells, root, "slurm", _profile(spec, "slurm"))
    profile = _profile(spec, "slurm").for_stage("driver")
    executor = submitit.AutoExecutor(folder=root / ".submitit" / f"driver-{time.strftime('%Y%m%d-%H%M%S')}" / "%j",
                                     cluster="slurm")
    executor.update_parameters(name=f"skingen-driver-{spec.name}", timeout_min=max(profile.timeout_min, 24 * 60),
                               cpus_per_task=1, mem_gb=2, slurm_partition=profile.partition or None)
    job = executor.submit(run_study, str(Path(study).resolve()), "slurm", str(root), preflight=False)
    return str(job.job_id)


def status_lines(root: str | os.PathLike) -> list[str]:
    """The status of a results folder: per-stage counts, then each failed cell with its log and error, then
    damaged files (``damaged: ...``). Writes nothing (``run`` marks damaged cells)."""
    root = Path(root)
    plan = root / "plan.json"
    if not plan.is_file():
        raise UserError(f"{plan}: not found; is {root} a study results folder (made by 'skingen run')?")
    cells = [Cell(**c) for c in json.loads(plan.read_text())["cells"]]
    found = damage.scan(cells, root, marking=False)
    lines = plan_table(cells, root)
    for c in cells:
        state = cell_state(c, root)
        if state in ("failed", "running"):
            info = marker(c.folder(root) / ("FAILED" if state == "failed" else "RUNNING"))
            lines.append(f"{state}: {c.stage}/{c.folder(root).name} log {info.get('log', '?')}"
                         + (f" error: {info.get('error', '?')}" if state == "failed" else ""))
    lines += [f"old config: {folder} (an earlier config of this cell; 'skingen run STUDY --clean-stale' removes it)"
              for folder in old_config_folders(cells, root)]
    return lines + [f"damaged: {text}" for text in damage.marked_lines(cells, root) + found]
