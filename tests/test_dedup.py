"""De-dup groups you can trust: unreadable files are quarantined before hashing (never merged), group
sizes are reported in split.json, and a chain of look-alikes over the cap stops with the chain named."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from builders import jpeg, table
from skingen.data.dedup import hash_files
from skingen.data.split import SplitConfig, make_split
from skingen.errors import UserError

HEADER = ["image_id", "lesion_id", "source", "label", "path"]
CLASSES = ["NV", "BCC", "BKL", "MEL", "SCC"]


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _fillers(folder, n=15):
    """Distinct smooth JPEGs, one lesion each, three lesions per class (no two are near-duplicates)."""
    return [[f"i{k}", f"L{k}", "x", CLASSES[k % 5], str(jpeg(folder / f"i{k}.jpg", seed=k, size=(64, 64)))]
            for k in range(n)]


def _chain_images(folder, n, seed=0):
    """``n`` look-alike PNGs in a chain: neighbours are 4 pHash bits apart, two steps apart 8 (more than
    the default distance of 6). Built in the DCT domain the pHash reads: each step swaps two coefficients
    above the median with two below it, so the median stays and exactly four bits flip."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(np.arange(-31, 32) * 4.0)
    order = list(rng.permutation(63))
    paths = []
    for k in range(n):
        coef = np.zeros((32, 32), np.float32)
        coef[:8, :8] = np.concatenate([[128.0 * 32], values]).reshape(8, 8)
        grey = np.clip(np.rint(cv2.idct(coef)), 0, 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
        paths.append(folder / f"c{k}.png")
        Image.fromarray(np.stack([grey] * 3, -1)).save(paths[-1])
        hi, lo = [i for i in order if values[i] > 0][:2], [i for i in order if values[i] < 0][:2]
        for a, b in zip(hi, lo):
            values[a], values[b] = values[b], values[a]
        order = [i for i in order if i not in hi + lo] + hi + lo  # swapped ones go last: fresh bits next step
    return paths


def _chain_manifest(tmp_path, n=6, lesion=None):
    folder = tmp_path / "img"
    rows = _fillers(folder)
    rows += [[f"c{k}", lesion or f"LC{k}", "x", "MEL", str(p)] for k, p in enumerate(_chain_images(folder, n))]
    return table(tmp_path / "m.csv", HEADER, rows)


def test_hash_files_gives_unreadable_files_no_hash(tmp_path):
    good = jpeg(tmp_path / "good.jpg", seed=1)
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image at all")
    hashes, bad = hash_files([str(good), str(tmp_path / "zero.jpg"), str(tmp_path / "corrupt.jpg"),
                              str(tmp_path / "missing.jpg")])
    assert len(hashes) == 1 and hashes.dtype == np.uint64
    assert bad[1] == "zero-byte file" and "not a readable image" in bad[2] and bad[3] == "image file not found"


def test_unreadable_files_are_quarantined_not_merged(cli, tmp_path):
    rows = _fillers(tmp_path / "img")
    (tmp_path / "img" / "u1.jpg").write_bytes(b"")
    (tmp_path / "img" / "u2.jpg").write_bytes(b"garbage, not a JPEG")
    rows += [["u1", "LU1", "x", "NV", str(tmp_path / "img" / "u1.jpg")],
             ["u2", "LU2", "x", "NV", str(tmp_path / "img" / "u2.jpg")]]
    manifest = table(tmp_path / "m.csv", HEADER, rows)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv", "--dedup")
    assert res.code == 0, res.err
    quarantine = {r["image_id"]: r for r in _rows(tmp_path / "s_quarantine.csv")}
    assert set(quarantine) == {"u1", "u2"}  # reported with a reason, never a silent drop
    assert quarantine["u1"]["reason"].startswith("zero-byte file; ")
    assert quarantine["u2"]["reason"].startswith("not a readable image")
    assert all("re-run 'skingen data ingest'" in r["reason"] for r in quarantine.values())
    assert _rows(tmp_path / "s_dedup_pairs.csv") == []  # one shared placeholder hash used to pair them
    assert {r["image_id"] for r in _rows(tmp_path / "s.csv")} == {f"i{k}" for k in range(15)}
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["quarantined"] == 2 and meta["group_sizes"] == {"1": 15}
    assert "quarantined (unreadable at hashing): 2" in res.out


def test_a_chain_over_the_cap_stops_naming_its_links(cli, tmp_path):
    manifest = _chain_manifest(tmp_path)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv", "--dedup", "--max-group-size", "5")
    assert res.code == 2 and res.err.count("\n") == 1
    assert "group LC0 of 6 images from 6 lesions, over the cap of 5" in res.err
    for k in range(5):
        assert f"c{k} (LC{k}) ~ c{k + 1} (LC{k + 1}) hamming 4" in res.err
    assert "--max-group-size" in res.err and "s_dedup_pairs.csv" in res.err
    assert not (tmp_path / "s.csv").exists()
    pairs = {(p["image_a"], p["image_b"]) for p in _rows(tmp_path / "s_dedup_pairs.csv")}
    assert pairs == {(f"c{k}", f"c{k + 1}") for k in range(5)}  # a chain: c0 and c2 are not near each other


def test_a_chain_under_the_cap_is_one_group_reported_in_split_json(cli, tmp_path):
    manifest = _chain_manifest(tmp_path)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv", "--dedup")
    assert res.code == 0, res.err
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["group_sizes"] == {"1": 15, "6": 1} and meta["max_group_size"] == 20
    assert meta["largest_groups"][0] == {"group_id": "LC0", "images": 6, "lesions": 6}
    assert meta["merged_pairs"] == 5 and meta["quarantined"] == 0
    chain = [r for r in _rows(tmp_path / "s.csv") if r["image_id"].startswith("c")]
    assert {r["group_id"] for r in chain} == {"LC0"} and len({r["split"] for r in chain}) == 1
    assert "groups by size: 1 image(s): 15, 6 image(s): 1" in res.out


def test_one_lesions_own_images_are_not_capped(tmp_path):
    manifest = _chain_manifest(tmp_path, lesion="LC")  # six look-alikes, all of one lesion
    _, rows = make_split(manifest, tmp_path / "s.csv", SplitConfig(dedup=True, max_group_size=3))
    assert sum(r["group_id"] == "LC" for r in rows) == 6
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["largest_groups"][0] == {"group_id": "LC", "images": 6, "lesions": 1} and meta["merged_pairs"] == 0
    with pytest.raises(UserError, match="--max-group-size 1 must be at least 2"):
        make_split(manifest, tmp_path / "t.csv", SplitConfig(dedup=True, max_group_size=1))
