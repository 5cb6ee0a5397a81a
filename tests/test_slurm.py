"""Integration tests on the real single-node SLURM (slurm-wlm + munge + slurmdbd + MariaDB)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from builders import REPO, read_rows, study_variant
from skingen.grid.plan import plan_study
from skingen.grid.run import run_study, status_lines
from skingen.grid.spec import load_study
from skingen.grid.store import cell_state

pytestmark = pytest.mark.slurm


def _wait(predicate, timeout: float, what: str, step: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _squeue_running(name_prefix: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %j"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1].startswith(name_prefix)]


def _start_run(study, out):
    return subprocess.Popen([sys.executable, "-m", "skingen.cli", "run", str(study), "--executor", "slurm",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


UPSTREAM = ("phantom", "ingest", "split", "pack")  # stages whose cells do not depend on [classify]


@pytest.fixture(scope="module")
def smoke_run(slurm_cluster, tmp_path_factory):
    """The smoke study run once on SLURM; later tests start from its finished data cells."""
    root = tmp_path_factory.mktemp("slurm_smoke")
    study = study_variant(root)
    return study, root / "r", run_study(study, executor="slurm", out=root / "r", poll=0.5)


def _with_data_done(smoke_run, out: Path) -> Path:
    """``out`` holding copies of the smoke run's data cells (same keys), so a run starts at training."""
    for stage in UPSTREAM:
        shutil.copytree(smoke_run[1] / stage, out / stage)
    return out


def test_smoke_study_runs_to_done_on_slurm(smoke_run):
    study, out, summary = smoke_run
    assert summary["train_clf"]["done"] == 2 and summary["clf_metrics"]["done"] == 2
    cells = plan_study(load_study(study))
    assert all(cell_state(c, out) == "done" for c in cells)
    train = next(c for c in cells if c.stage == "train_clf")
    job = json.loads((train.folder(out) / "cell.json").read_text())["job"]
    assert job["slurm_job_id"]  # it really ran as a SLURM job


def _long_training(tmp_path, epochs: int = 15):
    return study_variant(tmp_path, replace={"epochs = 1": f"epochs = {epochs}",
                                            'arms = ["real", "oversample"]': 'arms = ["real"]'})


def test_scancel_marks_the_cell_failed_and_a_rerun_runs_it_alone(smoke_run, tmp_path):
    study, out = _long_training(tmp_path), _with_data_done(smoke_run, tmp_path / "r")
    proc = _start_run(study, out)
    job = _wait(lambda: _squeue_running("skingen-train_clf"), 240, "the training job to run")[0]
    subprocess.run(["scancel", job], check=True)
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, log
    lines = status_lines(out)
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == 1 and "train_clf/" in failed[0] and "CANCELLED" in failed[0] and "_log.err" in failed[0]
    # the rerun runs only that cell (then its blocked metrics cell), with a short training
    summary = run_study(study, executor="slurm", out=out, poll=0.5)
    assert summary["phantom"] == {"blocked": 0} and summary["pack"] == {"blocked": 0}
    assert summary["train_clf"]["done"] == 1 and summary["clf_metrics"]["done"] == 1


def test_preempted_training_cell_requeues_and_resumes_to_the_same_result(smoke_run, tmp_path):
    study = _long_training(tmp_path, epochs=12)
    reference = run_study(study, executor="slurm", out=_with_data_done(smoke_run, tmp_path / "ref"), poll=0.5)
    assert reference["train_clf"]["done"] == 1 and reference["pack"] == {"blocked": 0}  # the data cells were reused
    out = _with_data_done(smoke_run, tmp_path / "pre")
    proc = _start_run(study, out)
    train = next(c for c in plan_study(load_study(study)) if c.stage == "train_clf")
    job = _wait(lambda: _squeue_running("skingen-train_clf"), 240, "the training job to run")[0]
    _wait(lambda: (train.folder(out) / "progress.json").is_file(), 120, "the first epoch's checkpoint")
    subprocess.run(["scancel", job, "--signal", "SIGTERM"], check=True)  # preemption: SIGTERM, then USR2
    subprocess.run(["scancel", job, "--signal", "USR2"], check=True)
    base = job.split("_")[0]

    def requeued() -> bool:
        out_ = subprocess.run(["scontrol", "show", "job", base], capture_output=True, text=True).stdout
        return "JobState=PENDING" in out_ and "Restarts=1" in out_

    _wait(requeued, 120, "the job to be requeued")
    subprocess.run(["scontrol", "update", f"JobId={base}", "StartTime=now"], check=True)  # skip the 120 s hold
    log, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, log
    sacct = subprocess.run(["sacct", "-j", base, "-X", "-n", "-o", "State", "-D"], capture_output=True, text=True).stdout
    assert "REQUEUED" in sacct or "PREEMPTED" in sacct
    a = read_rows(train.folder(tmp_path / "ref") / "predictions.csv")
    b = read_rows(train.folder(out) / "predictions.csv")
    probs = [[float(r[k]) for k in r if k.startswith("prob_")] for r in a]
    probs_b = [[float(r[k]) for k in r if k.startswith("prob_")] for r in b]
    assert [r["image_id"] for r in a] == [r["image_id"] for r in b]
    assert np.allclose(probs, probs_b, atol=1e-5)  # same single-CPU job settings: resume equals continuous


def test_detached_driver_job_runs_the_study_after_the_shell_returns(smoke_run, tmp_path, cli):
    study = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': 'arms = ["real"]'})
    start = time.time()
    res = cli("run", study, "--executor", "slurm", "--out", _with_data_done(smoke_run, tmp_path / "r"), "--detach")
    assert res.code == 0 and "driver job" in res.out and time.time() - start < 30
    cells = plan_study(load_study(study))
    _wait(lambda: (tmp_path / "r" / "report" / "index.html").is_file(), 400, "the driver to finish the study", step=2)
    assert all(cell_state(c, tmp_path / "r") == "done" for c in cells)
