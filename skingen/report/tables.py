"""Report tables: each written as CSV and LaTeX; cells without results are listed with the reason."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..atomic import write_text
from .stats import aggregate

GLOBAL_COLUMNS = (("macro_f1", "Macro-F1"), ("balanced_accuracy", "Balanced Acc"), ("mcc", "MCC"),
                  ("roc_auc", "ROC-AUC"), ("accuracy", "Accuracy"), ("brier", "Brier"))
MEL_COLUMNS = (("mel_f1", "MEL F1"), ("mel_sensitivity", "Sens"), ("mel_specificity", "Spec"),
               ("mel_precision", "Precision"), ("mel_roc_auc", "ROC-AUC"), ("mel_pr_auc", "PR-AUC"), ("mel_dor", "DOR"))
DELTA_KEYS = (("mel_f1", "ΔMEL F1"), ("macro_f1", "ΔMacro-F1"), ("mel_roc_auc", "ΔMEL ROC-AUC"))


def fmt(value, lo=None, hi=None, digits: int = 3) -> str:
    """``v [lo, hi]`` (or ``v`` / ``—``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}f}"
    if lo is not None and hi is not None:
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


class Table:
    """A titled table of strings."""

    def __init__(self, name: str, title: str, header: list[str], rows: list[list[str]], note: str = ""):
        self.name, self.title, self.header, self.rows, self.note = name, title, header, rows, note

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buf.getvalue()

    def latex_text(self) -> str:
        def esc(s: str) -> str:
            return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

        lines = [r"\begin{tabular}{" + "l" * len(self.header) + "}", r"\hline",
                 " & ".join(esc(h) for h in self.header) + r" \\", r"\hline"]
        lines += [" & ".join(esc(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        """``folder/<name>.csv`` and ``folder/<name>.tex``."""
        write_text(folder / f"{self.name}.csv", self.csv_text())
        write_text(folder / f"{self.name}.tex", self.latex_text())


def metric_table(rows: list[dict], name: str, title: str, columns) -> Table:
    """Per pipeline x arm x model: mean and 95 % CI over seeds (bootstrap CI with one seed)."""
    aggs = {key: aggregate(rows, key) for key, _ in columns}
    keys = sorted({k for a in aggs.values() for k in a})
    body = []
    for key in keys:
        n = aggs[columns[0][0]].get(key, (0, 0, 0, 0))[3]
        body.append([*key, str(n)] + [fmt(*aggs[m].get(key, (None, None, None, 0))[:3]) for m, _ in columns])
    return Table(name, title, ["Pipeline", "Arm", "Model", "Seeds"] + [label for _, label in columns], body)


def delta_table(rows: list[dict]) -> Table:
    """Paired deltas of each arm vs the real-only arm (same pipeline, model, seed, test images)."""
    body = []
    for r in rows:
        paired = (r["metrics"] or {}).get("paired_vs_baseline")
        if not paired:
            continue
        body.append([r["pipeline"], r["arm"], r["model"], str(r["seed"])]
                    + [fmt(paired[k]["delta"], *paired[k]["ci"]) for k, _ in DELTA_KEYS]
                    + [fmt(paired["mel_roc_auc_delong"]["p"], digits=4)])
    return Table("deltas_vs_real", "Paired differences vs the real-only arm (paired bootstrap 95 % CI)",
                 ["Pipeline", "Arm", "Model", "Seed"] + [label for _, label in DELTA_KEYS] + ["DeLong p (MEL AUC)"], body)


def effects_table(effects: list[dict]) -> Table:
    """Factor effects with CIs; inestimable ones shown as missing."""
    body = [[e["factor"], e["contrast"], e["metric"], str(e["n_pairs"]), fmt(e["effect"], *e["ci"]) if e["effect"] is not None
             else "missing: " + e.get("why", "no cells")] for e in effects]
    return Table("factor_effects", "Factor effects (difference of means over the other factors, bootstrap 95 % CI)",
                 ["Factor", "Contrast", "Metric", "Pairs", "Effect [95 % CI]"], body)


def missing_table(rows: list[dict], extra: list[list[str]]) -> Table:
    """Every cell or stage without results, with the reason."""
    body = [[r["pipeline"], r["arm"], r["model"], str(r["seed"]), r["missing"]] for r in rows if r["metrics"] is None]
    body += extra
    return Table("missing", "Missing results (never shown as zeros)", ["Pipeline", "Arm", "Model", "Seed", "Reason"], body)
