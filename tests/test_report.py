"""The closing report: tables (CSV + LaTeX), effects, audit, missing cells, and the page in a real browser."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from builders import REPO, read_rows
from skingen.grid.plan import Cell
from skingen.report.build import build_report

TABLES = ("classifier_global", "classifier_melanoma", "deltas_vs_real", "factor_effects", "missing", "protocol_audit")


def test_report_tables_and_audit(smoke_results):
    report = smoke_results / "report"
    for name in TABLES:
        assert (report / "tables" / f"{name}.csv").is_file() and (report / "tables" / f"{name}.tex").is_file()
    glob = read_rows(report / "tables" / "classifier_global.csv")
    assert list(glob[0])[5:] == ["Macro-F1", "Balanced Acc", "MCC", "ROC-AUC", "Accuracy", "Brier"]
    assert {r["Arm"] for r in glob} == {"real", "oversample x1"} and all("[" in r["Macro-F1"] for r in glob)
    mel = read_rows(report / "tables" / "classifier_melanoma.csv")
    assert list(mel[0])[5:] == ["MEL F1", "Sens", "Spec", "Precision", "ROC-AUC", "PR-AUC", "DOR"]
    deltas = read_rows(report / "tables" / "deltas_vs_real.csv")
    assert len(deltas) == 1 and deltas[0]["Arm"] == "oversample x1"
    audit = {r["Check"]: r["Result"] for r in read_rows(report / "tables" / "protocol_audit.csv")}
    assert audit["lesion overlap across splits"] == "pass" and audit["one real test set for every cell"] == "pass"
    summary = json.loads((report / "summary.json").read_text())
    assert "not estimable (needs both basic and advanced pipelines)" in summary["verdicts"][0]
    assert summary["bootstrap"]["n_boot"] == 2000 and summary["bootstrap"]["n_clusters"] > 0
    assert all({"factor", "metric", "contrast", "effect", "ci", "n_pairs"} <= set(e) for e in summary["effects"])
    long = read_rows(report / "tables" / "cells_long.csv")
    assert len(long) == 2 * 13 and {(r["arm"], r["dose"]) for r in long} == {("real", "1"), ("oversample", "1")}
    assert deltas[0]["p"] and deltas[0]["p (Holm)"]
    effects = {(r["Factor"], r["Metric"]): r["Effect [95 % CI]"] for r in read_rows(report / "tables" / "factor_effects.csv")}
    assert effects[("generator", "macro_f1")].startswith("missing: needs both synthetic_stylegan2_ada and synthetic_ddpm")


def test_missing_cells_shown_with_reason_never_zero(smoke_results, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(smoke_results, copy)
    plan = [Cell(**c) for c in json.loads((copy / "plan.json").read_text())["cells"]]
    victim = next(c for c in plan if c.stage == "clf_metrics" and "oversample" in c.name)
    (victim.folder(copy) / "DONE").unlink()
    (victim.folder(copy) / "FAILED").write_text(json.dumps({"error": "RuntimeError: disk full", "log": "x.err"}))
    build_report(copy)
    missing = read_rows(copy / "report" / "tables" / "missing.csv")
    assert any(r["Arm"] == "oversample x1" and "failed: RuntimeError: disk full" in r["Reason"] for r in missing)
    glob = read_rows(copy / "report" / "tables" / "classifier_global.csv")
    assert {r["Arm"] for r in glob} == {"real"}  # the failed cell is absent, not a row of zeros


def _as_seed(folder, seed: int) -> None:
    """Relabel a copied results folder's classifier cells as classifier seed ``seed`` (keys unchanged)."""
    plan = json.loads((folder / "plan.json").read_text())
    for cell in plan["cells"]:
        if cell["stage"] == "train_clf":
            cell["config"]["train"]["seed"] = seed
    (folder / "plan.json").write_text(json.dumps(plan))


def test_report_pools_folders_of_one_study_and_refuses_a_cell_twice(smoke_results, tmp_path, cli):
    later = tmp_path / "later"
    shutil.copytree(smoke_results, later)
    _as_seed(later, 1)
    res = cli("report", smoke_results, later, "--out", tmp_path / "pooled", "--n-boot", "200")
    assert res.code == 0, res.err
    glob = read_rows(tmp_path / "pooled" / "tables" / "classifier_global.csv")
    assert {r["Seeds"] for r in glob} == {"2"}
    long = read_rows(tmp_path / "pooled" / "tables" / "cells_long.csv")
    assert sorted({r["seed"] for r in long}) == ["0", "1"] and len(long) == 4 * 13
    summary = json.loads((tmp_path / "pooled" / "summary.json").read_text())
    assert summary["bootstrap"]["n_boot"] == 200 and len(summary["results_folders"]) == 2
    effects = read_rows(tmp_path / "pooled" / "effects.csv")
    assert {"factor", "ci_lo", "ci_hi", "status"} <= set(effects[0])
    twice = cli("report", smoke_results, smoke_results, "--out", tmp_path / "twice")
    assert twice.code == 2 and "same cell" in twice.err and len(twice.err.strip().splitlines()) == 1


def _browser(tmp_path):
    from selenium import webdriver

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a browser or driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=opts, service=service)


def test_report_page_in_a_real_browser(smoke_results, tmp_path):
    page = smoke_results / "report" / "index.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # no network requests
    driver = _browser(tmp_path)
    try:
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
        tables = driver.execute_script("return document.querySelectorAll('table').length;")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        artifacts = Path(os.environ.get("SKINGEN_TEST_ARTIFACTS", tmp_path))
        artifacts.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(artifacts / "report.png"))
    finally:
        driver.quit()
    assert errors == []
    assert len(images) == 5 and all(done and width > 0 for done, width, _ in images), images
    assert tables == 1 + 6 + 1  # audit, six result tables (generative metrics: no rows here), software
    assert (artifacts / "report.png").stat().st_size > 10_000


def test_the_analysis_scripts_read_the_tidy_exports(smoke_results, tmp_path):
    """analysis/model_deltas.py and analysis/forest_plot.py run on a real report (issue 25)."""
    report = smoke_results / "report"
    run = lambda *a: subprocess.run([sys.executable, *map(str, a)], cwd=REPO, capture_output=True, text=True)  # noqa: E731
    r = run("analysis/model_deltas.py", report, "--metric", "balanced_accuracy", "--out", tmp_path / "d.csv")
    assert r.returncode == 0, r.stderr
    rows = read_rows(tmp_path / "d.csv")
    long = {(x["arm"], x["metric"]): float(x["value"]) for x in read_rows(report / "tables" / "cells_long.csv")
            if x["value"]}
    assert [(x["arm"], x["dose"]) for x in rows] == [("oversample", "1")]
    expected = long[("oversample", "balanced_accuracy")] - long[("real", "balanced_accuracy")]
    assert abs(float(rows[0]["delta"]) - expected) < 1e-6
    r = run("analysis/forest_plot.py", report, "--metric", "macro_f1", "--out", tmp_path / "f.png")
    assert r.returncode == 1 and "no effect with an interval for macro_f1" in r.stderr  # smoke: one pipeline, one model
    other = tmp_path / "other" / "report"  # a second study's effects, as a pooled comparison would have
    other.mkdir(parents=True)
    (other / "effects.csv").write_text((report / "effects.csv").read_text().splitlines()[0] + "\n"
                                       "preprocessing,macro_f1,advanced - basic,0.04,0.01,0.07,12,ok,joint\n"
                                       "architecture,macro_f1,vit_b16 - resnet50,-0.02,-0.05,0.01,12,ok,joint\n")
    r = run("analysis/forest_plot.py", report, other, "--metric", "macro_f1", "--out", tmp_path / "f.png")
    assert r.returncode == 0 and "2 effects" in r.stdout and (tmp_path / "f.png").stat().st_size > 1000, r.stderr


def _metrics(fid: float) -> dict:
    """A gen_metrics cell's metrics.json, the keys the generative table reads."""
    return {"fid": fid, "fid_sd": 0.1, "fid_ci": [fid - 1, fid + 1], "fid_floor": 1.0, "fid_floor_sd": 0.1,
             "fid_floor_ci": [0.5, 1.5], "fid_minus_floor": fid - 1, "fid_minus_floor_ci": [fid - 2, fid],
             "kid": 0.01, "kid_std": 0.001, "precision": 0.5, "precision_sd": 0.01, "recall": 0.5, "recall_sd": 0.01,
             "kid_floor": 0.0, "precision_floor": 0.6, "recall_floor": 0.6, "memorised_fraction": 0.0,
             "memorised_ci": [0.0, 0.01], "full_n": {"fid": fid}, "n_real": 40, "n_test": 30, "n_fake": 40,
             "n_matched": 30, "extractor": "tiny", "extractor_sha256": "0" * 64, "label": "MEL", "matched_repeats": 10,
             "memorisation_quantile": 0.05, "config": {"n_boot": 20, "seed": 0}}


def _generator_results(root: Path, generators: tuple[str, ...]):
    """A results folder with one pipeline's train_gen -> sample -> gen_metrics cells per generator (features on disk;
    ddpm and stylegan2_ada still training, sd_lora done with its train_summary.json)."""
    from dataclasses import asdict

    import h5py
    import numpy as np

    from skingen.generators.ddpm import DDPMConfig
    from skingen.generators.sd_lora.config import SDLoRAConfig
    from skingen.generators.stylegan2.train import StyleGAN2Config
    from skingen.grid.plan import make_cell
    from skingen.grid.store import cell_state
    from skingen.report.collect import Results

    configs = {"ddpm": asdict(DDPMConfig()), "sd_lora": asdict(SDLoRAConfig()),
               "stylegan2_ada": asdict(StyleGAN2Config(init_from="/assets/stylegan2/ffhq"))}
    rng = np.random.default_rng(0)
    features = make_cell("features", "basic-MEL", {"pipeline": "basic", "target_class": "MEL", "extractor": "tiny"})
    cells = [features]
    with h5py.File(_folder(features, root) / "test_MEL.h5", "w") as h5:
        h5["tiny"] = rng.normal(size=(30, 4))
    for k, gen in enumerate(generators):
        train = make_cell("train_gen", f"basic-{gen}", {"generator": gen, "pipeline": "basic", "config": configs[gen]})
        sample = make_cell("sample", f"basic-{gen}", {"generator": gen, "pipeline": "basic"}, {"train_gen": train.key})
        scored = make_cell("gen_metrics", f"basic-{gen}", {"generator": gen, "pipeline": "basic",
                                                            "metrics": {"extractor": "tiny"}},
                           {"sample": sample.key, "features": features.key})
        (_folder(scored, root) / "metrics.json").write_text(json.dumps(_metrics(5.0 + k)))
        with h5py.File(_folder(scored, root) / "features" / "synthetic.h5", "w") as h5:
            h5["tiny"] = rng.normal(0.3 * k, 1.0, size=(40, 4))
        if gen == "sd_lora":
            (_folder(train, root) / "train_summary.json").write_text(json.dumps({"pretrained_from": "sd-v1-5"}))
        cells += [train, sample, scored]
    for cell in cells:
        if cell.stage != "train_gen" or cell.config["generator"] == "sd_lora":
            (_folder(cell, root) / "DONE").write_text(cell.key)
    return Results(root, cells, {c.key: cell_state(c, root) for c in cells}, "")


def _folder(cell, root: Path) -> Path:
    folder = cell.folder(root)
    (folder / "features").mkdir(parents=True, exist_ok=True)
    return folder


def test_generative_table_shows_starting_weights_and_differences_against_the_reference(tmp_path):
    """Issue 26 items 2 and 3: a difference row per generator minus the reference generator; the starting weights
    of each generator in the table, the audit and the verdict's pretraining sentence."""
    from skingen.report.audit import starting_weights_check
    from skingen.report.generative import gen_metrics_tables, starting_weights
    from skingen.report.verdict import pretraining_note

    listed = ("ddpm", "stylegan2_ada", "sd_lora")
    res = _generator_results(tmp_path / "three", listed)
    (table,), missing, diffs = gen_metrics_tables(res, generators=listed)
    assert missing == [] and table.header[:3] == ["Pipeline", "Generator", "Starting weights"]
    rows = [dict(zip(table.header, row)) for row in table.rows]
    assert [(r["Generator"], r["Starting weights"]) for r in rows] == [
        ("ddpm", "none"), ("stylegan2_ada", "/assets/stylegan2/ffhq"), ("sd_lora", "sd-v1-5"),
        ("ddpm − stylegan2_ada", "—"), ("sd_lora − stylegan2_ada", "—")]
    assert rows[3]["N (matched)"] == "30" and " ± " in rows[3]["FD ± sd [95 % CI]"]
    assert [(d["a"], d["b"]) for d in diffs] == [("ddpm", "stylegan2_ada"), ("sd_lora", "stylegan2_ada")]
    (other,), _, _ = gen_metrics_tables(res, reference="sd_lora", generators=listed)
    assert [r[1] for r in other.rows[3:]] == ["ddpm − sd_lora", "stylegan2_ada − sd_lora"]
    starting = starting_weights(res)
    assert starting == {"ddpm": "none", "stylegan2_ada": "/assets/stylegan2/ffhq", "sd_lora": "sd-v1-5"}
    assert starting_weights_check(res) == {"check": "generator starting weights", "result": "note", "evidence":
                                           "ddpm: none; stylegan2_ada: /assets/stylegan2/ffhq; sd_lora: sd-v1-5"}
    gens = [{"status": "ok", "generator": "ddpm", "reference": "stylegan2_ada"}]
    assert "The generators differ in pretraining: the generator effect mixes" in pretraining_note(gens, starting)
    assert pretraining_note(gens, {"ddpm": "none", "stylegan2_ada": "none"}) == ""
    two = _generator_results(tmp_path / "two", ("ddpm", "stylegan2_ada"))
    for order in (("ddpm", "stylegan2_ada"), ()):  # the single row a ddpm + stylegan2_ada study always had
        (table,), _, _ = gen_metrics_tables(two, generators=order)
        assert [r[1] for r in table.rows] == ["ddpm", "stylegan2_ada", "ddpm − stylegan2_ada"]
