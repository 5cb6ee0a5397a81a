"""The study spec: TOML -> typed dataclasses, validated with one-line errors naming the key."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..classify.arms import ARMS
from ..classify.models import MODELS
from ..classify.train import TrainConfig
from ..config import from_dict, load_toml
from ..data.split import SplitConfig
from ..errors import UserError
from ..preprocess.registry import PRESETS


@dataclass(frozen=True)
class PhantomSpec:
    """Generate the built-in phantom dataset as the study's data."""

    n: int = 600
    size: int = 96
    seed: int = 0


@dataclass(frozen=True)
class DataSpec:
    """Either real dataset roots (ingested) or a phantom."""

    sources: tuple[str, ...] = ()
    source: str = "auto"
    milk10k_modality: str = "dermoscopic"
    phantom: PhantomSpec | None = None


@dataclass(frozen=True)
class ClassifySpec:
    """The classifier factors and the training config shared by every classifier cell."""

    models: tuple[str, ...] = ("resnet18",)
    arms: tuple[str, ...] = ("real",)
    doses: tuple[float, ...] = (1.0,)
    target_class: str = "MEL"
    train: TrainConfig = field(default_factory=TrainConfig)
    n_boot: int = 1000


@dataclass(frozen=True)
class ExecutorSpec:
    """Where cells run: debug (in process), local (submitit, parallel), slurm; resources from a profile."""

    kind: str = "local"
    profile: str = "slurm/profiles/local.toml"
    max_parallel: int = 2


@dataclass(frozen=True)
class StudySpec:
    """A whole study."""

    name: str
    image_size: int
    seeds: tuple[int, ...]
    pipelines: tuple[str, ...]
    data: DataSpec
    split: SplitConfig
    classify: ClassifySpec
    executor: ExecutorSpec
    compare_to_original: bool = False
    path: str = ""


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: [{key}] must be a table")
    return value


def _check(spec: StudySpec, where: str) -> None:
    for p in spec.pipelines:
        if p not in PRESETS and not str(p).endswith(".toml"):
            raise UserError(f"{where}: study.pipelines: {p!r} is not a preset ({', '.join(PRESETS)}) or a .toml file")
    for m in spec.classify.models:
        if m not in MODELS:
            raise UserError(f"{where}: classify.models: {m!r} unknown; available: {', '.join(MODELS)}")
    for a in spec.classify.arms:
        if a not in ARMS or a.startswith("synthetic"):
            raise UserError(f"{where}: classify.arms: {a!r} unavailable; use real, gta, oversample, class_weighted "
                            "(synthetic arms arrive with the generator stages)")
    if not spec.data.sources and spec.data.phantom is None:
        raise UserError(f"{where}: [data] needs sources = [...] or a [data.phantom] table")
    if spec.executor.kind not in ("debug", "local", "slurm"):
        raise UserError(f"{where}: executor.kind {spec.executor.kind!r} unknown; use debug, local or slurm")


def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study TOML."""
    path = Path(path)
    raw = load_toml(path)
    where = str(path)
    unknown = sorted(set(raw) - {"study", "data", "split", "classify", "executor"})
    if unknown:
        raise UserError(f"{where}: unknown table(s) {', '.join(unknown)}; allowed: study, data, split, classify, executor")
    study = dict(_table(raw, "study", where))
    data = dict(_table(raw, "data", where))
    phantom = data.pop("phantom", None)
    data_spec = from_dict(DataSpec, data, f"{where} [data]")
    if phantom is not None:
        data_spec = DataSpec(**{**data_spec.__dict__, "phantom": from_dict(PhantomSpec, phantom, f"{where} [data.phantom]")})
    classify = dict(_table(raw, "classify", where))
    train = from_dict(TrainConfig, classify.pop("train", {}), f"{where} [classify.train]")
    classify_spec = from_dict(ClassifySpec, {**classify, "train": train}, f"{where} [classify]")
    for key in ("name", "image_size"):
        if key not in study:
            raise UserError(f"{where}: [study] needs {key}")
    spec = from_dict(StudySpec, {
        "seeds": (0,), "pipelines": ("basic",), **study, "path": str(path.resolve()), "data": data_spec,
        # studies de-duplicate near-identical images by default (the split CLI does so only when asked)
        "split": from_dict(SplitConfig, {"dedup": True, **_table(raw, "split", where)}, f"{where} [split]"),
        "classify": classify_spec,
        "executor": from_dict(ExecutorSpec, _table(raw, "executor", where), f"{where} [executor]"),
    }, f"{where} [study]")
    _check(spec, where)
    return spec
