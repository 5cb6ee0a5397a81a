"""Read a results folder: the plan, each cell's state, classifier metrics, and why missing cells are missing."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..grid.plan import Cell
from ..grid.store import cell_state, marker


@dataclass
class Results:
    """A study's results folder, loaded."""

    root: Path
    cells: list[Cell]
    states: dict[str, str]
    spec_text: str
    study: str = ""
    generate_seed: int = 0  # the one generator instance's seed in single-instance studies

    def of_stage(self, stage: str) -> list[Cell]:
        """Cells of one stage."""
        return [c for c in self.cells if c.stage == stage]

    def by_key(self, key: str) -> Cell:
        """The cell with ``key``."""
        return next(c for c in self.cells if c.key == key)

    def folder(self, cell: Cell) -> Path:
        """Where the cell's outputs are."""
        return cell.folder(self.root)

    def reason(self, cell: Cell) -> str:
        """Why a cell has no results: its state and, for failures, the error line."""
        state = self.states[cell.key]
        if state == "failed":
            return f"failed: {marker(self.folder(cell) / 'FAILED').get('error', '?')}"
        return state


def load_results(root: str | Path) -> Results:
    """Load ``root`` (made by ``skingen run``)."""
    root = Path(root)
    plan = root / "plan.json"
    if not plan.is_file():
        raise UserError(f"{plan}: not found; 'skingen report' needs a results folder made by 'skingen run'")
    data = json.loads(plan.read_text())
    cells = [Cell(**c) for c in data["cells"]]
    spec = (root / "study.toml").read_text() if (root / "study.toml").is_file() else ""
    gen_seed = next((c.config.get("seed", 0) for c in cells if c.stage == "sample"), 0)
    return Results(root, cells, {c.key: cell_state(c, root) for c in cells}, spec, data.get("study", root.name),
                   gen_seed)


def arm_label(arm: dict) -> str:
    """A readable arm name: dose shown for gta/oversample; synthetic arms named by generator (dose if not 1)."""
    if arm.get("generator"):
        return f"synthetic_{arm['generator']}" + (f" x{arm['dose']:g}" if arm["dose"] != 1.0 else "")
    return arm["name"] + (f" x{arm['dose']:g}" if arm["name"] in ("gta", "oversample", "synthetic") else "")


def _instance(arm: dict, res: Results) -> int | None:
    """The generator instance (its seed) a synthetic arm trained on; None for the other arms."""
    if not arm.get("generator"):
        return None
    if arm.get("generator_seed") is not None:
        return int(arm["generator_seed"])
    return int(res.generate_seed)


def classifier_rows(res: Results) -> list[dict]:
    """One row per classifier cell: its factors, metrics (or None) and the reason when missing."""
    rows = []
    for m in res.of_stage("clf_metrics"):
        train = res.by_key(m.deps["train"])
        cfg = train.config
        row = {"pipeline": cfg["pipeline"], "arm": arm_label(cfg["arm"]), "arm_name": cfg["arm"]["name"],
               "model": cfg["train"]["model"], "seed": cfg["train"]["seed"], "cell": res.folder(m).name,
               "generator": cfg["arm"].get("generator") or None, "dose": cfg["arm"].get("dose", 1.0),
               "instance": _instance(cfg["arm"], res), "target_class": cfg["arm"].get("target_class", "MEL"),
               "train_folder": res.folder(train), "metrics": None, "missing": ""}
        if res.states[m.key] == "done":
            row["metrics"] = json.loads((res.folder(m) / "metrics.json").read_text())
        else:
            why = res.reason(train) if res.states[train.key] != "done" else res.reason(m)
            row["missing"] = why
        rows.append(row)
    return rows
