"""Pool two (or more) results folders of one study through the report's joint bootstrap.

Usage: python analysis/pool_folders.py RESULTS_DIR1 RESULTS_DIR2 [...] --out POOLED_REPORT_DIR
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from skingen.report.build import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="results folders of one study (made by skingen run)")
    parser.add_argument("--out", required=True, help="where the pooled report goes")
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    page = build_report(*args.folders, out=args.out, n_boot=args.n_boot)
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"pooled {len(args.folders)} folders, {summary['n_classifier_cells']} classifier cells -> {page}")
    for text in summary["verdicts"]:
        print("-", text)


if __name__ == "__main__":
    main()
