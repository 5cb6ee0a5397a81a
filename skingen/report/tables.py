"""Report tables: each written as CSV and LaTeX; cells without results are listed with the reason."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..atomic import write_text
from .joint import INTERVAL, JointBootstrap, level_words
from .stats import interval

GLOBAL_COLUMNS = (("macro_f1", "Macro-F1"), ("balanced_accuracy", "Balanced Acc"), ("mcc", "MCC"),
                  ("roc_auc", "ROC-AUC"), ("accuracy", "Accuracy"), ("brier", "Brier"))
MEL_COLUMNS = (("mel_f1", "MEL F1"), ("mel_sensitivity", "Sens"), ("mel_specificity", "Spec"),
               ("mel_precision", "Precision"), ("mel_roc_auc", "ROC-AUC"), ("mel_pr_auc", "PR-AUC"), ("mel_dor", "DOR"))
DELTA_KEYS = (("mel_f1", "ΔMEL F1"), ("macro_f1", "ΔMacro-F1"), ("mel_roc_auc", "ΔMEL ROC-AUC"))  # effects.DELTA_METRICS


def for_target(columns, target: str):
    """Column labels naming the class the 'mel_*' metrics score (MEL, or target_class when the set has no MEL)."""
    return tuple((key, label.replace("MEL", target)) for key, label in columns)


def target_word(target: str) -> str:
    """'melanoma' for MEL, else the class name (a class set without MEL scores its target_class)."""
    return "melanoma" if target == "MEL" else target


def fmt(value, lo=None, hi=None, digits: int = 3) -> str:
    """``v [lo, hi]`` (or ``v`` / ``—``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}f}"
    if lo is not None and hi is not None:
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def fmt_interval(values) -> str:
    """``estimate [lo, hi]`` from [estimate, replicates...]."""
    est, ci = interval(values)
    return fmt(est, *ci)


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


def metric_table(jb: JointBootstrap | None, name: str, title: str, columns) -> Table:
    """Per pipeline x arm x model: mean over seeds (and generator instances) with its joint-bootstrap interval."""
    body = []
    for i, unit in enumerate(jb.units if jb else []):
        cells = [fmt_interval(jb.values[m][i]) for m, _ in columns]
        body.append([*unit, str(jb.n_seeds[unit]), str(jb.n_instances[unit])] + cells)
    target = target_word(jb.target_name if jb else "MEL")
    note = (f"Mean over classifier seeds (and generator instances); {INTERVAL}"
            + (f", {jb.n_boot} replicates." if jb else ".") + " DOR is pooled on the log scale (geometric mean);"
            f" n/a when a classifier predicts no {target} or only {target}.")
    return Table(name, f"{title} (mean [95 % joint-bootstrap CI])",
                 ["Pipeline", "Arm", "Model", "Seeds", "Instances"] + [label for _, label in columns], body, note)


def _p(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def delta_table(records: list[dict], target: str = "MEL") -> Table:
    """Each arm minus the real-only arm (same pipeline and model), pooled over seeds; raw and Holm p-values."""
    body, keys = [], for_target(DELTA_KEYS, target)
    for r in records:
        arm = r["arm"] + (" (1 generator instance: its variability is not in the interval)"
                          if r.get("status") == "single instance" else "")
        row = [r["pipeline"], arm, r["model"], str(r["n_seeds"])]
        for key, _ in keys:
            d = r[key]
            row += [fmt(d["delta"], *d["ci"]), _p(d["p"]), _p(d["p_holm"])]
        body.append(row)
    header = ["Pipeline", "Arm", "Model", "Seeds"]
    for _, label in keys:
        header += [f"{label} [95 % CI]", "p", "p (Holm)"]
    note = (f"Arm minus the real-only arm of the same pipeline and model, each the mean over its seeds; {INTERVAL}. "
            "p: two-sided bootstrap p-value from the same replicates; p (Holm): Holm-adjusted across every "
            "p-value of this table.")
    return Table("deltas_vs_real", "Differences vs the real-only arm (pooled over seeds)", header, body, note)


def effects_table(effects: list[dict]) -> Table:
    """Factor effects with their joint-bootstrap intervals; missing and insufficient ones say why."""
    body = []
    for e in effects:
        if e["status"] == "missing":
            text = "missing: " + e.get("why", "no cells")
        else:
            text = fmt(e["effect"], *e["ci"]) + (f" ({e['status']}: {e['why']})" if e["status"] != "ok" else "")
        if e.get("simultaneous"):
            text += f" ({level_words(e['level'])} simultaneous interval: {e['simultaneous']})"
        body.append([e["factor"], e["contrast"], e["metric"], str(e["n_pairs"]), text])
    note = (f"Mean paired difference over the other factors; {INTERVAL}. Generator: every generator against the "
            "reference generator (report.reference_generator); with several such contrasts, they and their "
            "comparisons with preprocessing carry simultaneous intervals (Bonferroni over the contrasts, level "
            "1 − 0.05/(k − 1) for k generators). Architecture: every model against the declared reference model "
            "(classify.reference_model), never best minus worst.")
    return Table("factor_effects", "Factor effects (mean paired difference [95 % joint-bootstrap CI])",
                 ["Factor", "Contrast", "Metric", "Pairs", "Effect [95 % CI]"], body, note)


def missing_table(rows: list[dict], extra: list[list[str]]) -> Table:
    """Every cell or stage without results, with the reason."""
    body = [[r["pipeline"], r["arm"], r["model"], str(r["seed"]), r["missing"]] for r in rows if r["metrics"] is None]
    body += extra
    return Table("missing", "Missing results (never shown as zeros)", ["Pipeline", "Arm", "Model", "Seed", "Reason"], body)
