"""``skingen report DIR [DIR2 ...]``: every finished cell into ``report/`` (tables, figures, index.html).

All classifier intervals, deltas, effects and the verdict come from one joint hierarchical bootstrap
of the study (``joint.py``); several results folders of one study are pooled through it.
"""
from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path

from ..atomic import write_json, write_text
from ..errors import UserError
from .audit import protocol_audit
from .collect import Results, classifier_rows, load_results
from .effects import delta_records, factor_effects, public
from .export import write_cells_long, write_effects
from .figures import bar_chart, forest_plot, gradcam_grid, preprocessing_panel, training_curves
from .generative import gen_metrics_tables, sample_figures, starting_weights, tsne_figures
from .spaces import agreement
from .html import figure_html, paragraph_html, render_page, table_html
from .joint import INTERVAL, JointBootstrap, run_joint_bootstrap
from .original import original_comparison
from .scores import study_scores
from .tables import (GLOBAL_COLUMNS, MEL_COLUMNS, Table, delta_table, effects_table, for_target, metric_table,
                     missing_table, target_word)
from .verdict import verdicts as make_verdicts

log = logging.getLogger(__name__)


def reference_model(spec_text: str, models: set[str]) -> str:
    """The study's ``classify.reference_model`` (default resnet50 when present, else the first model)."""
    classify = tomllib.loads(spec_text or "").get("classify", {})
    ref = classify.get("reference_model") or ""
    listed = classify.get("models") or sorted(models)
    return ref or ("resnet50" if "resnet50" in listed else listed[0])


def generator_reference(spec_text: str) -> tuple[str, tuple[str, ...]]:
    """The study's ``report.reference_generator`` ("" = the default rule, see effects.DEFAULT_REFERENCE) and its
    ``generate.generators`` in their order."""
    raw = tomllib.loads(spec_text or "")
    return (raw.get("report", {}).get("reference_generator") or "",
            tuple(raw.get("generate", {}).get("generators") or ()))


def _load_all(roots: list[Path]) -> tuple[list[Results], list[dict]]:
    results = [load_results(r) for r in roots]
    studies = {r.study for r in results}
    if len(studies) > 1:
        raise UserError(f"{', '.join(map(str, roots))}: folders of different studies ({', '.join(sorted(studies))}); "
                        "only folders of one study can be pooled")
    rows = [row for res in results for row in classifier_rows(res)]
    seen = set()
    for row in rows:
        key = (row["pipeline"], row["arm"], row["model"], row["seed"], row["instance"])
        if row["metrics"] is not None and key in seen:
            raise UserError(f"{row['train_folder']}: the same cell (seed {row['seed']}) is in two pooled folders; pool "
                            "folders whose seeds differ (e.g. extra seeds run later)")
        seen.add(key)
    return results, rows


def _classifier_tables(jb: JointBootstrap | None, deltas: list[dict], effects: list[dict], rows: list[dict],
                       gen_missing: list) -> list[Table]:
    target = jb.target_name if jb else "MEL"
    title = "Melanoma" if target == "MEL" else target
    return [metric_table(jb, "classifier_global", "Global metrics", GLOBAL_COLUMNS),
            metric_table(jb, "classifier_melanoma", f"{title} one-vs-rest", for_target(MEL_COLUMNS, target)),
            delta_table(deltas, target), effects_table(effects), missing_table(rows, gen_missing)]


def _reference_used(effects: list[dict], declared: str) -> dict:
    """summary.json's account of the generator contrasts' reference: declared, used, and why they differ."""
    gen = next((e for e in effects if e["factor"] == "generator"), {})
    return {"declared": declared, "used": gen.get("reference"), "note": gen.get("note", ""),
            "level": gen.get("level"), "simultaneous": gen.get("simultaneous", "")}


def build_report(root: str | os.PathLike, *more: str | os.PathLike, out: str | os.PathLike | None = None,
                 n_boot: int = 2000, seed: int = 0) -> Path:
    """Write ``out`` (default ``root/report/``) and return the path of its ``index.html``."""
    roots = [Path(root), *map(Path, more)]
    results, rows = _load_all(roots)
    res = results[0]
    out = Path(out) if out else roots[0] / "report"
    scores = study_scores(results, rows)
    jb = run_joint_bootstrap(scores, n_boot, seed) if scores else None
    ref = reference_model(res.spec_text, {r["model"] for r in rows})
    gen_ref, generators = generator_reference(res.spec_text)
    effects = factor_effects(jb, ref, generators, gen_ref) if jb else []
    deltas = delta_records(jb) if jb else []
    starting = starting_weights(res)
    gen_tables, gen_missing, differences = gen_metrics_tables(res, reference=gen_ref, generators=generators)
    agree, disagreements = agreement(differences)
    gen_tables += [agree] if agree else []
    tables = _classifier_tables(jb, deltas, effects, rows, gen_missing) + gen_tables
    original = original_comparison(jb) if tomllib.loads(res.spec_text or "").get("study", {}).get(
        "compare_to_original") else None
    audit = protocol_audit(res)
    audit_table = Table("protocol_audit", "Protocol audit", ["Check", "Result", "Evidence"],
                        [[c["check"], c["result"], c["evidence"]] for c in audit])
    for t in tables + [audit_table] + ([original] if original else []):
        t.write(out / "tables")
    if jb:
        write_cells_long(out / "tables" / "cells_long.csv", res.study, scores, jb)
    write_effects(out / "effects.csv", effects)
    figs = out / "figures"
    target = target_word(jb.target_name if jb else "MEL")
    figures = [(f"Δ {target} F1 vs the real-only arm", forest_plot(deltas, figs / "forest_mel_f1.png"), ""),
               ("Macro-F1 by model and arm", bar_chart(jb, figs / "bars_macro_f1.png"), ""),
               ("Training curves", training_curves(rows, figs / "training_curves.png"), ""),
               ("Grad-CAM (real arm)", gradcam_grid(rows, figs / "gradcam.png"), ""),
               ("Preprocessing before/after (test images per pipeline)",
                preprocessing_panel(res, figs / "preprocessing.png"), "")]
    verdicts = (make_verdicts(effects, jb, starting) if jb
                else ["No classifier cell has finished: nothing to compare yet."])
    sections = [("Classifier results", [table_html(t) for t in tables[:3]]),
                ("Factor effects", [table_html(tables[3])]),
                ("Synthetic images", [table_html(t) for t in gen_tables] + [paragraph_html(t) for t in disagreements]
                 + [figure_html(*f) for f in tsne_figures(res)]
                 + [figure_html(*f) for f in sample_figures(res)]),
                ("Figures", [figure_html(*f) for f in figures]),
                ("Missing cells", [table_html(tables[4])])]
    if original:
        sections.insert(2, ("The original study, side by side", [table_html(original)]))
    write_text(out / "index.html", render_page(res.study, verdicts, sections, audit, res.spec_text))
    write_json(out / "summary.json", {
        "verdicts": verdicts, "effects": public(effects), "audit": audit, "reference_model": ref,
        "reference_generator": _reference_used(effects, gen_ref), "starting_weights": starting,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "interval": INTERVAL if effects else None,
                      "n_images": jb.n_images if jb else 0, "n_clusters": jb.n_clusters if jb else 0},
        "feature_space_disagreements": disagreements, "results_folders": [str(r) for r in roots], "n_classifier_cells": len(rows),
        "n_missing": sum(r["metrics"] is None for r in rows)})
    log.info("report -> %s", out)
    return out / "index.html"
