"""A results folder two drivers cannot corrupt, and inspection that writes nothing (issue 25 items 1, 2).

Real processes throughout: the second driver, the killed driver and its orphaned local workers are real
``skingen run`` processes on the local (submitit) executor.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from builders import REPO, study_variant
from skingen.grid.lock import LOCK_NAME, _zombie
from skingen.grid.plan import plan_study
from skingen.grid.spec import load_study
from skingen.grid.store import cell_state, marker, process_start
from skingen.metrics.predictions import read_predictions

SKINGEN = [sys.executable, "-m", "skingen.cli"]


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (found := predicate()):
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _hold_lock(root: Path) -> subprocess.Popen:
    """Another process that holds the folder's lock as a live driver does."""
    code = ("import sys, time; from pathlib import Path; from skingen.grid.lock import FolderLock\n"
            "with FolderLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_driver_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, cli, caplog):
    study, out = study_variant(tmp_path), tmp_path / "r"
    holder = _hold_lock(out)
    try:
        r = cli("run", study, "--executor", "debug", "--out", out, "--until", "split")
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert f"pid {holder.pid}" in r.err and "another 'skingen run' is driving this results folder" in r.err
        assert not (out / "plan.json").exists()  # nothing ran
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    r = cli("run", study, "--executor", "debug", "--out", out, "--until", "split")
    assert r.code == 0, r.err
    assert f"taking over the lock of a driver that is gone (host {os.uname().nodename}, pid {holder.pid}" in caplog.text
    assert json.loads((out / LOCK_NAME).read_text() or "{}") == {}  # released: no holder recorded


def test_dry_run_check_and_status_write_nothing(tmp_path, cli):
    study, out = study_variant(tmp_path), tmp_path / "r"
    assert cli("run", study, "--executor", "debug", "--out", out, "--until", "pack").code == 0
    edited = study_variant(tmp_path, "edited.toml", replace={"seed = 7": "seed = 8"})
    before = _hash_tree(out)
    assert cli("run", edited, "--dry-run", "--out", out).code == 0
    assert cli("run", edited, "--check", "--executor", "local", "--out", out).code == 0
    assert cli("status", out).code == 0
    assert _hash_tree(out) == before
    assert "seed = 7" in (out / "study.toml").read_text()  # the run's own study, not the dry-run's edit
    pack = next(c for c in plan_study(load_study(study)) if c.stage == "pack")
    shard = pack.folder(out) / "train.h5"
    shard.write_bytes(shard.read_bytes()[:1000])  # damaged: status reports it (exit 1) and still writes nothing
    before = _hash_tree(out)
    status = cli("status", out)
    assert status.code == 1 and f"damaged: {shard}: truncated or corrupt" in status.out
    assert cli("run", study, "--check", "--executor", "local", "--out", out).code == 2
    assert _hash_tree(out) == before


def _start_driver(study: Path, out: Path, background: bool = False) -> subprocess.Popen:
    """``skingen run`` as its own session; ``background``: with SIGINT ignored, as ``nohup skingen run ... &``
    from a script leaves it (and every process it starts)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    return subprocess.Popen([*SKINGEN, "run", str(study), "--executor", "local", "--out", str(out)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=ignore)


def _running_training(out: Path):
    for path in (out / "train_clf").glob("*/RUNNING"):
        info = marker(path)
        if info.get("pid") and (path.parent / "progress.json").is_file():  # mid-cell: one epoch saved at least
            return path.parent, info
    return None


def test_kill_9_of_a_local_driver_then_rerun_runs_each_cell_once_and_equals_an_uninterrupted_run(tmp_path, cli,
                                                                                                caplog):
    replace = {"epochs = 1": "epochs = 12\ncheckpoint_every = 1", 'arms = ["real", "oversample"]': 'arms = ["real"]'}
    study = study_variant(tmp_path, replace=replace)
    assert cli("run", study, "--executor", "local", "--out", tmp_path / "whole").code == 0
    out = tmp_path / "killed"
    driver = _start_driver(study, out)
    cell, info = _wait(lambda: _running_training(out), 300, "a training cell to be mid-run")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert process_start(info["pid"]) is not None  # the worker outlived its driver: an orphan
    r = cli("run", study, "--executor", "local", "--out", out)
    assert r.code == 0, r.err
    assert process_start(info["pid"]) is None  # ended (SIGTERM: it saved its state), not left beside the rerun
    assert f"worker pid {info['pid']} outlived its driver; ending it" in caplog.text
    cells = plan_study(load_study(study))
    assert all(cell_state(c, out) == "done" for c in cells)
    assert not list(out.rglob("DAMAGED")) and not list(out.rglob("FAILED"))
    progress = json.loads((cell / "progress.json").read_text())
    assert [row["epoch"] for row in progress["curves"]] == list(range(12))  # every epoch once
    _, _, y_a, prob_a = read_predictions(cell / "predictions.csv")
    _, _, y_b, prob_b = read_predictions(tmp_path / "whole" / "train_clf" / cell.name / "predictions.csv")
    assert np.array_equal(y_a, y_b) and np.allclose(prob_a, prob_b, atol=1e-4)
    logs = "".join(p.read_text() for p in (tmp_path / "whole" / ".submitit").rglob("*_log.err"))
    assert "epoch 12/12 done: train loss" in logs and "batch (100 %)" in logs  # progress in the local logs


def test_output_into_a_closed_pipe_ends_quietly():
    """``skingen gen summary | head``: the reader is gone before skingen writes (closed here at once)."""
    proc = subprocess.Popen([*SKINGEN, "gen", "summary", "--generator", "stylegan2_ada", "--resolution", "256"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() == 0, err
    assert "BrokenPipe" not in err and "internal error" not in err and "Exception" not in err


def test_a_study_copied_out_of_the_repository_finds_the_shipped_profile(tmp_path, cli, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "study.toml").write_text((REPO / "jobs" / "smoke.toml").read_text())
    monkeypatch.chdir(tmp_path)
    r = cli("run", outside / "study.toml", "--check", "--executor", "local", "--out", tmp_path / "r")
    assert r.code == 0, r.err  # slurm/profiles/local.toml from the repository the code runs from
    (outside / "study.toml").write_text((REPO / "jobs" / "smoke.toml").read_text().replace(
        'profile = "slurm/profiles/local.toml"', 'profile = "profiles/mine.toml"'))
    r = cli("run", outside / "study.toml", "--check", "--executor", "local", "--out", tmp_path / "r")
    assert r.code == 2 and r.err.count("\n") == 1
    assert f"tried {outside / 'profiles/mine.toml'}, {tmp_path / 'profiles/mine.toml'}" in r.err
    assert str(REPO / "slurm/profiles") in r.err


def test_old_config_folders_are_listed_apart_from_damage_and_cleaned_on_request(tmp_path, cli):
    study, out = study_variant(tmp_path), tmp_path / "r"
    assert cli("run", study, "--executor", "debug", "--out", out, "--until", "phantom").code == 0
    old = next((out / "phantom").iterdir())
    edited = study_variant(tmp_path, "edited.toml", replace={"seed = 7": "seed = 8"})
    assert cli("run", edited, "--executor", "debug", "--out", out, "--until", "phantom").code == 0
    status = cli("status", out)
    assert status.code == 0 and f"old config: {old} (" in status.out and "damaged:" not in status.out
    assert old.is_dir()
    assert cli("run", edited, "--executor", "debug", "--out", out, "--until", "phantom", "--clean-stale").code == 0
    assert not old.exists() and "old config:" not in cli("status", out).out


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "sigint-ignored"])
def test_sigterm_to_a_local_driver_stops_its_workers(tmp_path, background):
    """Also when the driver was started in the background (SIGINT ignored, inherited by submitit's controller,
    which then ignores the SIGINT it is cancelled with): the driver ends its workers itself."""
    # 300 epochs: were the worker left running, it could not finish before the checks below
    replace = {"epochs = 1": "epochs = 300", 'arms = ["real", "oversample"]': 'arms = ["real"]'}
    study, out = study_variant(tmp_path, replace=replace), tmp_path / "r"
    driver = _start_driver(study, out, background)
    cell, info = _wait(lambda: _running_training(out), 300, "a training cell to be mid-run")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=60) != 0
    _wait(lambda: process_start(info["pid"]) is None or _zombie(info["pid"]), 30, "the worker to stop with its driver")
    assert not (cell / "DONE").exists()  # stopped, not left to finish on its own
    assert json.loads((out / LOCK_NAME).read_text() or "{}") == {}  # the lock was released on the way out


def test_help_lists_the_stages_and_the_asset_names(cli, capsys):
    from skingen.assets import ASSETS
    from skingen.grid.plan import STAGES

    for args, names in ((["run", "--help"], STAGES), (["assets", "fetch", "--help"], ASSETS)):
        with pytest.raises(SystemExit):
            cli(*args)
        text = " ".join(capsys.readouterr().out.split())
        assert all(name in text for name in names), (args, text)
