"""Class sets: presets, TOML files, ingest/split/pack/phantom following the set, metrics on the set's classes,
a HAM10000-only study (4 classes and the SCC note) and a ham7 study on the phantom."""
from __future__ import annotations

import json

import numpy as np
import pytest

from builders import ham_dataset, read_rows, study_variant, table
from skingen.data.classes import PRESETS, load_class_set, metric_target
from skingen.data.ingest import ingest
from skingen.data.phantom import make_phantom
from skingen.data.shards import ShardReader
from skingen.data.split import SplitConfig, make_split
from skingen.errors import UserError
from skingen.metrics.diagnostic import all_metrics
from skingen.metrics.predictions import evaluate_predictions, prediction_classes, read_predictions, write_predictions

MANIFEST = ["image_id", "lesion_id", "source", "label", "path"]


@pytest.fixture(scope="module")
def ham_like(tmp_path_factory):
    """A HAM10000-layout download without MILK10k: the phantom with HAM10000's seven classes (akiec, df, vasc too)."""
    return make_phantom(tmp_path_factory.mktemp("ham"), 120, size=48, seed=3, classes="ham7")


def test_presets_and_their_tables():
    assert PRESETS["paper5"].classes == ("NV", "BCC", "BKL", "MEL", "SCC")
    assert PRESETS["ham7"].classes == ("AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC")
    assert PRESETS["isic2019"].classes == ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
    paper5, ham7, isic = PRESETS["paper5"], PRESETS["ham7"], PRESETS["isic2019"]
    assert paper5.map("SCCKA") == "SCC" and paper5.map("akiec") is None and ham7.map("sccka") is None
    assert ham7.map("AKIEC") == "AKIEC" and isic.map("akiec") == "AK" and isic.map("SCCKA") == "SCC"
    with pytest.raises(KeyError):
        paper5.map("mystery")
    assert paper5.missing_note("SCC", {"ham10000"}) == "SCC: 0 images — MILK10k or ISIC 2019 provides SCC"
    assert paper5.missing_note("SCC", {"ham10000", "isic2019"}) == "SCC: 0 images — MILK10k provides SCC"
    assert metric_target(ham7.classes) == 4 and metric_target(("NV", "BCC"), "BCC") == 1
    with pytest.raises(UserError, match="neither MEL nor target_class"):
        metric_target(("NV", "BCC"), "SCC")


def test_class_set_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('classes = ["NV", "MEL", "BCC"]\n[map]\nbkl = "NV"\nsccka = "BCC"\n')
    cs = load_class_set(path)
    assert cs.name == "mine" and cs.classes == ("NV", "MEL", "BCC") and cs.map("bkl") == "NV" and cs.map("df") is None
    assert load_class_set(cs.to_config()) == cs and PRESETS["ham7"].to_config() == "ham7"
    bad = {'classes = ["NV"]\n[map]\nmel = "MEL"\n': "mel = 'MEL' names no class",
           'classes = ["NV", "nv"]\n': "repeat a name", 'classes = ["N V"]\n': "invalid",
           'klasses = []\n': "unknown key"}
    for text, fragment in bad.items():
        path.write_text(text)
        with pytest.raises(UserError, match=fragment) as exc:
            load_class_set(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UserError, match="use paper5, ham7, isic2019 or a FILE.toml"):
        load_class_set("ham9")


def test_ingest_follows_the_set(tmp_path, cli):
    spec = [("L1", "ISIC_0000001", "akiec"), ("L2", "ISIC_0000002", "df"), ("L3", "ISIC_0000003", "mel"),
            ("L4", "ISIC_0000004", "vasc"), ("L5", "ISIC_0000005", "nv")]
    root = ham_dataset(tmp_path / "ham", spec)
    _, _, records = ingest([root], tmp_path / "m7.csv", classes="ham7")
    assert sorted(r.label for r in records) == ["AKIEC", "DF", "MEL", "NV", "VASC"]
    res = cli("data", "ingest", root, "--out", tmp_path / "m5.csv")
    assert res.code == 0 and "dropped (out-of-study class): ham10000 akiec: 1" in res.out
    assert "warning: SCC: 0 images — MILK10k or ISIC 2019 provides SCC" in res.out
    assert {r["label"] for r in read_rows(tmp_path / "m5.csv")} == {"MEL", "NV"}


def test_phantom_follows_the_set(ham_like):
    rows = read_rows(ham_like / "HAM10000_metadata.csv")
    assert {r["dx"] for r in rows} == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert json.loads((ham_like / "ground_truth" / "legend.json").read_text())["class_set"] == "ham7"


def test_split_drops_an_empty_class_and_stops_on_one_or_two_groups(tmp_path, cli):
    rows = [[f"i{k}", f"L{k}", "ham10000", ["NV", "BCC", "BKL", "MEL"][k % 4], "/x"] for k in range(24)]
    manifest = table(tmp_path / "m.csv", MANIFEST, rows)
    res = cli("data", "split", manifest, "--out", tmp_path / "s.csv")
    assert res.code == 0 and "warning: class dropped: SCC: 0 images — MILK10k or ISIC 2019 provides SCC" in res.out
    info = json.loads((tmp_path / "s.json").read_text())
    assert info["classes"] == ["NV", "BCC", "BKL", "MEL"] and list(info["dropped_classes"]) == ["SCC"]
    rows += [["s1", "LS1", "milk10k", "SCC", "/x"], ["s2", "LS2", "milk10k", "SCC", "/x"]]
    res = cli("data", "split", table(tmp_path / "m2.csv", MANIFEST, rows), "--out", tmp_path / "s2.csv")
    assert res.code == 2 and "class SCC has 2 lesion group(s), need at least 3" in res.err
    assert "use a class set without it" in res.err and "\n" not in res.err.strip()
    res = cli("data", "split", tmp_path / "m2.csv", "--out", tmp_path / "s3.csv", "--classes", "ham7")
    assert res.code == 2 and "label 'SCC' is not one of AKIEC" in res.err and "--classes" in res.err


def test_cli_ham_only_download_packs_four_classes(ham_like, tmp_path, cli):
    assert cli("data", "ingest", ham_like, "--out", tmp_path / "manifest.csv").code == 0
    assert cli("data", "split", tmp_path / "manifest.csv", "--out", tmp_path / "split.csv").code == 0
    assert cli("data", "pack", tmp_path / "split.csv", "--out", tmp_path / "shards", "--size", "16").code == 0
    test = ShardReader(tmp_path / "shards" / "test.h5")
    assert test.attrs["class_names"] == ["NV", "BCC", "BKL", "MEL"] and set(test.labels) == {0, 1, 2, 3}
    split = {r["image_id"]: r["label"] for r in read_rows(tmp_path / "split.csv")}
    assert [test.attrs["class_names"][y] for y in test.labels] == [split[i] for i in test.image_ids]
    seven = tmp_path / "seven"
    ingest([ham_like], seven / "m.csv", classes="ham7")
    _, rows = make_split(seven / "m.csv", seven / "s.csv", SplitConfig(), classes="ham7")
    assert {r["label"] for r in rows} == set(PRESETS["ham7"].classes)


def test_predictions_take_their_classes_from_the_header(tmp_path):
    names = ("NV", "BCC", "BKL", "MEL")
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    prob = rng.dirichlet(np.ones(4), size=40).astype(np.float32)
    path = write_predictions(tmp_path / "p.csv", [f"i{k}" for k in range(40)], [f"L{k}" for k in range(40)], y, prob,
                             names)
    assert prediction_classes(path) == names
    _, _, y2, prob2 = read_predictions(path)
    assert (y2 == y).all() and np.array_equal(prob2.astype(np.float32), prob)  # %.9g round-trips float32
    res = evaluate_predictions(path, n_boot=20)
    assert res["classes"] == list(names) and res["target_class"] == "MEL"
    assert res["mel_f1"] == pytest.approx(all_metrics(y, prob.astype(float), 3)["mel_f1"])
    two = write_predictions(tmp_path / "q.csv", ["a", "b", "c", "d"], ["a", "b", "c", "d"], np.array([0, 1, 0, 1]),
                            np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]), ("NV", "BCC"))
    res = evaluate_predictions(two, n_boot=20, target_class="BCC")
    assert res["target_class"] == "BCC" and res["mel_sensitivity"] == 1.0
    assert res["mel_precision"] == pytest.approx(2 / 3)


def _study(tmp_path, name: str, edits: dict[str, str]) -> dict:
    from skingen.grid.run import run_study

    base = {'arms = ["real", "oversample"]': 'arms = ["real"]', "n_boot = 50": "n_boot = 20",
            'name = "smoke"': f'name = "{name}"'}
    run_study(study_variant(tmp_path, replace={**base, **edits}), executor="debug", out=tmp_path / "results")
    return {r["Check"]: r for r in read_rows(tmp_path / "results" / "report" / "tables" / "protocol_audit.csv")}


def test_ham_only_study_reports_four_classes_and_the_scc_note(ham_like, tmp_path):
    audit = _study(tmp_path, "hamonly", {"[data.phantom]\nn = 120\nsize = 64\nseed = 7\n":
                                        f'[data]\nsources = ["{ham_like}"]\n'})
    classes = audit["classes of the study"]
    assert classes["Result"] == "note" and "4 classes of class set paper5: NV, BCC, BKL, MEL" in classes["Evidence"]
    assert "SCC: 0 images — MILK10k or ISIC 2019 provides SCC" in classes["Evidence"]
    pred = next((tmp_path / "results" / "train_clf").glob("*/predictions.csv"))
    assert prediction_classes(pred) == ("NV", "BCC", "BKL", "MEL")
    assert "SCC: 0 images" in (tmp_path / "results" / "report" / "index.html").read_text()


def test_ham7_study_on_the_phantom(tmp_path):
    audit = _study(tmp_path, "ham7", {'name = "ham7"': 'name = "ham7"\nclasses = "ham7"',
                                      "n = 120": "n = 140", "size = 64": "size = 48"})
    assert audit["classes of the study"]["Result"] == "pass"
    evidence = audit["classes of the study"]["Evidence"]
    assert "7 classes of class set ham7: AKIEC, BCC, BKL, DF, MEL, NV, VASC" in evidence
    cell = next((tmp_path / "results" / "train_clf").glob("*/"))
    assert prediction_classes(cell / "predictions.csv") == PRESETS["ham7"].classes
    metrics = json.loads(next((tmp_path / "results" / "clf_metrics").glob("*/metrics.json")).read_text())
    assert metrics["classes"] == list(PRESETS["ham7"].classes) and metrics["target_class"] == "MEL"


def test_report_tables_name_the_class_the_one_vs_rest_metrics_score():
    """A set without MEL scores its target_class; the tables must say so, not 'MEL'."""
    from skingen.report.effects import delta_records
    from skingen.report.joint import CellScores, StudyScores, run_joint_bootstrap
    from skingen.report.tables import MEL_COLUMNS, delta_table, for_target, metric_table

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    cells = [CellScores("basic", arm, "resnet18", seed, rng.dirichlet(np.ones(3), size=60))
             for arm in ("real", "oversample") for seed in range(2)]
    for names, target, word in ((("NV", "BCC", "SCC"), 1, "BCC"), (("NV", "MEL", "SCC"), 1, "MEL")):
        jb = run_joint_bootstrap(StudyScores(y, np.arange(60), cells, target, names), 20, 0)
        assert jb.target_name == word
        table = metric_table(jb, "classifier_melanoma", "x", for_target(MEL_COLUMNS, jb.target_name))
        deltas = delta_table(delta_records(jb), jb.target_name)
        assert table.header[5] == f"{word} F1" and deltas.header[4] == f"Δ{word} F1 [95 % CI]"
        assert ("no melanoma" in table.note) == (word == "MEL") and ("MEL" in " ".join(deltas.header)) == (word == "MEL")
