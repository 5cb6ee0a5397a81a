"""Damaged files are named with the cell that made them and the fix; the cell turns stale and is rebuilt."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from builders import study_variant
from skingen.errors import DamagedFile
from skingen.grid import damage
from skingen.grid.plan import make_cell, plan_study
from skingen.grid.spec import load_study
from skingen.grid.store import cell_state, execute_cell


def _truncate(path, keep: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * keep))


def _h5(path):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("inception", data=np.random.default_rng(0).random((64, 512), dtype=np.float32))


def _safetensors(path):
    save_file({"w": torch.randn(64, 256)}, str(path))


def _torch(path):
    torch.save({"w": torch.randn(64, 256), "step": 3}, path)


def _json(path):
    path.write_text(json.dumps({"epoch": 3, "curves": list(range(200))}))


# (stage of the cell that made it, file in its folder, writer): features, snapshots, training state, progress
KINDS = [("features", "train_MEL.h5", _h5), ("train_gen", "snapshot/network.safetensors", _safetensors),
         ("train_gen", "state/rank0.pt", _torch), ("train_clf", "state/optimizer.bin", _torch),
         ("train_clf", "best_model.pt", _torch), ("train_clf", "progress.json", _json),
         ("sample", "synthetic.h5", _h5)]


def _done_cell(root, stage, rel, write):
    cell = make_cell(stage, "c", {"x": rel})
    folder = cell.folder(root)
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    write(folder / rel)
    (folder / "DONE").write_text(cell.key + "\n")
    return cell, folder / rel


@pytest.mark.parametrize("stage, rel, write", KINDS, ids=[k[1] for k in KINDS])
def test_a_truncated_file_of_a_done_cell_is_named_and_the_cell_turns_stale(tmp_path, stage, rel, write):
    cell, path = _done_cell(tmp_path, stage, rel, write)
    assert damage.scan([cell], tmp_path) == [] and cell_state(cell, tmp_path) == "done"
    _truncate(path)
    lines = damage.scan([cell], tmp_path)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"{path}: truncated or corrupt (")
    assert f"made by cell {stage}/{cell.folder(tmp_path).name}" in lines[0]
    assert f"the next 'skingen run' rebuilds it" in lines[0] and f"delete {cell.folder(tmp_path)}" in lines[0]
    assert cell_state(cell, tmp_path) == "pending" and damage.damaged(cell, tmp_path)["file"] == str(path)
    assert damage.scan([cell], tmp_path) == []  # found once; then it is marked
    assert damage.reset([cell], tmp_path) == [cell] and not cell.folder(tmp_path).exists()


def test_corruption_found_when_a_cell_reads_its_input_names_the_maker(tmp_path):
    maker, path = _done_cell(tmp_path, "features", "train_MEL.h5", _h5)
    with open(path, "r+b") as fh:  # the superblock overwritten: the file no longer opens
        fh.write(b"\0" * 64)
    reader = make_cell("gen_metrics", "ddpm", {}, {"features": maker.key})

    def read(cell, out, inputs):
        with h5py.File(inputs["features"] / "train_MEL.h5", "r") as h5:  # OSError naming no file
            return {"n": len(h5["inception"])}

    with pytest.raises(DamagedFile) as exc:
        execute_cell(reader, tmp_path, {"features": maker.folder(tmp_path)}, read)
    message = str(exc.value)
    assert message.startswith(f"{path}: truncated or corrupt") and f"cell features/{maker.folder(tmp_path).name}" \
        in message
    failed = json.loads((reader.folder(tmp_path) / "FAILED").read_text())
    assert failed["error"] == message  # what `skingen status` shows for the failed cell
    assert cell_state(maker, tmp_path) == "pending" and damage.damaged(maker, tmp_path)["found_by"].startswith(
        "gen_metrics/")


def test_a_damaged_own_state_file_marks_the_cell_itself(tmp_path):
    cell = make_cell("train_clf", "r", {})
    state = cell.folder(tmp_path) / "state" / "model.safetensors"
    state.parent.mkdir(parents=True)
    _safetensors(state)
    _truncate(state, 0.9)

    def resume(cell, out, inputs):
        from safetensors.torch import load_file

        return load_file(out / "state" / "model.safetensors")

    with pytest.raises(DamagedFile, match=r"model.safetensors: truncated or corrupt .* made by cell train_clf/"):
        execute_cell(cell, tmp_path, {}, resume)
    assert damage.reset([cell], tmp_path) == [cell]  # the next run starts it from nothing


def test_a_real_bug_stays_a_bug(tmp_path):
    maker, _ = _done_cell(tmp_path, "features", "train_MEL.h5", _h5)
    cell = make_cell("gen_metrics", "g", {}, {"features": maker.key})

    def buggy(cell, out, inputs):
        raise ValueError("shapes (3,) and (4,) not aligned")

    with pytest.raises(ValueError):
        execute_cell(cell, tmp_path, {"features": maker.folder(tmp_path)}, buggy)
    assert cell_state(maker, tmp_path) == "done" and damage.damaged(maker, tmp_path) is None


def test_standalone_command_names_a_truncated_shard(phantom_shards, tmp_path, cli):
    import shutil

    shards = tmp_path / "shards"
    shutil.copytree(phantom_shards, shards)
    _truncate(shards / "train.h5")
    r = cli("classify", "train", shards, "--out", tmp_path / "cell", "--epochs", "1")
    assert r.code == 2 and r.err.count("\n") == 1
    assert r.err.startswith(f"skingen: error: {shards / 'train.h5'}: truncated or corrupt (") and "re-create it" in r.err


def test_truncated_shard_in_a_study_is_named_shown_stale_and_rebuilt(tmp_path, cli):
    study, out = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': 'arms = ["real"]'}), tmp_path / "r"
    assert cli("run", study, "--executor", "debug", "--out", out, "--until", "pack").code == 0
    cells = plan_study(load_study(study))
    pack = next(c for c in cells if c.stage == "pack")
    shard = pack.folder(out) / "train.h5"
    _truncate(shard)
    r = cli("run", study, "--executor", "debug", "--out", out)
    assert r.code == 2 and r.err.count("\n") == 1  # nothing ran: one line naming the file, its cell, the fix
    assert r.err.startswith(f"skingen: error: {shard}: truncated or corrupt (")
    assert f"made by cell pack/{pack.folder(out).name}" in r.err and "the next 'skingen run' rebuilds it" in r.err
    assert not any(c.folder(out).exists() for c in cells if c.stage == "train_clf")
    status = cli("status", out)
    assert status.code == 1  # damage found
    assert "pack               1     0       0      0       1     1" in status.out
    assert f"damaged: {shard}: truncated or corrupt" in status.out
    r = cli("run", study, "--executor", "debug", "--out", out)
    assert r.code == 0, r.err
    assert all(cell_state(c, out) == "done" for c in cells) and damage.damaged(pack, out) is None
    assert os.path.getsize(shard) > 0 and damage.file_problem(shard, deep=True) is None


def _flip_middle_chunk(shard) -> None:
    """Change one byte inside the image chunk in the middle of a shard, in place (size and header intact)."""
    with h5py.File(shard, "r") as h5:
        ds = h5["images"]
        info = ds.id.get_chunk_info(ds.shape[0] // 2)
    with open(shard, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_flipped_image_chunk_fails_its_checksum_is_named_and_rebuilt(tmp_path, cli):
    """Fletcher-32 per chunk (issue 25 item 4): overwritten pixels inside train.h5 are not trained on."""
    study, out = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': 'arms = ["real"]'}), tmp_path / "r"
    assert cli("run", study, "--executor", "debug", "--out", out, "--until", "pack").code == 0
    pack = next(c for c in plan_study(load_study(study)) if c.stage == "pack")
    shard = pack.folder(out) / "train.h5"
    size = os.path.getsize(shard)
    _flip_middle_chunk(shard)
    assert os.path.getsize(shard) == size and damage.file_problem(shard) is None  # the cheap check reads the ends
    assert "Fletcher32" in damage.file_problem(shard, deep=True) or "filter" in damage.file_problem(shard, deep=True)
    r = cli("run", study, "--executor", "debug", "--out", out)
    assert r.code == 2 and f"{shard}: truncated or corrupt" in r.err and f"made by cell pack/{pack.folder(out).name}" in r.err
    train = next(c for c in plan_study(load_study(study)) if c.stage == "train_clf")
    assert cell_state(train, out) == "failed" and not (train.folder(out) / "predictions.csv").exists()
    r = cli("run", study, "--executor", "debug", "--out", out)
    assert r.code == 0, r.err
    assert damage.file_problem(shard, deep=True) is None and cell_state(train, out) == "done"


def test_a_truncated_predictions_csv_is_found_by_status_and_run(tmp_path, cli):
    study, out = study_variant(tmp_path, replace={'arms = ["real", "oversample"]': 'arms = ["real"]'}), tmp_path / "r"
    assert cli("run", study, "--executor", "debug", "--out", out).code == 0
    train = next(c for c in plan_study(load_study(study)) if c.stage == "train_clf")
    predictions = train.folder(out) / "predictions.csv"
    text = predictions.read_text()
    predictions.write_text(text[:len(text) // 2])  # cut mid-row
    status = cli("status", out)
    assert status.code == 1 and f"damaged: {predictions}: truncated or corrupt" in status.out
    r = cli("run", study, "--executor", "debug", "--out", out)
    assert r.code == 2 and f"{predictions}: truncated or corrupt" in r.err
    assert cli("run", study, "--executor", "debug", "--out", out).code == 0
    assert predictions.read_text() and damage.file_problem(predictions, deep=True) is None
