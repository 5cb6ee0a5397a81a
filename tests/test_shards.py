"""HDF5 shards: schema, atomic single writer, lazy picklable reader, torch Dataset, pack with quarantine."""
from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from builders import read_rows, split_with_bad_path
from skingen.data.classes import CLASS_NAMES
from skingen.data.images import load_rgb
from skingen.data.shards import ShardDataset, ShardReader, ShardWriter
from skingen.errors import UserError
from skingen.preprocess import square_resize


def _write(path, n=5, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    with ShardWriter(path, size, "basic", {"k": 1}, {"split": "train"}) as w:
        for i in range(n):
            w.add(images[i], i % 5, f"img{i}", f"les{i // 2}", "phantom")
    return images


def test_schema_matches_design_contract(tmp_path):
    images = _write(tmp_path / "s.h5", n=21)
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        assert h5["images"].dtype == np.uint8 and h5["images"].shape == (21, 16, 16, 3)
        assert h5["images"].chunks == (1, 16, 16, 3)
        assert np.array_equal(h5["images"][:], images)  # lossless
        assert list(h5["labels"][:5]) == [0, 1, 2, 3, 4]
        assert h5["image_id"][3].decode() == "img3" and h5["lesion_id"][3].decode() == "les1"
        assert h5["source"][0].decode() == "phantom"
        assert list(h5.attrs["class_names"]) == list(CLASS_NAMES)
        assert h5.attrs["pipeline"] == "basic" and json.loads(h5.attrs["pipeline_params"]) == {"k": 1}
        assert h5.attrs["image_size"] == 16 and h5.attrs["skingen_version"] and h5.attrs["split"] == "train"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "s.h5"
    with pytest.raises(ValueError):
        with ShardWriter(target, 16) as w:
            w.add(np.zeros((16, 16, 3), np.uint8), 0, "a", "a", "x")
            w.add(np.zeros((8, 8, 3), np.uint8), 0, "b", "b", "x")  # wrong size -> error mid-write
    assert list(tmp_path.iterdir()) == []


def test_existing_shard_replaced_only_on_success(tmp_path):
    target = tmp_path / "s.h5"
    _write(target, n=3)
    with pytest.raises(RuntimeError):
        with ShardWriter(target, 16) as w:
            w.add(np.zeros((16, 16, 3), np.uint8), 0, "new", "new", "x")
            raise RuntimeError("killed")
    assert ShardReader(target).image_ids == ["img0", "img1", "img2"]


def test_second_concurrent_writer_is_refused(tmp_path):
    w = ShardWriter(tmp_path / "s.h5", 16)
    with pytest.raises(UserError, match="another writer"):
        ShardWriter(tmp_path / "s.h5", 16)
    w.close()
    ShardWriter(tmp_path / "s.h5", 16).close()  # lock released


def test_reader_is_lazy_and_pickles_after_use(tmp_path):
    images = _write(tmp_path / "s.h5")
    reader = ShardReader(tmp_path / "s.h5")
    assert reader._h5 is None
    assert np.array_equal(reader.image(2), images[2])
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._h5 is None and np.array_equal(clone.image(4), images[4])


def test_dataset_over_shards_with_worker_processes(tmp_path):
    a = _write(tmp_path / "a.h5", n=7, seed=1)
    b = _write(tmp_path / "b.h5", n=5, seed=2)
    ds = ShardDataset([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert len(ds) == 12 and list(ds.labels[:7]) == [0, 1, 2, 3, 4, 0, 1]
    x, y = ds[8]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and y == 1
    assert torch.equal(x, torch.from_numpy(b[1].transpose(2, 0, 1)))
    # forkserver workers receive the dataset pickled: proves the readers reopen lazily per process
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="forkserver")
    batches = list(loader)
    got = torch.cat([bx for bx, _ in batches]).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, np.concatenate([a, b]))


def test_pack_roundtrip_and_quarantine(cli, phantom_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    split, rows, victim = split_with_bad_path(cli, phantom_dir, tmp_path, broken)
    res = cli("data", "pack", split, "--out", tmp_path / "shards", "--size", "32", "--workers", "2")
    assert res.code == 0, res.err
    q = read_rows(tmp_path / "shards" / "quarantine.csv")
    assert [(r["image_id"], r["reason"]) for r in q] == [(victim["image_id"], "zero-byte file")]
    readers = {s: ShardReader(tmp_path / "shards" / f"{s}.h5") for s in ("train", "val", "test")}
    assert sum(len(r) for r in readers.values()) == len(rows) - 1
    test_row = next(r for r in rows if r["split"] == "test")
    k = readers["test"].image_ids.index(test_row["image_id"])
    assert np.array_equal(readers["test"].image(k), square_resize(load_rgb(test_row["path"]), 32))
    assert readers["test"].lesion_ids[k] == test_row["lesion_id"]
    assert CLASS_NAMES[readers["test"].labels[k]] == test_row["label"]
    lesions = [set(r.lesion_ids) for r in readers.values()]
    assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])


def test_square_resize_centre_crops_short_side():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :10] = 255  # left margin is cropped away (60 -> 40 keeps columns 10..49)
    img[:, 50:] = 255
    out = square_resize(img, 20)
    assert out.shape == (20, 20, 3) and out.max() == 0
