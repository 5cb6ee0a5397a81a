"""Report figures (matplotlib, Agg): forest plot of deltas, bars with CIs, training curves,
Grad-CAM grid, preprocessing before/after. Each returns the PNG path or None when there is no data."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..data.shards import ShardReader  # noqa: E402
from ..data.tables import read_table  # noqa: E402
from .collect import Results  # noqa: E402
from .joint import JointBootstrap  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def forest_plot(deltas: list[dict], out: Path, key: str = "mel_f1") -> Path | None:
    """Delta vs the real arm (pooled over seeds), one line per pipeline x arm x model, with its interval."""
    items = [(f"{r['pipeline']} | {r['arm']} | {r['model']}", r[key]) for r in deltas
             if r[key]["delta"] is not None and r[key]["ci"][0] is not None]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(items) + 1))
    for i, (_, d) in enumerate(items):
        lo, hi = d["ci"]
        ax.plot([lo, hi], [i, i], color="tab:blue")
        ax.plot(d["delta"], i, "o", color="tab:blue")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(items)), [label for label, _ in items], fontsize=7)
    ax.set_xlabel(f"Δ {key} vs real-only arm (95 % joint-bootstrap CI)")
    return _save(fig, out)


def bar_chart(jb: JointBootstrap | None, out: Path, key: str = "macro_f1") -> Path | None:
    """Mean ``key`` per model and arm (one panel per pipeline) with joint-bootstrap CI error bars."""
    agg = jb.summary(key) if jb else {}
    if not agg:
        return None
    pipes = sorted({k[0] for k in agg})
    arms = sorted({k[1] for k in agg})
    models = sorted({k[2] for k in agg})
    fig, axes = plt.subplots(1, len(pipes), figsize=(5 * len(pipes), 3.5), squeeze=False)
    width = 0.8 / max(1, len(arms))
    for ax, pipe in zip(axes[0], pipes):
        for j, arm in enumerate(arms):
            vals = [agg.get((pipe, arm, m), (np.nan, None, None, 0)) for m in models]
            means = [v[0] for v in vals]
            err = np.array([[v[0] - v[1] if v[1] is not None else 0, v[2] - v[0] if v[2] is not None else 0] for v in vals]).T
            ax.bar(np.arange(len(models)) + j * width, means, width, yerr=err, label=arm, capsize=2)
        ax.set_xticks(np.arange(len(models)) + width * (len(arms) - 1) / 2, models, rotation=30, fontsize=8)
        ax.set_title(pipe)
        ax.set_ylabel(key)
    axes[0][-1].legend(fontsize=7)
    return _save(fig, out)


def training_curves(rows: list[dict], out: Path) -> Path | None:
    """Validation macro-F1 per epoch of every finished classifier cell."""
    curves = [(r, r["train_folder"] / "curves.csv") for r in rows if (r["train_folder"] / "curves.csv").is_file()]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for _, path in curves:
        _, data = read_table(path, ("epoch", "val_macro_f1"))
        ax.plot([int(d["epoch"]) for d in data], [float(d["val_macro_f1"]) for d in data], lw=0.8, alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val macro-F1")
    ax.set_title(f"{len(curves)} classifier cells")
    return _save(fig, out)


def gradcam_grid(rows: list[dict], out: Path) -> Path | None:
    """The real-arm Grad-CAM grids of each model, stacked with labels."""
    import cv2

    picks = {}
    for r in rows:
        path = r["train_folder"] / "gradcam.png"
        if r["arm_name"] == "real" and path.is_file() and (r["pipeline"], r["model"]) not in picks:
            picks[(r["pipeline"], r["model"])] = path
    if not picks:
        return None
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 1.6 * len(picks)), squeeze=False)
    for ax, ((pipe, model), path) in zip(axes[:, 0], sorted(picks.items())):
        ax.imshow(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        ax.set_title(f"{pipe} | {model} (top: images, bottom: Grad-CAM of the predicted class)", fontsize=8)
        ax.axis("off")
    return _save(fig, out)


def preprocessing_panel(res: Results, out: Path, n: int = 6) -> Path | None:
    """The same test images as packed by each pipeline, one row per pipeline."""
    packs = [c for c in res.of_stage("pack") if res.states[c.key] == "done"]
    if not packs:
        return None
    readers = {c.name: ShardReader(res.folder(c) / "test.h5") for c in packs}
    common = sorted(set.intersection(*(set(r.image_ids) for r in readers.values())))[:n]
    fig, axes = plt.subplots(len(readers), len(common), figsize=(1.6 * len(common), 1.7 * len(readers)), squeeze=False)
    for i, (name, reader) in enumerate(sorted(readers.items())):
        for j, image_id in enumerate(common):
            axes[i][j].imshow(reader.image(reader.image_ids.index(image_id)))
            axes[i][j].axis("off")
            axes[i][j].set_title(f"{name}\n{image_id}" if j == 0 else image_id, fontsize=6)
    return _save(fig, out)

