"""Plan a study into cells: stage + the config subset it depends on + its dependencies -> stable key.

A cell's key hashes its stage, config and the keys of the cells it depends on, so changing one
parameter changes exactly the keys of the cells downstream of it (and re-runs only those).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..data.classes import DEFAULT as DEFAULT_CLASSES
from ..data.classes import load_class_set
from ..generators.registry import get_generator
from ..preprocess import get_pipeline
from .spec import StudySpec

STAGES = ("phantom", "ingest", "split", "pack", "features", "train_gen", "sample", "gen_metrics", "feature_space",
          "train_clf", "clf_metrics")


@dataclass(frozen=True)
class Cell:
    """One unit of work: its stage, readable name, config, dependency keys and stable key."""

    stage: str
    name: str
    config: dict
    deps: dict = field(default_factory=dict)  # role -> key of the cell it needs
    key: str = ""

    def folder(self, root: Path) -> Path:
        """``root/<stage>/<name>-<key8>``."""
        return Path(root) / self.stage / f"{self.name}-{self.key[:8]}"

    def to_json(self) -> dict:
        """A plain dict (what workers receive and cell.json records)."""
        return asdict(self)


def make_cell(stage: str, name: str, config: dict, deps: dict | None = None) -> Cell:
    """A cell with its key computed from stage, config and dependency keys."""
    deps = dict(deps or {})
    blob = json.dumps({"stage": stage, "config": config, "deps": deps}, sort_keys=True, default=str)
    return Cell(stage, name, config, deps, hashlib.sha256(blob.encode()).hexdigest())


def class_config(spec: StudySpec) -> dict:
    """``{"classes": preset name or the file's table}`` for the data cells; {} for paper5 (keys as before)."""
    cfg = load_class_set(spec.classes).to_config()
    return {} if cfg == DEFAULT_CLASSES else {"classes": cfg}


def _data_cells(spec: StudySpec) -> list[Cell]:
    cells = []
    classes = class_config(spec)
    ingest_cfg = {"sources": [str(Path(s).resolve()) for s in spec.data.sources], "source": spec.data.source,
                  "milk10k_modality": spec.data.milk10k_modality, **classes}
    deps = {}
    if spec.data.phantom is not None:
        phantom = make_cell("phantom", "phantom", {**asdict(spec.data.phantom), **classes})
        cells.append(phantom)
        deps = {"phantom": phantom.key}
    ingest = make_cell("ingest", "manifest", ingest_cfg, deps)
    split = make_cell("split", "split", {**asdict(spec.split), **classes}, {"ingest": ingest.key})
    return cells + [ingest, split]


def _pack_cells(spec: StudySpec, split: Cell) -> dict[str, Cell]:
    out = {}
    for name in spec.pipelines:
        record = get_pipeline(name).record()
        out[record["name"]] = make_cell("pack", record["name"], {"pipeline": str(name), "record": record,
                                                                  "image_size": spec.image_size, **class_config(spec)},
                                        {"split": split.key})
    return out


def _generator_cells(spec: StudySpec, packs: dict[str, Cell]) -> dict[str, list[Cell]]:
    """Per pipeline x generator x instance: train_gen -> sample -> one gen_metrics per feature space; per
    pipeline and space one features cell (the real target-class features every generator is scored against);
    per pipeline one feature_space cell (t-SNE in the first space)."""
    g, target = spec.generate, spec.classify.target_class
    spaces = g.metrics.spaces()
    cells: dict[str, list[Cell]] = {s: [] for s in ("features", "train_gen", "sample", "gen_metrics", "feature_space")}
    for pipe, pack in packs.items():
        reals = {space: make_cell("features", f"{pipe}-{target}" + (f"-{space}" if i else ""),
                                  {"pipeline": pipe, "target_class": target, "extractor": space,
                                   "batch_size": g.metrics.batch_size}, {"pack": pack.key})
                 for i, space in enumerate(spaces)}
        metrics = []
        for gen in g.generators:
            for inst in g.instance_seeds():
                train, sample, scored = _instance_cells(spec, pipe, pack, reals, gen, inst)
                cells["train_gen"].append(train)
                cells["sample"].append(sample)
                metrics += scored
        cells["gen_metrics"] += metrics
        if metrics:
            cells["features"] += list(reals.values())
            first = [m for m in metrics if m.config["metrics"]["extractor"] == spaces[0]
                     and m.config.get("instance", g.instance_seeds()[0]) == g.instance_seeds()[0]]
            cells["feature_space"].append(make_cell(
                "feature_space", pipe, {"pipeline": pipe, "target_class": target, "perplexity": g.tsne_perplexity,
                                        "seed": g.seed, "extractor": spaces[0]},
                {"features": reals[spaces[0]].key, **{f"gen_metrics:{m.config['generator']}": m.key for m in first}}))
    return cells


def _instance_cells(spec: StudySpec, pipe: str, pack: Cell, reals: dict[str, Cell], gen: str,
                    inst: int) -> tuple[Cell, Cell, list[Cell]]:
    """train_gen -> sample -> gen_metrics (one per feature space) of one generator instance (seed ``inst``).

    With a single instance and space the names and keys are those of studies made before replication."""
    g, target = spec.generate, spec.classify.target_class
    doses = [d for d in spec.classify.doses] or [1.0]
    many = len(g.instance_seeds()) > 1
    name = f"{pipe}-{gen}" + (f"-g{inst}" if many else "")
    tag = {"instance": inst} if many else {}
    entry = get_generator(gen)
    gen_cfg = {k: v for k, v in asdict(replace(getattr(g, gen), **entry.study_fields(spec.image_size, target, inst))).items()
               if k not in entry.sample_only}
    train = make_cell("train_gen", name, {"generator": gen, "pipeline": pipe, "config": gen_cfg}, {"pack": pack.key})
    sample = make_cell("sample", name, {
        "generator": gen, "pipeline": pipe, "target_class": target, "n": g.n_synthetic, "max_dose": max(doses),
        "image_size": spec.image_size, "sampler": g.sampler, "steps": g.sampling_steps, "seed": inst,
        "batch": g.sample_batch, **get_generator(gen).sample_config(g), **tag},
        {"train_gen": train.key, "pack": pack.key})
    scored = [make_cell("gen_metrics", name + (f"-{space}" if i else ""),
                        {"generator": gen, "pipeline": pipe, "metrics": asdict(g.metrics.in_space(space)), **tag},
                        {"sample": sample.key, "pack": pack.key, "features": real.key})
              for i, (space, real) in enumerate(reals.items())]
    return train, sample, scored


def _arm_cells(arm: str, doses: tuple[float, ...]) -> list[tuple[str, float, str | None]]:
    """(arm name for ArmConfig, dose, generator) for a study arm; synthetic_<gen> -> ("synthetic", dose, gen)."""
    if arm.startswith("synthetic_"):
        return [("synthetic", d, arm.removeprefix("synthetic_")) for d in doses]
    return [(arm, d, None) for d in (doses if arm in ("gta", "oversample") else (1.0,))]


def _train_cells(spec: StudySpec, packs: dict[str, Cell], samples: list[Cell]) -> list[Cell]:
    cells = []
    c = spec.classify
    sample_of: dict[tuple, list[Cell]] = {}
    for s in samples:
        sample_of.setdefault((s.config["pipeline"], s.config["generator"]), []).append(s)
    for pipe, pack in packs.items():
        for model in c.models:
            for seed in spec.seeds:
                train = asdict(replace(c.train, model=model, seed=seed))
                if train["keep_weights"] == "best":  # the default leaves the keys of earlier studies as they were
                    del train["keep_weights"]
                for arm in c.arms:
                    for name, dose, gen in _arm_cells(arm, c.doses):
                        arm_cfg = {"name": name, "dose": dose, "target_class": c.target_class, "seed": seed}
                        for sample in (sample_of[(pipe, gen)] if gen else [None]):
                            cells.append(_train_cell(pipe, model, seed, arm, train, arm_cfg, pack, sample))
    return cells


def _train_cell(pipe: str, model: str, seed: int, arm: str, train: dict, arm_cfg: dict, pack: Cell,
                sample: Cell | None) -> Cell:
    """One classifier cell; synthetic arms name the generator instance (sample cell) they train on."""
    deps = {"pack": pack.key}
    arm_cfg = dict(arm_cfg)
    inst = ""
    if sample is not None:
        arm_cfg["generator"] = sample.config["generator"]
        deps["sample"] = sample.key
        if "instance" in sample.config:
            arm_cfg["generator_seed"] = sample.config["instance"]
            inst = f"-g{sample.config['instance']}"
    dosed = arm_cfg["name"] in ("gta", "oversample", "synthetic")
    label = f"{pipe}-{arm}" + (f"x{arm_cfg['dose']:g}" if dosed else "") + f"{inst}-{model}-s{seed}"
    return make_cell("train_clf", label, {"pipeline": pipe, "train": train, "arm": arm_cfg}, deps)


def _metric_cells(spec: StudySpec, trains: list[Cell]) -> list[Cell]:
    baseline = {(t.config["pipeline"], t.config["train"]["model"], t.config["train"]["seed"]): t
                for t in trains if t.config["arm"]["name"] == "real"}
    cells = []
    for t in trains:
        deps = {"train": t.key}
        base = baseline.get((t.config["pipeline"], t.config["train"]["model"], t.config["train"]["seed"]))
        if base is not None and base.key != t.key:
            deps["baseline"] = base.key
        cells.append(make_cell("clf_metrics", t.name, {"n_boot": spec.classify.n_boot, "seed": 0}, deps))
    return cells


def plan_study(spec: StudySpec) -> list[Cell]:
    """Every cell of the study, in stage order (dependencies before dependants)."""
    data = _data_cells(spec)
    packs = _pack_cells(spec, data[-1])
    gen = _generator_cells(spec, packs)
    trains = _train_cells(spec, packs, gen["sample"])
    gen_cells = gen["features"] + gen["train_gen"] + gen["sample"] + gen["gen_metrics"] + gen["feature_space"]
    return data + list(packs.values()) + gen_cells + trains + _metric_cells(spec, trains)
