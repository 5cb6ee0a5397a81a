"""What each stage does: one library call per cell; inputs are the folders of the cells it depends on."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..atomic import write_json
from ..classify.arms import ArmConfig
from ..classify.train import TrainConfig, train_classifier
from ..config import from_dict
from ..data.ingest import ingest
from ..data.pack import pack
from ..data.phantom import make_phantom
from ..data.split import SplitConfig, lesion_overlap, make_split
from ..metrics.predictions import evaluate_predictions
from .plan import Cell


def run_phantom(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Generate the phantom dataset into ``out/data``."""
    c = cell.config
    make_phantom(out / "data", c["n"], size=c["size"], seed=c["seed"], workers=2)
    return {"images": c["n"]}


def run_ingest(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Ingest the sources (or the phantom) into ``out/manifest.csv`` (+ quarantine.csv)."""
    roots = [inputs["phantom"] / "data"] if "phantom" in inputs else cell.config["sources"]
    _, report, records = ingest(roots, out / "manifest.csv", source=cell.config["source"],
                                modality=cell.config["milk10k_modality"], workers=2)
    return {"images": len(records), "quarantined": len(report.quarantine)}


def run_split(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Lesion-grouped split into ``out/split.csv``; refuses to finish with any lesion overlap."""
    _, rows = make_split(inputs["ingest"] / "manifest.csv", out / "split.csv", from_dict(SplitConfig, cell.config, "split"))
    overlap = lesion_overlap(rows, key="group_id")
    if overlap:
        raise RuntimeError(f"{len(overlap)} lesion groups in more than one split")
    return {"images": len(rows), "lesion_overlap": 0}


def run_pack(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Pack the split through the cell's pipeline into ``out/{train,val,test}.h5``."""
    shards = pack(inputs["split"] / "split.csv", out, cell.config["image_size"], pipeline=cell.config["pipeline"], workers=1)
    return {"shards": {k: str(v) for k, v in shards.items()}}


def run_train_clf(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Train one classifier cell (resumes from its saved state when re-run after preemption)."""
    train = from_dict(TrainConfig, cell.config["train"], "train")
    arm = from_dict(ArmConfig, cell.config["arm"], "arm")
    summary = train_classifier(inputs["pack"], out, train, arm)
    return {"best_epoch": summary["best_epoch"], "best_val_macro_f1": summary["best_val_macro_f1"]}


def run_clf_metrics(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """metrics.json with lesion-bootstrap CIs, and paired deltas against the real arm's cell."""
    baseline = inputs["baseline"] / "predictions.csv" if "baseline" in inputs else None
    res = evaluate_predictions(inputs["train"] / "predictions.csv", baseline, n_boot=cell.config["n_boot"],
                               seed=cell.config["seed"])
    write_json(out / "metrics.json", res)
    return {"macro_f1": res["macro_f1"], "mel_f1": res["mel_f1"]}


STAGE_FUNCTIONS: dict[str, Callable[[Cell, Path, dict[str, Path]], dict]] = {
    "phantom": run_phantom, "ingest": run_ingest, "split": run_split, "pack": run_pack,
    "train_clf": run_train_clf, "clf_metrics": run_clf_metrics,
}
