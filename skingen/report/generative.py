"""The generator part of the report: the generative-metrics table, t-SNE panels and the generator audit."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.classes import CLASS_INDEX
from ..data.shards import ShardReader
from .collect import Results
from .tables import Table, fmt

GEN_HEADER = ["Pipeline", "Generator", "FID [95 % CI]", "Real floor FID", "KID (± sd)", "IS (± sd)", "Precision",
              "Recall", "Memorised", "N real / fake", "Extractor"]


def gen_metrics_table(res: Results) -> tuple[Table, list[list[str]]]:
    """One row per generator cell (PROTOCOL rule 8: implementation, extractor, N), and rows for missing ones."""
    body, missing = [], []
    for cell in res.of_stage("gen_metrics"):
        pipe, gen = cell.config["pipeline"], cell.config["generator"]
        if res.states[cell.key] != "done":
            missing.append([pipe, f"generator {gen}", "—", "—", f"generative metrics {res.reason(cell)}"])
            continue
        m = json.loads((res.folder(cell) / "metrics.json").read_text())
        kid = f"{m['kid']:.4f} ± {m['kid_std']:.4f}"
        is_text = "—" if m.get("is_mean") is None else f"{m['is_mean']:.2f} ± {m['is_std']:.2f}"
        body.append([pipe, gen, fmt(m["fid"], *m["fid_ci"]), fmt(m["fid_floor"]), kid, is_text, fmt(m["precision"]),
                     fmt(m["recall"]), f"{m['memorised_fraction']:.3f} (expected ≈ {m['memorisation_quantile']:g})",
                     f"{m['n_real']} / {m['n_fake']}", f"{m['extractor']} ({m['extractor_sha256'][:12]})"])
    note = ("FID/KID/PR against the train reals of the target class; the floor is train vs test reals. "
            "A 'tiny' extractor is a test stand-in: its numbers are not comparable to Inception FID.")
    return Table("generative_metrics", "Generative metrics (synthetic vs real train images)", GEN_HEADER, body, note), missing


def tsne_figures(res: Results) -> list[tuple[str, Path | None, str]]:
    """(title, png or None, why missing) per pipeline's feature_space cell."""
    out = []
    for cell in res.of_stage("feature_space"):
        title = f"t-SNE of real and synthetic features ({cell.config['pipeline']})"
        png = res.folder(cell) / "tsne.png"
        done = res.states[cell.key] == "done" and png.is_file()
        out.append((title, png if done else None, "" if done else res.reason(cell)))
    return out or [("t-SNE of real and synthetic features", None, "this study has no generator cells")]


def sample_figures(res: Results) -> list[tuple[str, Path | None, str]]:
    """Per generator cell: its latest sample grid, and the 16 fakes closest to a train image beside it."""
    out = []
    metrics = {c.deps["sample"]: c for c in res.of_stage("gen_metrics")}
    for train in res.of_stage("train_gen"):
        name = f"{train.config['generator']} ({train.config['pipeline']})"
        grids = sorted((res.folder(train) / "samples").glob("step_*.png"))
        done = res.states[train.key] == "done"
        out.append((f"Samples of {name}", grids[-1] if done and grids else None,
                    "" if done and grids else (res.reason(train) if not done else "no sample grid (grid_images = 0)")))
        sample = next((c for c in res.of_stage("sample") if c.deps["train_gen"] == train.key), None)
        cell = metrics.get(sample.key) if sample else None
        png = res.folder(cell) / "closest_pairs.png" if cell else None
        ok = cell is not None and res.states[cell.key] == "done" and png.is_file()
        out.append((f"Memorisation check, {name}: the 16 fakes closest to a train image (fake | train)",
                    png if ok else None, "" if ok else (res.reason(cell) if cell else "no metrics cell")))
    return out


def generator_checks(res: Results) -> list[tuple[str, bool | None, str]]:
    """(check, ok or None for n/a, evidence): generators saw only train images of the target class;
    synthetic shards hold only that class."""
    cells = [c for c in res.of_stage("train_gen") if res.states[c.key] == "done"]
    if not cells:
        return [("generators trained on train only", None, "this study has no finished generator cells")]
    bad, evidence = 0, []
    for cell in cells:
        summary = json.loads((res.folder(cell) / "train_summary.json").read_text())
        shard = Path(summary["train_shard"])
        classes = summary["config"]["classes"]
        expected = int(sum((ShardReader(shard).labels == CLASS_INDEX[c]).sum() for c in classes))
        ok = shard.name == "train.h5" and summary["train_images"] == expected
        bad += not ok
        evidence.append(f"{cell.name}: {summary['train_images']} images of {'/'.join(classes)} from {shard.name}")
    checks = [("generators trained on train only", bad == 0, "; ".join(evidence))]
    wrong = 0
    for cell in res.of_stage("sample"):
        if res.states[cell.key] == "done":
            reader = ShardReader(res.folder(cell) / "synthetic.h5")
            wrong += int((reader.labels != CLASS_INDEX[cell.config["target_class"]]).sum())
    checks.append(("synthetic shards hold the target class only", wrong == 0, f"{wrong} images of another class"))
    return checks
