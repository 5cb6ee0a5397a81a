"""Lesion-grouped split: zero overlap on data with repeated lesions, stratified, seeded, near-duplicate merge."""
from __future__ import annotations

import csv
import json
from collections import Counter

import cv2
import pytest

from builders import jpeg, table
from skingen.data.split import SplitConfig, lesion_overlap, make_split


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _synthetic_manifest(tmp_path, n_lesions=400, seed=0):
    """A manifest with heavy lesion repetition (1-6 images per lesion) and the real class imbalance."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.choice(["NV", "BCC", "BKL", "MEL", "SCC"], size=n_lesions, p=[0.53, 0.21, 0.12, 0.11, 0.03])
    rows, k = [], 0
    for lesion, label in enumerate(labels):
        for _ in range(int(rng.integers(1, 7))):
            rows.append([f"IMG_{k:05d}", f"L_{lesion:04d}", "test", label, f"/nonexistent/{k}.jpg"])
            k += 1
    return table(tmp_path / "manifest.csv", ["image_id", "lesion_id", "source", "label", "path"], rows)


def test_no_lesion_in_two_splits_with_repeated_lesions(tmp_path):
    manifest = _synthetic_manifest(tmp_path)
    out, rows = make_split(manifest, tmp_path / "split.csv", SplitConfig(seed=5))
    assert lesion_overlap(rows) == {}
    assert lesion_overlap(_rows(out)) == {}
    per_lesion = Counter(r["lesion_id"] for r in rows)
    assert max(per_lesion.values()) > 1  # the test data really has repeated lesions


def test_stratified_at_lesion_level(tmp_path):
    manifest = _synthetic_manifest(tmp_path, n_lesions=1000)
    _, rows = make_split(manifest, tmp_path / "split.csv", SplitConfig(val=0.2, test=0.1, seed=1))
    lesions = {(r["lesion_id"], r["label"], r["split"]) for r in rows}
    for cls in ("NV", "BCC", "MEL"):
        split_counts = Counter(s for _, lab, s in lesions if lab == cls)
        total = sum(split_counts.values())
        assert abs(split_counts["test"] / total - 0.1) < 0.02
        assert abs(split_counts["val"] / total - 0.2) < 0.02
    assert all(Counter(s for _, lab, s in lesions if lab == "SCC")[s] >= 1 for s in ("train", "val", "test"))


def test_seeded_and_persisted(tmp_path):
    manifest = _synthetic_manifest(tmp_path)
    a = make_split(manifest, tmp_path / "a.csv", SplitConfig(seed=3))[0]
    b = make_split(manifest, tmp_path / "b.csv", SplitConfig(seed=3))[0]
    c = make_split(manifest, tmp_path / "c.csv", SplitConfig(seed=4))[0]
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["seed"] == 3 and len(meta["manifest_sha256"]) == 64
    assert list(_rows(a)[0])[:4] == ["image_id", "lesion_id", "label", "split"]


def test_phantom_split_end_to_end(cli, phantom_dir, tmp_path):
    assert cli("data", "ingest", phantom_dir, "--out", tmp_path / "m.csv").code == 0
    res = cli("data", "split", tmp_path / "m.csv", "--out", tmp_path / "s.csv", "--seed", "2")
    assert res.code == 0, res.err
    assert "lesions in more than one split: 0" in res.out and "train" in res.out
    rows = _rows(tmp_path / "s.csv")
    assert lesion_overlap(rows) == {} and len(rows) == 120


def test_dedup_merges_near_duplicates_across_lesions(cli, tmp_path):
    rows = []
    for k in range(30):
        label = ["NV", "BCC", "BKL", "MEL", "SCC"][k % 5]
        path = jpeg(tmp_path / "img" / f"i{k}.jpg", seed=k, size=(64, 64))
        rows.append([f"i{k}", f"L{k}", "x", label, str(path)])
    # i30: a re-encoded, slightly brightened copy of i0 under another lesion id
    img = cv2.imread(str(tmp_path / "img" / "i0.jpg"))
    cv2.imwrite(str(tmp_path / "img" / "i30.jpg"), cv2.convertScaleAbs(img, alpha=1.0, beta=4),
                [cv2.IMWRITE_JPEG_QUALITY, 70])
    rows.append(["i30", "L30", "x", "NV", str(tmp_path / "img" / "i30.jpg")])
    manifest = table(tmp_path / "m.csv", ["image_id", "lesion_id", "source", "label", "path"], rows)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv", "--dedup")
    assert res.code == 0, res.err
    pairs = _rows(tmp_path / "s_dedup_pairs.csv")
    assert {(p["image_a"], p["image_b"]) for p in pairs} == {("i0", "i30")}
    split = {r["image_id"]: r for r in _rows(tmp_path / "s.csv")}
    assert split["i0"]["split"] == split["i30"]["split"]
    assert split["i0"]["group_id"] == split["i30"]["group_id"]
    assert lesion_overlap(list(split.values()), key="group_id") == {}


@pytest.mark.parametrize("args", [("--val", "0.6", "--test", "0.5"), ("--test", "-0.1")])
def test_bad_fractions_are_one_line_errors(cli, tmp_path, args):
    manifest = _synthetic_manifest(tmp_path)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv", *args)
    assert res.code == 2 and "--val" in res.err


def test_too_few_lesions_in_a_class(cli, tmp_path):
    rows = [[f"i{k}", f"L{k}", "x", ["NV", "BCC", "BKL", "MEL"][k % 4], "/x"] for k in range(20)]
    rows += [["s1", "LS", "x", "SCC", "/x"], ["s2", "LS", "x", "SCC", "/x"]]  # two images, one lesion
    manifest = table(tmp_path / "m.csv", ["image_id", "lesion_id", "source", "label", "path"], rows)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv")
    assert res.code == 2 and "class SCC has 1 lesion group(s), need at least 3" in res.err
    assert not (tmp_path / "s.csv").exists()
