"""Disk a study's cells will write, estimated per stage from the planned cells (``skingen run --check``).

Sizes are estimates: shards hold uncompressed uint8 pixels (N x S x S x 3), synthetic shards likewise,
features files float32 vectors; parameter counts come from the networks themselves, built on the
``meta`` device (no memory, no weights). A classifier cell keeps ``best_model.pt`` (its fp32 weights)
and ``state/`` (weights + SGD momentum) unless ``keep_weights = "none"``: then only the cells training
at the same time hold them. A DDPM cell keeps its EMA snapshot and its state (weights, EMA, AdamW's two
moments); a StyleGAN2-ADA cell its G_ema snapshot and its state (G, D, G_ema, Adam for G and D).
"""
from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..metrics.extractors import FEATURE_DIMS
from .plan import STAGES, Cell
from .spec import StudySpec

log = logging.getLogger(__name__)
SMALL = 200_000  # JSON, CSV and PNG outputs of one cell
ROW = 300  # manifest / split rows per image
FEATURE_FLOATS = {**FEATURE_DIMS, "inception": 2048 + 1008, "tiny": 64 + 10}
# class shares of the phantom (README) and of HAM10000 + MILK10k (dermoscopic), when the data is not counted
SHARES = {"NV": 0.53, "BCC": 0.21, "BKL": 0.12, "MEL": 0.11, "SCC": 0.03}


@dataclass(frozen=True)
class DataSize:
    """How many images the study ingests and the share of its target class."""

    images: int
    target_share: float


@dataclass(frozen=True)
class StageDisk:
    """One row of the table: a stage's cells, those still to run, and what those will write."""

    stage: str
    cells: int
    todo: int
    bytes: int
    what: str


def human(n: float) -> str:
    """Bytes as '1.2 GB' (decimal units, as ``df -H``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@functools.lru_cache(maxsize=None)
def classifier_params(model: str, image_size: int) -> int:
    """Parameters + buffers of a study classifier (built on the meta device)."""
    import torch

    from ..classify.models import create_model

    with torch.device("meta"):
        net = create_model(model, image_size=image_size)
    return sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers())


@functools.lru_cache(maxsize=None)
def generator_params(generator: str, image_size: int, preset: str | None) -> dict[str, int]:
    """Parameter counts of a generator at ``image_size``: {"G": …, "D": …} (DDPM: only "G")."""
    import torch

    from ..generators.registry import get_generator

    try:
        with torch.device("meta"):
            s = get_generator(generator).summary(image_size, preset, False)
    except Exception as exc:  # noqa: BLE001 - a size without a preset: the estimate falls back, the run decides
        log.debug("no parameter count for %s at %d px: %s", generator, image_size, exc)
        return {"G": 0, "D": 0}
    return {"G": int(s.get("total", s.get("G_total", 0))), "D": int(s.get("D", 0))}


def _target_counts(spec: StudySpec, data: DataSize) -> tuple[int, int]:
    """(train, test) images of the target class, from the split fractions."""
    n = data.images * data.target_share
    return round(n * (1 - spec.split.val - spec.split.test)), round(n * spec.split.test)


def _train_gen_bytes(cell: Cell, size: int) -> int:
    gen, cfg = cell.config["generator"], cell.config["config"]
    p = generator_params(gen, size, cfg.get("preset"))
    if gen == "stylegan2_ada":
        return 4 * (5 * p["G"] + 3 * p["D"]) + SMALL
    return 4 * 5 * p["G"] + SMALL


def _clf_bytes(cell: Cell, size: int) -> tuple[int, int]:
    """(kept after the cell finishes, held while it trains)."""
    held = 4 * 3 * classifier_params(cell.config["train"]["model"], size) + SMALL
    kept = SMALL if cell.config["train"].get("keep_weights", "best") == "none" else held
    return kept, held


def cell_bytes(cell: Cell, spec: StudySpec, data: DataSize) -> tuple[int, int]:
    """(bytes the cell leaves on disk, bytes it holds at most while it runs)."""
    size, c = spec.image_size, cell.config
    train, test = _target_counts(spec, data)
    if cell.stage == "phantom":
        n = c["n"] * c["size"] ** 2 * 4
    elif cell.stage in ("ingest", "split"):
        n = data.images * ROW
    elif cell.stage == "pack":
        n = data.images * (size * size * 3 + ROW)
    elif cell.stage == "features":
        n = (train + test) * FEATURE_FLOATS.get(c["extractor"], 2048) * 4 + SMALL
    elif cell.stage == "train_gen":
        n = _train_gen_bytes(cell, size)
    elif cell.stage == "sample":
        n = max(c["n"], round(c["max_dose"] * train), 1) * (size * size * 3 + ROW)
    elif cell.stage == "gen_metrics":
        n = spec.generate.n_synthetic * FEATURE_FLOATS.get(c["metrics"]["extractor"], 2048) * 4 + SMALL
    elif cell.stage == "train_clf":
        return _clf_bytes(cell, size)
    else:
        n = SMALL
    return n, n


WHAT = {"phantom": "images", "ingest": "manifest", "split": "split table", "pack": "shards",
        "features": "features", "train_gen": "snapshots + training state", "sample": "synthetic shards",
        "gen_metrics": "features", "feature_space": "plots", "clf_metrics": "metrics"}


def estimate(spec: StudySpec, cells: list[Cell], todo: set[str], data: DataSize, parallel: int) -> list[StageDisk]:
    """Per stage: cells, cells to run (keys in ``todo``) and the bytes those will write; with
    ``keep_weights = "none"`` the classifier stage needs room for ``parallel`` cells training at once."""
    rows = []
    for stage in STAGES:
        sub = [c for c in cells if c.stage == stage]
        if not sub:
            continue
        run = [c for c in sub if c.key in todo]
        sizes = [cell_bytes(c, spec, data) for c in run]
        total = sum(kept for kept, _ in sizes)
        what = WHAT.get(stage, "")
        if stage == "train_clf":
            none = spec.classify.train.keep_weights == "none"
            what = "predictions (weights deleted)" if none else "best_model.pt + training state"
            if none and sizes:
                total += sum(sorted((held for _, held in sizes), reverse=True)[:max(1, parallel)])
                what += f", {min(parallel, len(run))} training at once"
        rows.append(StageDisk(stage, len(sub), len(run), total, what))
    return rows


def free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path`` (its nearest existing folder)."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def table(rows: list[StageDisk], free: int, root: Path) -> list[str]:
    """The per-stage disk table, its total and the free space of the results file system."""
    lines = [f"{'stage':<14} {'cells':>5} {'to run':>6} {'est. disk':>10}  what"]
    lines += [f"{r.stage:<14} {r.cells:>5} {r.todo:>6} {human(r.bytes):>10}  {r.what}" for r in rows]
    total = sum(r.bytes for r in rows)
    lines.append(f"{'total':<14} {sum(r.cells for r in rows):>5} {sum(r.todo for r in rows):>6} {human(total):>10}"
                 f"  of {human(free)} free on the file system of {root}")
    return lines
