"""`skingen run --check`: each failed check is one line and exit 2 with nothing submitted; the disk table
follows keep_weights; the partition, account and container checks against the local SLURM cluster."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from builders import REPO, ham_dataset, study_variant
from skingen.grid import disk
from skingen.grid.plan import plan_study
from skingen.grid.spec import load_study

PHANTOM = "[data.phantom]\nn = 120\nsize = 64\nseed = 7"


def _errors(r) -> list[str]:
    lines = r.err.strip().splitlines()
    assert all(line.startswith("skingen: error: ") for line in lines), r.err
    return [line.removeprefix("skingen: error: ") for line in lines]


def test_a_good_study_passes_and_prints_the_disk_table(tmp_path, cli):
    r = cli("run", study_variant(tmp_path), "--check", "--executor", "local", "--out", tmp_path / "r")
    assert r.code == 0, r.err
    assert "train_clf" in r.out and "best_model.pt + training state" in r.out and "free on the file system" in r.out
    assert "checks passed" in r.out
    assert not (tmp_path / "r").exists()  # nothing planned, nothing run


def test_missing_and_unknown_sources(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    study = study_variant(tmp_path, replace={PHANTOM: f'[data]\nsources = ["{tmp_path / "nosuch"}", '
                                                      f'"{tmp_path / "empty"}"]'})
    r = cli("run", study, "--check", "--executor", "debug", "--out", tmp_path / "r")
    errors = _errors(r)
    assert r.code == 2 and len(errors) == 2
    assert errors[0].startswith(f"data.sources: {tmp_path / 'nosuch'}: no such folder")
    assert f"{tmp_path / 'empty'}: no known dataset layout" in errors[1]
    # a real layout is detected and its images counted for the disk estimate
    ham_dataset(tmp_path / "ham", [(f"L{i}", f"ISIC_{i:07d}", "mel" if i % 3 else "nv") for i in range(12)])
    study = study_variant(tmp_path, "ok.toml", replace={PHANTOM: f'[data]\nsources = ["{tmp_path / "ham"}"]'})
    r = cli("run", study, "--check", "--executor", "debug", "--out", tmp_path / "r")
    assert r.code == 0, r.err


def _pretrained(tmp_path, cache):
    return study_variant(tmp_path, replace={"epochs = 1": f'epochs = 1\npretrained = true\nweights_dir = "{cache}"'})


def test_missing_asset_names_the_fetch_command(tmp_path, cli):
    r = cli("run", _pretrained(tmp_path, tmp_path / "cache"), "--check", "--executor", "debug", "--out", tmp_path / "r")
    assert r.code == 2
    assert _errors(r) == [f"{tmp_path / 'cache/timm/resnet18.safetensors'}: missing; run "
                          "'skingen assets fetch --only resnet18'"]


def test_wrong_sha256_names_the_fetch_command(tmp_path, cli):
    cache = tmp_path / "cache"
    (cache / "timm").mkdir(parents=True)
    (cache / "timm" / "resnet18.safetensors").write_bytes(b"weights, damaged since the fetch")
    (cache / "assets.json").write_text(json.dumps({"timm/resnet18.safetensors": {
        "asset": "resnet18", "url": "https://x", "sha256": hashlib.sha256(b"weights").hexdigest()}}))
    r = cli("run", _pretrained(tmp_path, cache), "--check", "--executor", "debug", "--out", tmp_path / "r")
    assert r.code == 2 and len(_errors(r)) == 1
    assert "sha256 differs from the one recorded at fetch; run 'skingen assets fetch --force --only resnet18'" in r.err


def test_too_little_disk(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(disk, "free_bytes", lambda path: 50_000_000)
    r = cli("run", study_variant(tmp_path), "--check", "--executor", "local", "--out", tmp_path / "r")
    assert r.code == 2 and len(_errors(r)) == 1
    assert "the cells to run need about 271" in r.err and "50.0 MB free" in r.err and 'keep_weights = "none"' in r.err


def test_results_folder_not_writable(tmp_path, cli):
    (tmp_path / "file").write_text("")
    r = cli("run", study_variant(tmp_path), "--check", "--executor", "local", "--out", tmp_path / "file" / "r")
    assert r.code == 2 and "not writable" in r.err and len(_errors(r)) == 1


def test_disk_estimate_follows_keep_weights(tmp_path):
    spec = load_study(study_variant(tmp_path, replace={'models = ["resnet18"]': 'models = ["resnet18", "vit_b16"]'}))
    none = load_study(study_variant(tmp_path, "none.toml", replace={
        'models = ["resnet18"]': 'models = ["resnet18", "vit_b16"]', "epochs = 1": 'epochs = 1\nkeep_weights = "none"'}))
    data = disk.DataSize(120, 0.11)

    def clf(s, parallel):
        cells = plan_study(s)
        return next(r for r in disk.estimate(s, cells, {c.key for c in cells}, data, parallel) if r.stage == "train_clf")

    best, dropped = clf(spec, 2), clf(none, 2)
    vit = 4 * 3 * disk.classifier_params("vit_b16", 32)
    assert best.bytes > 2 * vit  # every ViT cell keeps its weights and state
    assert vit < dropped.bytes < best.bytes and "2 training at once" in dropped.what
    assert clf(none, 1).bytes < dropped.bytes  # fewer cells at once, less room
    assert [c.key for c in plan_study(spec)] != [c.key for c in plan_study(none)]  # "none" is part of the key


def test_keep_weights_none_deletes_model_and_state_after_predictions(phantom_shards, tmp_path):
    from skingen.classify.arms import ArmConfig
    from skingen.classify.train import TrainConfig, train_classifier

    out = tmp_path / "cell"
    train_classifier(phantom_shards, out, TrainConfig(epochs=1, batch_size=16, keep_weights="none"), ArmConfig())
    assert (out / "predictions.csv").is_file() and (out / "gradcam.png").is_file()
    assert (out / "train_summary.json").is_file() and (out / "curves.csv").is_file()
    assert not (out / "best_model.pt").exists() and not (out / "state").exists()
    assert not (out / "progress.json").exists()


# --- on the local SLURM cluster -------------------------------------------------------------------------


def _profile(tmp_path, extra: str):
    text = (REPO / "slurm/profiles/local.toml").read_text().replace("[defaults]", "[defaults]\n" + extra, 1)
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


@pytest.mark.slurm
def test_unknown_partition_and_account_stop_before_submitting(slurm_cluster, tmp_path, cli):
    profile = _profile(tmp_path, 'account = "nosuch-account"')
    profile.write_text(profile.read_text() + '\n[stages.pack]\npartition = "nosuch"\n')
    study = study_variant(tmp_path, profile=profile)
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    for args in (("--check",), ()):  # the same checks run before anything goes to SLURM
        r = cli("run", study, "--executor", "slurm", "--out", tmp_path / "r", *args)
        errors = _errors(r)
        assert r.code == 2 and len(errors) == 2, r.err
        assert "partition 'nosuch' (stages pack) is not on this cluster; its partitions: debug" in errors[0]
        assert "account 'nosuch-account' unknown to sacctmgr" in errors[1]
    assert subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout == before
    assert not (tmp_path / "r" / "plan.json").exists() and not (tmp_path / "r" / ".submitit").exists()
    good = study_variant(tmp_path, "good.toml")
    r = cli("run", good, "--check", "--executor", "slurm", "--out", tmp_path / "r")
    assert r.code == 0, r.err  # partition debug exists; no account asked


@pytest.mark.slurm
def test_missing_container_is_named(slurm_cluster, tmp_path, cli, monkeypatch):
    import shutil

    study = study_variant(tmp_path, profile=_profile(tmp_path, f'container = "{tmp_path / "skingen.sif"}"'))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "apptainer" else "/usr/bin/" + name)
    r = cli("run", study, "--check", "--executor", "slurm", "--out", tmp_path / "r")
    errors = _errors(r)
    assert r.code == 2 and len(errors) == 2
    assert "'apptainer' is not on PATH" in errors[0]
    assert f"container {tmp_path / 'skingen.sif'}: not found; build it" in errors[1]
