"""Feature-space view of real vs synthetic images: t-SNE plot per pipeline and a centroid/spread table.

PCA to (at most) 50 dimensions first, then scikit-learn t-SNE (one thread) with a recorded perplexity and seed;
the perplexity is lowered to (N - 1) / 3 for small sets, and the value used is what gets recorded.
Centroid distances and spreads are computed in the extractor's own feature space, not in the plot.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_csv, write_json
from ..errors import UserError

TSNE_COLUMNS = ["source", "n", "centroid_distance_to_real", "spread", "tsne_centroid_distance_to_real"]


def embed(groups: dict[str, np.ndarray], perplexity: float = 30.0, seed: int = 0) -> tuple[np.ndarray, dict]:
    """2-D t-SNE of all groups stacked (PCA to <= 50 dims first); returns the points and the settings used."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    dims = {g.shape[1] for g in groups.values()}
    if len(dims) != 1:
        raise UserError(f"feature dims differ between sources {sorted(dims)}; use one extractor for all")
    stacked = np.concatenate(list(groups.values())).astype(np.float64)
    if len(stacked) < 5:
        raise UserError(f"t-SNE needs at least 5 images in all; got {len(stacked)}")
    n_comp = min(50, stacked.shape[1], len(stacked) - 1)
    reduced = PCA(n_components=n_comp, random_state=seed).fit_transform(stacked)
    used = min(perplexity, (len(stacked) - 1) / 3)
    # One thread: the Barnes-Hut gradient's threaded sums change order with the thread count, and t-SNE's
    # 1,000 iterations amplify that rounding; single-threaded, a seed gives the same map on every run.
    with threadpool_limits(1):
        points = TSNE(n_components=2, perplexity=used, random_state=seed, init="pca",
                      n_jobs=1).fit_transform(reduced)
    return points, {"perplexity": used, "perplexity_requested": perplexity, "seed": seed, "pca_components": n_comp,
                    "sources": {k: len(v) for k, v in groups.items()}}


def _table(groups: dict[str, np.ndarray], points: np.ndarray, real: str) -> list[dict]:
    offsets = np.cumsum([0] + [len(v) for v in groups.values()])
    spans = {k: points[offsets[i]:offsets[i + 1]] for i, k in enumerate(groups)}
    centre, tsne_centre = groups[real].mean(0), spans[real].mean(0)
    rows = []
    for name, feats in groups.items():
        mu = feats.mean(0)
        rows.append({"source": name, "n": len(feats),
                     "centroid_distance_to_real": float(np.linalg.norm(mu - centre)),
                     "spread": float(np.linalg.norm(feats - mu, axis=1).mean()),
                     "tsne_centroid_distance_to_real": float(np.linalg.norm(spans[name].mean(0) - tsne_centre))})
    return rows


def tsne_figure(groups: dict[str, np.ndarray], out_dir: str | os.PathLike, title: str, real: str = "real",
                perplexity: float = 30.0, seed: int = 0) -> dict:
    """Write ``tsne.png``, ``tsne.csv`` (centroid distances, spreads) and ``tsne.json`` (settings) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if real not in groups:
        raise UserError(f"t-SNE needs the real images as source {real!r}; got {', '.join(groups)}")
    points, settings = embed(groups, perplexity, seed)
    out = Path(out_dir)
    fig, ax = plt.subplots(figsize=(6, 5))
    start = 0
    for name, feats in groups.items():
        span = points[start:start + len(feats)]
        ax.scatter(span[:, 0], span[:, 1], s=8, alpha=0.6, label=f"{name} (n={len(feats)})")
        start += len(feats)
    ax.set_title(f"{title}\nt-SNE, perplexity {settings['perplexity']:.1f}, seed {seed}")
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    with atomic_path(out / "tsne.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    rows = _table(groups, points, real)
    write_csv(out / "tsne.csv", TSNE_COLUMNS, rows)
    write_json(out / "tsne.json", {"title": title, **settings})
    return {"settings": settings, "rows": rows}
