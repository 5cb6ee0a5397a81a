"""Dependency-driven scheduling: a cell goes out as soon as every cell it depends on is done.

Stages overlap: the real-arm classifiers train while the generators do, and one generator's sample
and metrics cells start when that generator finishes, not when all have. Ready cells are handed to the
executor's backend grouped by stage (on SLURM one job array per stage and round); a failed cell blocks
only the cells downstream of it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..progress import progress
from .plan import STAGES, Cell
from .store import cell_state


def _inputs(cell: Cell, by_key: dict[str, Cell], root: Path) -> dict[str, str]:
    return {role: str(by_key[k].folder(root)) for role, k in cell.deps.items()}


def run_cells(cells: list[Cell], root: Path, backend, kind: str, stages: tuple[str, ...] = STAGES) -> dict[str, Counter]:
    """Run every cell of ``stages`` not yet done; per stage, how many finished done, failed or stayed blocked."""
    by_key = {c.key: c for c in cells}
    done = {c.key for c in cells if cell_state(c, root) == "done"}
    waiting = [c for c in cells if c.stage in stages and c.key not in done]
    summary = {stage: Counter(blocked=0) for stage in stages}
    bar = progress(total=len(waiting), desc="cells", unit="cell")
    try:
        while True:
            ready = [c for c in waiting if all(k in done for k in c.deps.values())]
            started = {c.key for c in ready}
            waiting = [c for c in waiting if c.key not in started]
            for stage in STAGES:
                group = [c for c in ready if c.stage == stage]
                if group:
                    tqdm.write(f"{stage}: {len(group)} cell(s) to run with the {kind} executor -> {root / stage}")
                    backend.submit(stage, [(c, _inputs(c, by_key, root)) for c in group])
            if not backend.busy():
                break  # what still waits depends on a failed cell
            for cell, ok in backend.collect():
                if ok:
                    done.add(cell.key)
                summary[cell.stage]["done" if ok else "failed"] += 1
                bar.update()
                tqdm.write(f"{'done  ' if ok else 'FAILED'} {cell.stage}/{cell.name}-{cell.key[:8]}")
    except KeyboardInterrupt:
        backend.cancel()
        raise
    finally:
        bar.close()
    for cell in waiting:
        summary[cell.stage]["blocked"] += 1
    return summary
