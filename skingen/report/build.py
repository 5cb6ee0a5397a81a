"""``skingen report DIR``: aggregate every finished cell into ``DIR/report/`` (tables, figures, index.html)."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from ..atomic import write_json, write_text
from .audit import protocol_audit
from .collect import classifier_rows, load_results
from .generative import gen_metrics_table, sample_figures, tsne_figures
from .figures import bar_chart, forest_plot, gradcam_grid, preprocessing_panel, training_curves
from .html import figure_html, render_page, table_html
from .original import original_comparison
from .stats import KEY_METRICS, architecture_effect, paired_effect, verdict
from .tables import GLOBAL_COLUMNS, MEL_COLUMNS, Table, delta_table, effects_table, metric_table, missing_table


def factor_effects(rows: list[dict]) -> list[dict]:
    """Preprocessing (advanced - basic), generator (DDPM - StyleGAN2-ADA) and architecture effects."""
    effects = []
    for metric in KEY_METRICS:
        effects.append(paired_effect(rows, metric, "pipeline", "basic", "advanced"))
        gen = paired_effect(rows, metric, "arm", "synthetic_stylegan2_ada", "synthetic_ddpm")
        gen.update(factor="generator", why="needs both synthetic_stylegan2_ada and synthetic_ddpm arms")
        effects.append(gen)
        effects.append(architecture_effect(rows, metric))
    return effects


def build_report(root: str | os.PathLike) -> Path:
    """Write ``root/report/`` and return the path of ``index.html``."""
    res = load_results(root)
    out = Path(root) / "report"
    rows = classifier_rows(res)
    effects = factor_effects(rows)
    gen_table, gen_missing = gen_metrics_table(res)
    tables = [metric_table(rows, "classifier_global", "Global 5-class metrics (mean [95 % CI])", GLOBAL_COLUMNS),
              metric_table(rows, "classifier_melanoma", "Melanoma one-vs-rest (mean [95 % CI])", MEL_COLUMNS),
              delta_table(rows), effects_table(effects), missing_table(rows, gen_missing),
              gen_table]
    original = original_comparison(rows) if tomllib.loads(res.spec_text or "").get("study", {}).get(
        "compare_to_original") else None
    audit = protocol_audit(res)
    audit_table = Table("protocol_audit", "Protocol audit", ["Check", "Result", "Evidence"],
                        [[c["check"], c["result"], c["evidence"]] for c in audit])
    for t in tables + [audit_table] + ([original] if original else []):
        t.write(out / "tables")
    figs = out / "figures"
    figures = [("Δ melanoma F1 vs the real-only arm", forest_plot(rows, figs / "forest_mel_f1.png"), ""),
               ("Macro-F1 by model and arm", bar_chart(rows, figs / "bars_macro_f1.png"), ""),
               ("Training curves", training_curves(rows, figs / "training_curves.png"), ""),
               ("Grad-CAM (real arm)", gradcam_grid(rows, figs / "gradcam.png"), ""),
               ("Preprocessing before/after (test images per pipeline)",
                preprocessing_panel(res, figs / "preprocessing.png"), "")]
    verdicts = [verdict(effects, m) for m in ("macro_f1", "mel_f1")]
    sections = [("Classifier results", [table_html(t) for t in tables[:3]]),
                ("Factor effects", [table_html(tables[3])]),
                ("Synthetic images", [table_html(gen_table)] + [figure_html(*f) for f in tsne_figures(res)]
                 + [figure_html(*f) for f in sample_figures(res)]),
                ("Figures", [figure_html(*f) for f in figures]),
                ("Missing cells", [table_html(tables[4])])]
    if original:
        sections.insert(2, ("The original study, side by side", [table_html(original)]))
    page = render_page(res.study, verdicts, sections, audit, res.spec_text)
    write_text(out / "index.html", page)
    write_json(out / "summary.json", {"verdicts": verdicts, "effects": effects, "audit": audit,
                                      "n_classifier_cells": len(rows),
                                      "n_missing": sum(r["metrics"] is None for r in rows)})
    return out / "index.html"
