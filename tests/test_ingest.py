"""Ingest of every supported layout, the class mapping, dedup across sources, and the phantom via HAM."""
from __future__ import annotations

import csv

import pytest

from builders import ham_dataset, jpeg, milk_dataset, onehot, table
from skingen.data.ingest import MANIFEST_COLUMNS


def _manifest(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _quarantine(manifest_path):
    with open(manifest_path.with_name("quarantine.csv")) as fh:
        return list(csv.DictReader(fh))


SPEC = [("HAM_0000001", "ISIC_0024306", "nv"), ("HAM_0000001", "ISIC_0024307", "nv"),
        ("HAM_0000002", "ISIC_0024308", "mel"), ("HAM_0000003", "ISIC_0024309", "bkl"),
        ("HAM_0000004", "ISIC_0024310", "bcc"), ("HAM_0000005", "ISIC_0024311", "akiec"),
        ("HAM_0000006", "ISIC_0024312", "df")]


def test_phantom_ingests_through_the_ham10000_reader(cli, phantom_dir, tmp_path):
    res = cli("data", "ingest", phantom_dir, "--out", tmp_path / "manifest.csv")
    assert res.code == 0, res.err
    rows = _manifest(tmp_path / "manifest.csv")
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert len(rows) == 120 and {r["source"] for r in rows} == {"ham10000"}
    assert {r["label"] for r in rows} == {"NV", "BCC", "BKL", "MEL", "SCC"}
    assert "ham10000" in res.out and "quarantined: 0" in res.out
    assert _quarantine(tmp_path / "manifest.csv") == []  # ground_truth PNGs are not "unlisted images"


@pytest.mark.parametrize("layout", ["csv", "tab", "bare", "kaggle"])
def test_ham10000_layouts(cli, tmp_path, layout):
    root = ham_dataset(tmp_path / "ham", SPEC, layout)
    res = cli("data", "ingest", root, "--out", tmp_path / "m.csv")
    assert res.code == 0, res.err
    rows = _manifest(tmp_path / "m.csv")
    assert sorted((r["image_id"], r["label"]) for r in rows) == [
        ("ISIC_0024306", "NV"), ("ISIC_0024307", "NV"), ("ISIC_0024308", "MEL"),
        ("ISIC_0024309", "BKL"), ("ISIC_0024310", "BCC")]
    assert "dropped (out-of-study class): ham10000 akiec: 1" in res.out
    assert "dropped (out-of-study class): ham10000 df: 1" in res.out
    if layout == "kaggle":
        assert "7 duplicate image file(s)" in res.out
    assert _quarantine(tmp_path / "m.csv") == []


@pytest.mark.parametrize("layout", ["challenge", "bundle"])
def test_milk10k_layouts_dermoscopic_only_and_sccka_to_scc(cli, tmp_path, layout):
    lesions = [("IL_0000001", "BCC"), ("IL_0000002", "SCCKA"), ("IL_0000003", "MEL"), ("IL_0000004", "INF")]
    root = milk_dataset(tmp_path / "milk", lesions, layout)
    res = cli("data", "ingest", root, "--out", tmp_path / "m.csv")
    assert res.code == 0, res.err
    rows = _manifest(tmp_path / "m.csv")
    assert sorted((r["lesion_id"], r["label"]) for r in rows) == [
        ("IL_0000001", "BCC"), ("IL_0000002", "SCC"), ("IL_0000003", "MEL")]
    assert {r["image_type"] for r in rows} == {"dermoscopic"}
    assert "filtered: milk10k image_type 'clinical: close-up': 4" in res.out
    assert "dropped (out-of-study class): milk10k inf: 1" in res.out


def test_milk10k_all_modalities_keeps_both_images_of_a_lesion(cli, tmp_path):
    root = milk_dataset(tmp_path / "milk", [("IL_0000001", "NV"), ("IL_0000002", "MEL")])
    assert cli("data", "ingest", root, "--out", tmp_path / "m.csv", "--milk10k-modality", "all").code == 0
    rows = _manifest(tmp_path / "m.csv")
    assert len(rows) == 4 and {r["lesion_id"] for r in rows} == {"IL_0000001", "IL_0000002"}


def test_isic2019_downsampled_suffix_and_lesion_ids(cli, tmp_path):
    root = tmp_path / "isic"
    codes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    images = ["ISIC_0000017_downsampled", "ISIC_0000018", "ISIC_0000019", "ISIC_0000020"]
    labels = ["MEL", "NV", "SCC", "VASC"]
    table(root / "ISIC_2019_Training_GroundTruth.csv", ["image"] + codes,
          [[i] + onehot(lab, codes) for i, lab in zip(images, labels)])
    table(root / "ISIC_2019_Training_Metadata.csv", ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"],
          [[i, "50", "torso", f"BCN_{k:07d}" if k < 2 else "", "male"] for k, i in enumerate(images)])
    for k, i in enumerate(images):
        jpeg(root / "ISIC_2019_Training_Input" / f"{i}.jpg", k)
    res = cli("data", "ingest", root, "--out", tmp_path / "m.csv")
    assert res.code == 0, res.err
    rows = {r["image_id"]: r for r in _manifest(tmp_path / "m.csv")}
    assert set(rows) == {"ISIC_0000017", "ISIC_0000018", "ISIC_0000019"}
    assert rows["ISIC_0000017"]["lesion_id"] == "BCN_0000000" and rows["ISIC_0000017"]["source"] == "isic2019"
    assert rows["ISIC_0000019"]["lesion_id"] == "ISIC_0000019"  # null lesion_id -> own group
    assert rows["ISIC_0000019"]["label"] == "SCC"


def test_class_per_folder_tree(cli, tmp_path):
    root = tmp_path / "tree"
    for k, cls in enumerate(["nv", "MEL", "bcc", "Bkl", "scc", "nv", "vasc"]):
        jpeg(root / cls / f"img{k}.png", k)
    res = cli("data", "ingest", root, "--out", tmp_path / "m.csv")
    assert res.code == 0, res.err
    rows = _manifest(tmp_path / "m.csv")
    assert sorted(r["label"] for r in rows) == ["BCC", "BKL", "MEL", "NV", "NV", "SCC"]
    assert all(r["lesion_id"] == r["image_id"] for r in rows)
    assert "dropped (out-of-study class): folder vasc: 1" in res.out


def test_two_sources_deduplicated_by_image_id(cli, tmp_path):
    ham = ham_dataset(tmp_path / "ham", SPEC[:3], "csv")
    isic = tmp_path / "isic"
    codes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    table(isic / "ISIC2018_Task3_Training_GroundTruth.csv", ["image"] + codes,
          [["ISIC_0024306"] + onehot("NV", codes), ["ISIC_0099999"] + onehot("BKL", codes)])
    jpeg(isic / "ISIC2018_Task3_Training_Input" / "ISIC_0024306.jpg", 1)
    jpeg(isic / "ISIC2018_Task3_Training_Input" / "ISIC_0099999.jpg", 2)
    res = cli("data", "ingest", ham, isic, "--out", tmp_path / "m.csv")
    assert res.code == 0, res.err
    rows = _manifest(tmp_path / "m.csv")
    assert len(rows) == 4 and len({r["image_id"] for r in rows}) == 4
    assert "duplicates merged: isic2018 (already in ham10000): 1" in res.out


def test_unknown_layout_is_a_one_line_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    res = cli("data", "ingest", tmp_path / "empty", "--out", tmp_path / "m.csv")
    assert res.code == 2 and "no known dataset layout" in res.err and str(tmp_path / "empty") in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_a_folder_with_no_usable_image_names_its_quarantine_list(tmp_path, cli):
    """Issue 25: the error pointed at 'the quarantine list above', which was neither printed nor written."""
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    (root / "images" / "ISIC_0000001.jpg").write_text("not an image")
    (root / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\n"
                                                "HAM_1,ISIC_0000001,nv,histo,40,male,back\n")
    r = cli("data", "ingest", root, "--out", tmp_path / "out" / "manifest.csv")
    quarantine = tmp_path / "out" / "quarantine.csv"
    assert r.code == 2 and r.err.count("\n") == 1
    assert "1 quarantined (1 not a readable image" in r.err and f"the list is in {quarantine}" in r.err
    assert "ISIC_0000001" in quarantine.read_text() and not (tmp_path / "out" / "manifest.csv").exists()
