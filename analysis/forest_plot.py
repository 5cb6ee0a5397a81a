"""Forest plot of factor effects from one or more reports' ``effects.csv`` (e.g. studies run on different
data or class sets, side by side): one row per (report, factor, contrast), the effect and its 95 % interval.

Usage: python analysis/forest_plot.py REPORT_DIR [REPORT_DIR ...] --metric macro_f1 --out forest.png
(REPORT_DIR is a results folder's ``report/``, or the folder given to ``skingen report --out``)
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the file backend


def read_effects(report: Path, metric: str) -> list[dict]:
    """The rows of ``report/effects.csv`` for ``metric`` that have an estimate and an interval."""
    with open(report / "effects.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == metric and r["effect"] and r["ci_lo"] and r["ci_hi"]]
    return [{**r, "report": report.parent.name if report.name == "report" else report.name} for r in rows]


def forest(rows: list[dict], metric: str, out: Path) -> Path:
    """One horizontal interval per row, a dot at the effect, a line at 0."""
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    for i, r in enumerate(reversed(rows)):
        lo, hi, effect = float(r["ci_lo"]), float(r["ci_hi"]), float(r["effect"])
        ax.plot([lo, hi], [i, i], color="black" if r["status"] == "ok" else "grey")
        ax.plot(effect, i, "o", color="tab:blue" if lo > 0 or hi < 0 else "tab:grey")
    ax.set_yticks(range(len(rows)), [f"{r['report']}: {r['factor']} ({r['contrast']})" for r in reversed(rows)],
                  fontsize=8)
    ax.axvline(0, color="red", linewidth=0.8)
    ax.set_xlabel(f"effect on {metric} (95 % joint-bootstrap interval)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="report folders holding effects.csv")
    parser.add_argument("--metric", default="macro_f1")
    parser.add_argument("--out", type=Path, default=Path("forest.png"))
    args = parser.parse_args()
    rows = [r for report in args.reports for r in read_effects(report, args.metric)]
    if not rows:
        raise SystemExit(f"no effect with an interval for {args.metric} in {', '.join(map(str, args.reports))}")
    print(f"{len(rows)} effects -> {forest(rows, args.metric, args.out)}")


if __name__ == "__main__":
    main()
