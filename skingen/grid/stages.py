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
from ..errors import UserError
from ..metrics.predictions import evaluate_predictions
from .plan import Cell


def run_phantom(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Generate the phantom dataset into ``out/data``."""
    c = cell.config
    make_phantom(out / "data", c["n"], size=c["size"], seed=c["seed"], workers=2, classes=c.get("classes"))
    return {"images": c["n"]}


def run_ingest(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Ingest the sources (or the phantom) into ``out/manifest.csv`` (+ quarantine.csv)."""
    roots = [inputs["phantom"] / "data"] if "phantom" in inputs else cell.config["sources"]
    _, report, records = ingest(roots, out / "manifest.csv", source=cell.config["source"],
                                modality=cell.config["milk10k_modality"], workers=2,
                                classes=cell.config.get("classes"))
    return {"images": len(records), "quarantined": len(report.quarantine)}


def run_split(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Lesion-grouped split into ``out/split.csv``; refuses to finish with any lesion overlap."""
    cfg = {k: v for k, v in cell.config.items() if k != "classes"}
    _, rows = make_split(inputs["ingest"] / "manifest.csv", out / "split.csv", from_dict(SplitConfig, cfg, "split"),
                         classes=cell.config.get("classes"))
    overlap = lesion_overlap(rows, key="group_id")
    if overlap:
        raise RuntimeError(f"{len(overlap)} lesion groups in more than one split")
    return {"images": len(rows), "lesion_overlap": 0}


def run_pack(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Pack the split through the cell's pipeline into ``out/{train,val,test}.h5``."""
    c = cell.config
    shards = pack(inputs["split"] / "split.csv", out, c["image_size"], pipeline=c["pipeline"], workers=1,
                  classes=c.get("classes"))
    return {"shards": {k: str(v) for k, v in shards.items()}}


def run_features(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """One cached feature pass over the pipeline's real train and test images of the target class."""
    from ..metrics.extractors import load_extractor
    from ..metrics.gen_eval import real_features

    c = cell.config
    train, test = real_features(inputs["pack"], c["target_class"], load_extractor(c["extractor"]), out, c["batch_size"])
    return {"train": len(train), "test": len(test), "extractor": c["extractor"]}


def run_train_gen(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Train one generator on the train shard's target-class images (resumes after preemption)."""
    from ..generators.registry import get_generator

    gen = get_generator(cell.config["generator"])
    cfg = from_dict(gen.config_class(), cell.config["config"], gen.name)
    summary = gen.train(inputs["pack"] / "train.h5", out, cfg)
    return {"steps": summary["steps"], "train_images": summary["train_images"]}


def run_sample(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Sample the synthetic shard ``out/synthetic.h5``: n images, and at least what the largest dose needs."""
    from ..data.classes import shard_classes
    from ..data.shards import ShardReader
    from ..generators.registry import SampleRequest, get_generator

    c = cell.config
    train = ShardReader(inputs["pack"] / "train.h5")
    names = shard_classes(train)
    if c["target_class"] not in names:
        raise UserError(f"target_class {c['target_class']} has no images in {train.path} (classes {', '.join(names)}); "
                        "choose one of them")
    needed = round(c["max_dose"] * int((train.labels == names.index(c["target_class"])).sum()))
    n = max(1, c["n"], needed)
    get_generator(c["generator"]).sample(SampleRequest(
        inputs["train_gen"], out / "synthetic.h5", n, c["target_class"], c["image_size"], c["seed"], c["batch"],
        sampler=c["sampler"], steps=c["steps"], psi=c.get("psi", 0.8), generator_cell=inputs["train_gen"].name,
        extra_attrs={"trained_on_pipeline": c["pipeline"], "class_names": list(names)}, options=dict(c)))
    return {"images": n}


def run_gen_metrics(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """FID/KID/IS/PR/memorisation of the cell's synthetic shard against its pipeline's reals."""
    from ..metrics.gen_eval import GenMetricsConfig, evaluate_synthetic

    cfg = from_dict(GenMetricsConfig, cell.config["metrics"], "metrics")
    r = evaluate_synthetic(inputs["sample"] / "synthetic.h5", inputs["pack"], out, cfg, features_dir=inputs["features"])
    return {"fid": r["fid"], "fid_floor": r["fid_floor"], "memorised_fraction": r["memorised_fraction"]}


def run_feature_space(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """t-SNE of the pipeline's real train features and each generator's, from the gen_metrics caches."""
    from ..metrics.feature_space import tsne_figure
    from ..metrics.features import load_cached_features

    c = cell.config
    gens = sorted(role.split(":", 1)[1] for role in inputs if role.startswith("gen_metrics:"))
    groups = {"real": load_cached_features(inputs["features"] / f"train_{c['target_class']}.h5", c["extractor"])}
    for gen in gens:
        groups[gen] = load_cached_features(inputs[f"gen_metrics:{gen}"] / "features" / "synthetic.h5", c["extractor"])
    tsne_figure(groups, out, f"{c['target_class']}, {c['pipeline']} pipeline [{c['extractor']}]", "real",
                c["perplexity"], c["seed"])
    return {"sources": {k: len(v) for k, v in groups.items()}}


def run_train_clf(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """Train one classifier cell (resumes from its saved state when re-run after preemption)."""
    train = from_dict(TrainConfig, cell.config["train"], "train")
    arm_cfg = dict(cell.config["arm"])
    if "sample" in inputs:
        arm_cfg["synthetic_shard"] = str(inputs["sample"] / "synthetic.h5")
    arm = from_dict(ArmConfig, arm_cfg, "arm")
    summary = train_classifier(inputs["pack"], out, train, arm)
    return {"best_epoch": summary["best_epoch"], "best_val_macro_f1": summary["best_val_macro_f1"]}


def run_clf_metrics(cell: Cell, out: Path, inputs: dict[str, Path]) -> dict:
    """metrics.json with lesion-bootstrap CIs, and paired deltas against the real arm's cell."""
    import json

    baseline = inputs["baseline"] / "predictions.csv" if "baseline" in inputs else None
    summary = json.loads((inputs["train"] / "train_summary.json").read_text())
    res = evaluate_predictions(inputs["train"] / "predictions.csv", baseline, n_boot=cell.config["n_boot"],
                               seed=cell.config["seed"], target_class=summary["arm"].get("target_class", "MEL"))
    write_json(out / "metrics.json", res)
    return {"macro_f1": res["macro_f1"], "mel_f1": res["mel_f1"]}


STAGE_FUNCTIONS: dict[str, Callable[[Cell, Path, dict[str, Path]], dict]] = {
    "phantom": run_phantom, "ingest": run_ingest, "split": run_split, "pack": run_pack,
    "features": run_features, "train_gen": run_train_gen, "sample": run_sample, "gen_metrics": run_gen_metrics,
    "feature_space": run_feature_space, "train_clf": run_train_clf, "clf_metrics": run_clf_metrics,
}
