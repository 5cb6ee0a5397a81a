"""Every bad input named in the foundation issue: one-line error (exit 2) or a quarantine entry, never a traceback."""
from __future__ import annotations

import json

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from builders import HAM7, ham_dataset, ham_rows, jpeg, milk_dataset, table
from skingen.data.images import load_rgb
from skingen.errors import BadImage

SPEC = [("HAM_0000001", "ISIC_0024306", "nv"), ("HAM_0000002", "ISIC_0024307", "mel"),
        ("HAM_0000003", "ISIC_0024308", "bkl"), ("HAM_0000004", "ISIC_0024309", "bcc")]


def _reasons(manifest):
    with open(manifest.with_name("quarantine.csv")) as fh:
        return {r["image_id"]: r["reason"] for r in csv.DictReader(fh)}


def _ids(manifest):
    with open(manifest) as fh:
        return {r["image_id"] for r in csv.DictReader(fh)}


def _ingest(cli, root, tmp_path):
    out = tmp_path / "out" / "manifest.csv"
    res = cli("data", "ingest", root, "--out", out)
    return res, out


@pytest.mark.parametrize("damage,reason", [
    ("corrupt", "not a readable image"), ("truncated", "truncated"), ("zero", "zero-byte")])
def test_damaged_jpegs_are_quarantined_rest_proceeds(cli, tmp_path, damage, reason):
    root = ham_dataset(tmp_path / "ham", SPEC)
    bad = root / "HAM10000_images_part_1" / "ISIC_0024307.jpg"
    data = bad.read_bytes()
    bad.write_bytes({"corrupt": b"this is not a jpeg" * 20, "truncated": data[: len(data) // 2],
                     "zero": b""}[damage])
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0, res.err
    assert reason in _reasons(out)["ISIC_0024307"]
    assert _ids(out) == {"ISIC_0024306", "ISIC_0024308", "ISIC_0024309"}
    assert "quarantined: 1" in res.out


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_rgba_grayscale_and_16bit_pngs_are_converted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    opaque = np.concatenate([rgb, np.full((20, 24, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(load_rgb(_png(tmp_path / "a.png", opaque)), rgb)
    grey = rgb[..., 0]
    out = load_rgb(_png(tmp_path / "g.png", grey))
    assert out.shape == (20, 24, 3) and np.array_equal(out[..., 1], grey)
    deep = (grey.astype(np.uint16) << 8) | 0x7F
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out16 = load_rgb(tmp_path / "d.png")
    assert out16.dtype == np.uint8 and np.array_equal(out16[..., 0], grey)


def test_transparent_rgba_is_rejected_with_reason(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 128
    with pytest.raises(BadImage, match="transparent"):
        load_rgb(_png(tmp_path / "t.png", rgba))


def test_converted_images_are_noted_in_manifest_and_summary(cli, tmp_path):
    root = tmp_path / "tree"
    jpeg(root / "nv" / "a.jpg", 0)
    _png(root / "mel" / "g.png", np.full((20, 20), 90, np.uint8))
    rgba = np.full((20, 20, 4), 255, np.uint8)
    _png(root / "mel" / "t.png", rgba)
    rgba[0, 0, 3] = 0
    _png(root / "bkl" / "x.png", rgba)
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    assert "converted: grayscale replicated to RGB: 1" in res.out
    assert "converted: opaque alpha dropped: 1" in res.out
    assert "transparent" in _reasons(out)["x"]


def test_missing_columns_is_one_line_error_naming_file(cli, tmp_path):
    root = tmp_path / "ham"
    table(root / "HAM10000_metadata.csv", ["lesion_id", "image", "diagnosis"], [["HAM_1", "ISIC_0024306", "nv"]])
    res, _ = _ingest(cli, root, tmp_path)
    assert res.code == 2
    assert "HAM10000_metadata.csv" in res.err and "missing column(s) image_id, dx" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_extra_columns_are_tolerated_and_short_rows_quarantined(cli, tmp_path):
    root = ham_dataset(tmp_path / "ham", SPEC)
    rows = [r + ["extra"] for r in ham_rows(SPEC)]
    rows[2] = rows[2][:3]  # a row with too few fields
    table(root / "HAM10000_metadata.csv", HAM7 + ["my_note"], rows)
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0, res.err
    assert _ids(out) == {"ISIC_0024306", "ISIC_0024307", "ISIC_0024309"}
    reasons = _reasons(out)
    assert "malformed metadata row" in reasons["ISIC_0024308"]


def test_unknown_label_is_quarantined(cli, tmp_path):
    root = ham_dataset(tmp_path / "ham", SPEC[:3] + [("HAM_0000009", "ISIC_0024309", "melanoma??")])
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    assert "unknown label 'melanoma??'" in _reasons(out)["ISIC_0024309"]


def test_onehot_rows_with_zero_or_two_ones_are_quarantined(cli, tmp_path):
    lesions = [("IL_0000001", "NV"), ("IL_0000002", None), ("IL_0000003", "MEL")]
    root = milk_dataset(tmp_path / "milk", lesions, second_one={"IL_0000003": "BCC"})
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    reasons = _reasons(out)
    assert any("0 ones" in r for r in reasons.values())
    assert any("2 ones" in r for r in reasons.values())
    assert len(_ids(out)) == 1


def test_empty_class_folder_is_reported_and_split_drops_it_or_refuses_a_tiny_class(cli, tmp_path):
    root = tmp_path / "tree"
    for cls, n in (("nv", 3), ("bcc", 3), ("bkl", 3), ("mel", 3)):
        for k in range(n):
            jpeg(root / cls / f"{cls}{k}.jpg", k + hash(cls) % 100)
    (root / "scc").mkdir()
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0 and f"class folder {root / 'scc'} is empty" in res.out
    res = cli("data", "split", out, "--out", tmp_path / "split.csv")  # SCC: no images -> dropped with a note
    assert res.code == 0, res.err
    assert json.loads((tmp_path / "split.json").read_text())["dropped_classes"]["SCC"].startswith("SCC: 0 images")
    (root / "mel" / "mel2.jpg").unlink()  # MEL: 2 lesion groups -> too few to split, a one-line error
    res, out = _ingest(cli, root, tmp_path)
    res = cli("data", "split", out, "--out", tmp_path / "split.csv")
    assert res.code == 2 and "class MEL has 2 lesion group(s)" in res.err and str(out) in res.err


def test_duplicate_image_ids_merged_or_quarantined(cli, tmp_path):
    spec = SPEC + [("HAM_0000001", "ISIC_0024306", "nv"), ("HAM_0000005", "ISIC_0024307", "bcc")]
    root = ham_dataset(tmp_path / "ham", spec)
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    assert "ISIC_0024306" in _ids(out) and "duplicates merged: ham10000: 1" in res.out
    assert "conflicting" in _reasons(out)["ISIC_0024307"] and "ISIC_0024307" not in _ids(out)


def test_listed_but_missing_and_present_but_unlisted(cli, tmp_path):
    root = ham_dataset(tmp_path / "ham", SPEC)
    (root / "HAM10000_images_part_1" / "ISIC_0024308.jpg").unlink()
    jpeg(root / "HAM10000_images_part_1" / "ISIC_0031000.jpg", 9)
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    reasons = _reasons(out)
    assert "listed in metadata but no image file" in reasons["ISIC_0024308"]
    assert "not listed in metadata" in reasons["ISIC_0031000"]
    assert "quarantined: 2" in res.out


def test_path_escaping_the_root_is_quarantined(cli, tmp_path):
    root = ham_dataset(tmp_path / "ham", SPEC)
    target = root / "HAM10000_images_part_1" / "ISIC_0024309.jpg"
    outside = jpeg(tmp_path / "elsewhere" / "secret.jpg", 3)
    target.unlink()
    os.symlink(outside, target)
    res, out = _ingest(cli, root, tmp_path)
    assert res.code == 0
    assert "escapes the dataset root" in _reasons(out)["ISIC_0024309"]
    assert "ISIC_0024309" not in _ids(out)


def test_bad_manifest_for_split_is_one_line_error(cli, tmp_path):
    m = table(tmp_path / "manifest.csv", ["image_id", "lesion_id", "label", "path"], [["a", "l", "XYZ", "/x"]])
    res = cli("data", "split", m, "--out", tmp_path / "s.csv")
    assert res.code == 2 and "label 'XYZ'" in res.err and "manifest.csv line 2" in res.err
    res = cli("data", "split", tmp_path / "nope.csv", "--out", tmp_path / "s.csv")
    assert res.code == 2 and "no such manifest" in res.err


def test_cli_errors_never_print_a_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "skingen.cli", "data", "pack", str(tmp_path / "none.csv"),
                           "--out", str(tmp_path / "s"), "--size", "32"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "none.csv" in proc.stderr and "skingen data split" in proc.stderr
