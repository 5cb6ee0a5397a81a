"""Per-model table of each arm's mean metric minus the real-only arm's, from ``cells_long.csv``
(mean over seeds and generator instances, matched by pipeline, model and seed; no intervals -- the
report's deltas table has those).

Usage: python analysis/model_deltas.py REPORT_DIR --metric macro_f1 [--out deltas.csv]
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path
from statistics import mean


def model_deltas(cells_long: Path, metric: str) -> list[dict]:
    """Rows (pipeline, model, arm, dose, n_pairs, delta) for every non-real arm with a matched real cell."""
    values = defaultdict(list)
    with open(cells_long, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["metric"] == metric and r["value"]:
                values[(r["pipeline"], r["model"], r["arm"], r["dose"], r["seed"])].append(float(r["value"]))
    real = {(p, m, s): mean(v) for (p, m, a, d, s), v in values.items() if a == "real"}
    pairs = defaultdict(list)
    for (p, m, a, d, s), v in values.items():
        if a != "real" and (p, m, s) in real:
            pairs[(p, m, a, d)].append(mean(v) - real[(p, m, s)])
    return [{"pipeline": p, "model": m, "arm": a, "dose": d, "n_pairs": len(v), "delta": round(mean(v), 6)}
            for (p, m, a, d), v in sorted(pairs.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a report folder (holding tables/cells_long.csv)")
    parser.add_argument("--metric", default="macro_f1")
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args()
    rows = model_deltas(args.report / "tables" / "cells_long.csv", args.metric)
    print(f"{'pipeline':<10} {'model':<16} {'arm':<26} {'dose':>5} {'pairs':>5} {'delta ' + args.metric:>16}")
    for r in rows:
        print(f"{r['pipeline']:<10} {r['model']:<16} {r['arm']:<26} {r['dose']:>5} {r['n_pairs']:>5} {r['delta']:>+16.4f}")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["pipeline"])
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
