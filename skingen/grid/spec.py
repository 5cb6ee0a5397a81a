"""The study spec: TOML -> typed dataclasses, validated with one-line errors naming the key."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..classify.train import TrainConfig
from ..config import from_dict, load_toml
from ..data.split import SplitConfig
from ..errors import UserError
from ..generators.ddpm import DDPMConfig
from ..generators.sd_lora.config import SDLoRAConfig
from ..generators.stylegan2.train import StyleGAN2Config
from ..metrics.gen_eval import GenMetricsConfig


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
    # architecture contrasts are "model - reference_model"; "" = resnet50 when listed, else the first model
    reference_model: str = ""

    def reference(self) -> str:
        """The model every architecture contrast is taken against."""
        if self.reference_model:
            return self.reference_model
        return "resnet50" if "resnet50" in self.models else self.models[0]


@dataclass(frozen=True)
class GenerateSpec:
    """Generators trained per pipeline on the target class's train images, their samples and metrics.

    Each sample cell writes ``n_synthetic`` images, and never fewer than the largest synthetic dose
    needs (round(max dose x real target-class train count), computed from the train shard).
    """

    generators: tuple[str, ...] = ()
    seed: int = 0
    # one trained generator instance per seed (per pipeline x generator); () = (seed,)
    seeds: tuple[int, ...] = ()

    def instance_seeds(self) -> tuple[int, ...]:
        """The seeds of the generator instances trained per pipeline x generator."""
        return self.seeds or (self.seed,)
    n_synthetic: int = 0
    sampler: str = "ddim"
    sampling_steps: int = 50
    sample_batch: int = 32
    ddpm: DDPMConfig = field(default_factory=DDPMConfig)
    stylegan2_ada: StyleGAN2Config = field(default_factory=StyleGAN2Config)
    sd_lora: SDLoRAConfig = field(default_factory=SDLoRAConfig)
    metrics: GenMetricsConfig = field(default_factory=GenMetricsConfig)
    tsne_perplexity: float = 30.0


@dataclass(frozen=True)
class ReportSpec:
    """How the closing report reads the study: the generator every generator contrast is taken against."""

    # generator contrasts are "synthetic_<g> - synthetic_<reference_generator>" for every other generator g;
    # "" = stylegan2_ada when listed in [generate] generators, else the first listed (skingen.report.effects)
    reference_generator: str = ""


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
    generate: GenerateSpec = field(default_factory=GenerateSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    compare_to_original: bool = False
    path: str = ""
    classes: str = "paper5"  # class set: paper5|ham7|isic2019|FILE.toml (relative: to the cwd, else the study's folder)


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: [{key}] must be a table")
    return value


def _generate_spec(raw: dict, where: str) -> GenerateSpec:
    gen = dict(_table(raw, "generate", where))
    ddpm = from_dict(DDPMConfig, gen.pop("ddpm", {}), f"{where} [generate.ddpm]")
    sg2 = from_dict(StyleGAN2Config, gen.pop("stylegan2_ada", {}), f"{where} [generate.stylegan2_ada]")
    sd = from_dict(SDLoRAConfig, gen.pop("sd_lora", {}), f"{where} [generate.sd_lora]")
    metrics = from_dict(GenMetricsConfig, gen.pop("metrics", {}), f"{where} [generate.metrics]")
    return from_dict(GenerateSpec, {**gen, "ddpm": ddpm, "stylegan2_ada": sg2, "sd_lora": sd, "metrics": metrics},
                     f"{where} [generate]")


def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study TOML."""
    path = Path(path)
    raw = load_toml(path)
    where = str(path)
    unknown = sorted(set(raw) - {"study", "data", "split", "classify", "generate", "report", "executor"})
    if unknown:
        raise UserError(f"{where}: unknown table(s) {', '.join(unknown)}; allowed: study, data, split, classify, "
                        "generate, report, executor")
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
        "classify": classify_spec, "generate": _generate_spec(raw, where),
        "report": from_dict(ReportSpec, _table(raw, "report", where), f"{where} [report]"),
        "executor": from_dict(ExecutorSpec, _table(raw, "executor", where), f"{where} [executor]"),
    }, f"{where} [study]")
    if spec.classes.endswith(".toml") and not Path(spec.classes).is_absolute():
        near = path.parent / spec.classes
        spec = replace(spec, classes=str((Path(spec.classes) if Path(spec.classes).is_file() or not near.is_file()
                                          else near).resolve()))
    from .validate import validate_study  # imports this module's dataclasses

    validate_study(spec, where)
    return spec
