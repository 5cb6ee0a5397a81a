"""Study spec, plan keys, cell store, debug and local executors (the real-SLURM tests are in test_slurm.py)."""
from __future__ import annotations

import json

import pytest

from builders import read_rows, study_variant
from skingen.errors import UserError
from skingen.grid.plan import plan_study
from skingen.grid.run import run_study, status_lines
from skingen.grid.spec import load_study
from skingen.grid.store import cell_state


def _keys(path):
    return {(c.stage, c.name): c.key for c in plan_study(load_study(path))}


def test_spec_errors_name_the_key(tmp_path):
    for bad, needle in ((("epochs = 1", "epoch = 1"), "unknown key(s) epoch"),
                        (('models = ["resnet18"]', 'models = ["resnet9"]'), "classify.models: 'resnet9'"),
                        (("seed = 7", 'seed = "x"'), "expected int"),
                        (('name = "smoke"', ""), "[study] needs name")):
        path = study_variant(tmp_path, replace={bad[0]: bad[1]})
        with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_study(path)


def test_changing_one_parameter_changes_exactly_the_dependent_cells(tmp_path):
    base = _keys(study_variant(tmp_path, "a.toml"))
    assert base == _keys(study_variant(tmp_path, "b.toml"))  # stable
    epochs = _keys(study_variant(tmp_path, "c.toml", {"epochs = 1": "epochs = 2"}))
    changed = {k for k in base if base[k] != epochs[k]}
    assert changed == {k for k in base if k[0] in ("train_clf", "clf_metrics")}
    split = _keys(study_variant(tmp_path, "d.toml", {"test = 0.15": "test = 0.2"}))
    changed = {k[0] for k in base if base[k] != split[k]}
    assert changed == {"split", "pack", "train_clf", "clf_metrics"}
    more = _keys(study_variant(tmp_path, "e.toml", {'models = ["resnet18"]': 'models = ["resnet18", "efficientnet_b0"]'}))
    assert all(more[k] == v for k, v in base.items()) and len(more) == len(base) + 4


def test_metric_cells_pair_with_the_real_arm(tmp_path):
    cells = plan_study(load_study(study_variant(tmp_path)))
    train = {c.key: c for c in cells if c.stage == "train_clf"}
    real = next(c for c in train.values() if c.config["arm"]["name"] == "real")
    for m in (c for c in cells if c.stage == "clf_metrics"):
        arm = train[m.deps["train"]].config["arm"]["name"]
        assert (m.deps.get("baseline") == real.key) == (arm != "real")


def test_debug_run_skips_done_and_reruns_a_failed_cell_alone(tmp_path, capsys):
    study = study_variant(tmp_path)
    out = tmp_path / "results"
    first = run_study(study, executor="debug", out=out)
    assert first["train_clf"]["done"] == 2 and first["clf_metrics"]["done"] == 2
    cells = plan_study(load_study(study))
    assert all(cell_state(c, out) == "done" for c in cells)
    record = json.loads((cells[-1].folder(out) / "cell.json").read_text())
    assert record["timings"]["seconds"] > 0 and record["versions"]["torch"]
    metrics = json.loads((cells[-1].folder(out) / "metrics.json").read_text())
    assert "paired_vs_baseline" in metrics or cells[-1].name.startswith("basic-real")
    again = run_study(study, executor="debug", out=out)
    assert sum(sum(c.values()) for c in again.values()) == 0  # nothing ran
    victim = next(c for c in cells if c.stage == "train_clf")
    (victim.folder(out) / "DONE").unlink()
    (victim.folder(out) / "FAILED").write_text('{"error": "simulated", "log": "x"}')
    assert cell_state(victim, out) == "failed"
    assert any("failed: train_clf/" in line and "simulated" in line for line in status_lines(out))
    third = run_study(study, executor="debug", out=out)
    assert third["train_clf"] == {"blocked": 0, "done": 1} and sum(third["clf_metrics"].values()) == 0


def test_a_failing_cell_is_recorded_and_blocks_its_dependants(tmp_path, cli):
    study = study_variant(tmp_path, replace={"epochs = 1": "epochs = 1\npretrained = true\nweights_dir = \"/nonexistent\""})
    res = cli("run", study, "--executor", "debug", "--out", tmp_path / "r")
    # an input error: exit 2 with the fix, one line per cell (not exit 1 "run again to retry them")
    assert res.code == 2 and res.err.count("\n") == 3 and "retry" not in res.err and "2 cell(s) failed, 2 blocked" in res.err
    assert res.err.count("ImageNet weights for resnet18 not found") == 2 and "an input error; fix the input" in res.err
    lines = status_lines(tmp_path / "r")
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == 2 and all("ImageNet weights for resnet18 not found" in line for line in failed)


def test_dry_run_shows_pending_and_stale(tmp_path, cli):
    study = study_variant(tmp_path)
    res = cli("run", study, "--dry-run", "--out", tmp_path / "r")
    assert res.code == 0 and "train_clf          2     0       0      0       2     0" in res.out
    (tmp_path / "r" / "train_clf" / "basic-real-resnet18-s0-0badc0de").mkdir(parents=True)
    res = cli("run", study, "--dry-run", "--out", tmp_path / "r")
    assert "train_clf          2     0       0      0       2     1" in res.out


def test_local_executor_runs_the_smoke_study_with_a_two_process_training_cell(tmp_path):
    profile = tmp_path / "profile.toml"
    profile.write_text("[defaults]\ntimeout_min = 20\n[stages.train_clf]\ntasks_per_node = 2\n")
    study = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': 'arms = ["real"]'}, profile=profile)
    summary = run_study(study, executor="local", out=tmp_path / "r", poll=0.2)
    assert summary["train_clf"]["done"] == 1 and summary["clf_metrics"]["done"] == 1
    train = next(c for c in plan_study(load_study(study)) if c.stage == "train_clf")
    info = json.loads((train.folder(tmp_path / "r") / "train_summary.json").read_text())
    assert info["num_processes"] == 2  # two tasks, gloo, one Accelerate loop
    assert len(read_rows(train.folder(tmp_path / "r") / "predictions.csv")) > 0
