"""The generator part of the report: the generative-metrics table, t-SNE panels and the generator audit."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from ..config import from_dict
from ..data.classes import shard_classes
from ..data.shards import ShardReader
from ..errors import UserError
from ..generators.registry import get_generator
from ..grid.plan import Cell
from ..metrics.features import load_cached_features
from ..metrics.matched import fid_difference
from .collect import Results
from .effects import pick_reference
from .tables import Table, fmt

GEN_HEADER = ["Pipeline", "Generator", "Starting weights", "N (matched)", "FD ± sd [95 % CI]",
              "Real floor FD ± sd [95 % CI]", "FD − floor [95 % CI]", "KID ± sd", "Precision ± sd", "Recall ± sd",
              "Floor KID / P / R", "Density / coverage ± sd", "CMMD ± sd", "Floor density / coverage / CMMD",
              "IS (± sd)", "Memorised [95 % CI]", "Held-out reals, same n", "FD full N vs train",
              "N train / test / fake", "Extractor"]

GEN_NOTE = (
    "Matched N: FID, KID, precision and recall compare N images per set, N = the smallest of the train reals, "
    "test reals and fakes. Each generator's fakes are scored against the test reals and the real floor is train vs "
    "test reals at the same N, so a generator that draws from the real distribution scores about the floor. "
    "'± sd' is over {repeats} subsample rounds; FID's 95 % CI is a joint bootstrap at N (test reals and the compared "
    "set redrawn with replacement, {n_boot} replicates), its percentile interval shifted by the bootstrap's mean bias "
    "so that it is centred on the estimate. Rows 'A − B' give the FID difference of each generator A of a pipeline "
    "minus the reference generator B (report.reference_generator: by default stylegan2_ada when the study has it, "
    "else the first generator listed) against the same test reals (paired rounds; joint bootstrap, the same shift). "
    "Starting weights: the weights a generator's training started from ('none': from scratch). "
    "Memorised: fraction of fakes closer to a train image than the {q:g} quantile of test-to-train distances, 95 % "
    "percentile bootstrap over fakes and threshold; held-out reals: the same fraction for half of the test reals "
    "with the other half setting the threshold, against as many fakes (mean [range over rounds], n images) — what "
    "an honest generator scores. "
    "Full-N FID: all fakes vs all train reals (unequal N; not comparable with the floor). "
    "FD is FID's formula in this table's feature space. Density/coverage: Naeem et al.'s k-NN balls (k = {dc_k}); "
    "CMMD: 1000 x the RBF-kernel MMD^2 (sigma = 10; defined on CLIP embeddings, given in every space). "
    "'tiny' and 'dinov2_standin' are test stand-ins with random weights: their numbers are not comparable with "
    "the real spaces'.")


def _pm(mean, sd, ci=None, digits: int = 3) -> str:
    text = f"{mean:.{digits}f} ± {sd:.{digits}f}"
    return text + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _floor_fidelity(m: dict) -> str:
    if "density_floor" not in m:
        return "—"
    return f"{m['density_floor']:.3f} / {m['coverage_floor']:.3f} / {m['cmmd_floor']:.3f}"


def _config_object(entry, config: dict):
    """A train_gen cell's generator config as its config class (a plain namespace if the class no longer takes it)."""
    try:
        return from_dict(entry.config_class(), config, f"{entry.name} config")
    except (UserError, TypeError, ValueError):
        return SimpleNamespace(**config)


def cell_starting_weights(res: Results, train: Cell) -> str:
    """What a train_gen cell's training started from: its train_summary.json's ``pretrained_from`` when there is one,
    else the registry's ``pretrained`` on the cell's config ('none': from scratch, else the weights' source)."""
    summary = res.folder(train) / "train_summary.json"
    if res.states[train.key] == "done" and summary.is_file():
        named = json.loads(summary.read_text()).get("pretrained_from")
        if named:
            return str(named)
    try:
        entry = get_generator(train.config["generator"])
    except UserError:
        return "unknown"
    return str(entry.pretrained(_config_object(entry, train.config.get("config", {}))))


def starting_weights(res: Results) -> dict[str, str]:
    """generator -> its starting weights over the study's train_gen cells (distinct ones joined by ', ')."""
    out: dict[str, list[str]] = {}
    for cell in res.of_stage("train_gen"):
        seen = out.setdefault(cell.config["generator"], [])
        weights = cell_starting_weights(res, cell)
        seen += [weights] if weights not in seen else []
    return {gen: ", ".join(weights) for gen, weights in out.items()}


def _generator_row(pipe: str, gen: str, m: dict, weights: str = "—") -> list[str]:
    """One generator's matched-N row (PROTOCOL rule 8: implementation, extractor, N)."""
    full, base = m["full_n"], m.get("memorised_baseline")
    floor_kpr = f"{m['kid_floor']:.4f} / {m['precision_floor']:.3f} / {m['recall_floor']:.3f}"
    is_text = "—" if m.get("is_mean") is None else f"{m['is_mean']:.2f} ± {m['is_std']:.2f}"
    held_out = "—" if base is None else (f"{fmt(base['real']['mean'], *base['real']['range'])} vs fakes "
                                         f"{base['fake']['mean']:.3f} (n = {base['n']})")
    fidelity = ["—", "—"] if "density" not in m else [
        f"{_pm(m['density'], m['density_sd'])} / {_pm(m['coverage'], m['coverage_sd'])}", _pm(m["cmmd"], m["cmmd_sd"])]
    return [pipe, gen, weights, str(m["n_matched"]), _pm(m["fid"], m["fid_sd"], m["fid_ci"]),
            _pm(m["fid_floor"], m["fid_floor_sd"], m["fid_floor_ci"]), fmt(m["fid_minus_floor"], *m["fid_minus_floor_ci"]),
            _pm(m["kid"], m["kid_std"], digits=4), _pm(m["precision"], m["precision_sd"]),
            _pm(m["recall"], m["recall_sd"]), floor_kpr, *fidelity, _floor_fidelity(m), is_text,
            fmt(m["memorised_fraction"], *m["memorised_ci"]), held_out, f"{full['fid']:.3f}",
            f"{m['n_real']} / {m['n_test']} / {m['n_fake']}", f"{m['extractor']} ({m['extractor_sha256'][:12]})"]


def _difference_row(res: Results, pipe: str, a: tuple, b: tuple) -> tuple[list[str], dict | None]:
    """FD(a) − FD(b) against the pipeline's test reals at matched N, from the cached features (and the numbers)."""
    (cell_a, gen_a, m_a), (cell_b, gen_b, m_b) = a, b
    row = [pipe, f"{gen_a} − {gen_b}"] + ["—"] * (len(GEN_HEADER) - 2)
    n_col, fd_col = GEN_HEADER.index("N (matched)"), GEN_HEADER.index("FD ± sd [95 % CI]")
    try:
        test = load_cached_features(res.folder(res.by_key(cell_a.deps["features"])) / f"test_{m_a['label']}.h5",
                                    m_a["extractor"])
        fakes = [load_cached_features(res.folder(c) / "features" / "synthetic.h5", m_a["extractor"])
                 for c in (cell_a, cell_b)]
    except (UserError, StopIteration, KeyError) as exc:
        row[fd_col] = f"missing: {exc}"
        return row, None
    d = fid_difference(test, *fakes, m_a["matched_repeats"], m_a["config"]["n_boot"], m_a["config"]["seed"],
                       n=min(m_a["n_matched"], m_b["n_matched"]))
    row[n_col], row[fd_col] = str(d["n"]), _pm(d["estimate"], d["sd"], d["ci"])
    return row, {"pipeline": pipe, "space": m_a["extractor"], "a": gen_a, "b": gen_b, **d}


def instance_label(config: dict) -> str:
    """The generator's name, with its instance seed when the study trained several instances."""
    return config["generator"] + (f" (instance {config['instance']})" if "instance" in config else "")


def gen_metrics_tables(res: Results, spaces: tuple[str, ...] = (), reference: str = "",
                       generators: Sequence[str] = ()) -> tuple[list[Table], list[list[str]], list[dict]]:
    """Per feature space, one table: a matched-N row per generator cell and an FD-difference row per other generator
    of a pipeline minus the reference generator (``reference``: [report] reference_generator, "" its default among
    the study's ``generators``); the rows for missing cells; and the differences (for the agreement block)."""
    missing, by_space = [], {}
    weights = {c.key: cell_starting_weights(res, c) for c in res.of_stage("train_gen")}
    for cell in res.of_stage("gen_metrics"):
        pipe, gen, space = cell.config["pipeline"], instance_label(cell.config), cell.config["metrics"]["extractor"]
        if res.states[cell.key] != "done":
            missing.append([pipe, f"generator {gen} [{space}]", "—", "—", f"generative metrics {res.reason(cell)}"])
            continue
        m = json.loads((res.folder(cell) / "metrics.json").read_text())
        m["starting_weights"] = weights.get(res.by_key(cell.deps["sample"]).deps.get("train_gen", ""), "—")
        by_space.setdefault(space, []).append((cell, gen, m))
    order = [s for s in spaces if s in by_space] + [s for s in by_space if s not in spaces]
    tables, differences = [], []
    for i, space in enumerate(order or [None]):
        table, diffs = _space_table(res, space, by_space.get(space, []), i == 0, (reference, tuple(generators)))
        tables.append(table)
        differences += diffs
    return tables, missing, differences


def reference_pairs(group: list, reference: str, generators: Sequence[str]) -> list[tuple]:
    """(other, reference) entries of one pipeline's generator cells (``group``: (cell, label, metrics) in plan
    order): every generator minus the reference generator. The reference is ``reference`` or the default
    (effects.pick_reference: stylegan2_ada when the study has it, else the first listed), the first generator
    present when it has no cell here; a ddpm + stylegan2_ada study keeps its one row, 'ddpm − stylegan2_ada'."""
    present = [entry[0].config["generator"] for entry in group]
    ref, _ = pick_reference(reference, list(dict.fromkeys([*generators, *present])), present)
    base = next((entry for entry in group if entry[0].config["generator"] == ref), None)
    return [] if base is None else [(entry, base) for entry in group if entry is not base]


def _space_table(res: Results, space: str | None, done: list, first: bool,
                 reference: tuple[str, tuple[str, ...]]) -> tuple[Table, list[dict]]:
    body, groups, diffs = [], {}, []
    for cell, gen, m in done:
        body.append(_generator_row(cell.config["pipeline"], gen, m, m["starting_weights"]))
        group = json.dumps({k: v for k, v in cell.config.items() if k != "generator"}, sort_keys=True)
        groups.setdefault(group, []).append((cell, gen, m))
    for group in groups.values():
        pipe = group[0][0].config["pipeline"]
        for a, b in reference_pairs(group, *reference):
            row, d = _difference_row(res, pipe, a, b)
            body.append(row)
            diffs += [d] if d else []
    cfg = done[0][2] if done else {"matched_repeats": 10, "config": {"n_boot": 100}, "memorisation_quantile": 0.05}
    note = GEN_NOTE.format(repeats=cfg["matched_repeats"], n_boot=cfg["config"]["n_boot"],
                           q=cfg["memorisation_quantile"], dc_k=cfg.get("dc_k", cfg["config"].get("dc_k", 5)))
    name = "generative_metrics" if first else f"generative_metrics_{space}"
    title = "Generative metrics at matched N (synthetic and train reals vs test reals)" + (f" — {space} space"
                                                                                          if space else "")
    return Table(name, title, GEN_HEADER, body, note), diffs


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
        seed = train.config["config"].get("seed", 0)
        name = f"{train.config['generator']} ({train.config['pipeline']}" + (
            f", instance seed {seed})" if train.name.endswith(f"-g{seed}") else ")")
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


def trained_classes(config: dict, reader: ShardReader) -> list[str]:
    """The classes a generator trained on, from its config: a list (ddpm, stylegan2_ada), or sd_lora's "target" (its
    target_class) / "all" (every class of the train shard)."""
    classes = config.get("classes", ())
    if isinstance(classes, str):
        return list(shard_classes(reader)) if classes == "all" else [config["target_class"]]
    return list(classes)


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
        reader = ShardReader(shard)
        classes = trained_classes(summary["config"], reader)
        expected = int(sum((reader.labels == shard_classes(reader).index(c)).sum() for c in classes))
        ok = shard.name == "train.h5" and summary["train_images"] == expected
        bad += not ok
        evidence.append(f"{cell.name}: {summary['train_images']} images of {'/'.join(classes)} from {shard.name}")
    checks = [("generators trained on train only", bad == 0, "; ".join(evidence))]
    wrong = 0
    for cell in res.of_stage("sample"):
        if res.states[cell.key] == "done":
            reader = ShardReader(res.folder(cell) / "synthetic.h5")
            wrong += int((reader.labels != shard_classes(reader).index(cell.config["target_class"])).sum())
    checks.append(("synthetic shards hold the target class only", wrong == 0, f"{wrong} images of another class"))
    return checks
