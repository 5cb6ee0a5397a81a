"""The generator registry: each generator's config class and its train, sample and summary entry points.

The study planner, the grid stages and ``skingen gen`` look generators up here by name, so adding a
generator is one entry here plus its ``[generate.<name>]`` table in the study spec. Entry points import
their generator's modules when called, so looking a name up costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError


@dataclass(frozen=True)
class SampleRequest:
    """What a sample cell or ``skingen gen sample`` asks of a trained generator cell."""

    cell: Path
    out: Path
    n: int
    label: str
    image_size: int
    seed: int = 0
    batch: int = 32
    sampler: str = "ddim"  # ddpm: ddim | ddpm
    steps: int = 50  # ddpm: sampling steps
    conditional: bool = False  # ddpm: class-conditional UNet
    psi: float = 0.8  # stylegan2_ada: truncation
    generator_cell: str = ""
    extra_attrs: dict | None = None
    options: dict | None = None  # the sample cell's generator-specific keys (sd_lora: sampler, steps, guidance)


@dataclass(frozen=True)
class Generator:
    """One generator's entry points."""

    name: str
    config_class: Callable[[], type]
    train: Callable[[Path, Path, Any], dict]
    sample: Callable[[SampleRequest], Path]
    summary: Callable[[int, str | None, bool], dict]
    validate: Callable[[Any], None]
    cli_keys: tuple[str, ...]  # config fields ``skingen gen train`` takes as options
    trained: Callable[[dict, Path], str]  # one line on what a finished training run left where
    sample_config: Callable[[Any], dict]  # extra sample-cell keys from the study's [generate] table
    # the config fields a study sets per cell from (image size, target class, instance seed)
    study_fields: Callable[[int, str, int], dict] = lambda size, target, seed: {
        "resolution": size, "classes": (target,), "seed": seed}
    pretrained: Callable[[Any], str] = lambda cfg: cfg.init_from or "none"  # the starting weights, for the report
    sample_only: tuple[str, ...] = ()  # config fields only sampling reads: left out of the train cell's key


def _ddpm_config() -> type:
    from .ddpm import DDPMConfig

    return DDPMConfig


def _ddpm_train(train_shard: Path, out: Path, cfg: Any) -> dict:
    from .ddpm import train_ddpm

    return train_ddpm(train_shard, out, cfg)


def _ddpm_sample(r: SampleRequest) -> Path:
    from .ddpm_sample import sample_to_shard

    return sample_to_shard(r.cell, r.out, r.n, r.label, r.image_size, r.sampler, r.steps, r.seed, r.batch,
                           r.conditional, r.generator_cell, r.extra_attrs)


def _ddpm_summary(resolution: int, preset: str | None, conditional: bool) -> dict:
    from .ddpm_model import parameter_counts

    return parameter_counts(resolution, 5 if conditional else None)


def _sg2_config() -> type:
    from .stylegan2.train import StyleGAN2Config

    return StyleGAN2Config


def _sg2_train(train_shard: Path, out: Path, cfg: Any) -> dict:
    from .stylegan2.train import train_stylegan2

    return train_stylegan2(train_shard, out, cfg)


def _sg2_sample(r: SampleRequest) -> Path:
    from .stylegan2.sample import sample_to_shard

    return sample_to_shard(r.cell, r.out, r.n, r.label, r.image_size, r.psi, r.seed, r.batch, r.generator_cell,
                           r.extra_attrs)


def _sg2_summary(resolution: int, preset: str | None, conditional: bool) -> dict:
    from .stylegan2.summary import parameter_summary

    return parameter_summary(resolution, preset or "auto", conditional)


def _sg2_validate(cfg: Any) -> None:
    from .stylegan2.train import validate

    validate(cfg)


def _sd_config() -> type:
    from .sd_lora.config import SDLoRAConfig

    return SDLoRAConfig


def _sd_train(train_shard: Path, out: Path, cfg: Any) -> dict:
    from .sd_lora.train import train_sd_lora

    return train_sd_lora(train_shard, out, cfg)


def _sd_sample(r: SampleRequest) -> Path:
    from .sd_lora.sample import sample_to_shard

    return sample_to_shard(r.cell, r.out, r.n, r.label, r.image_size, r.seed, r.batch, r.options, r.generator_cell,
                           r.extra_attrs)


def _sd_summary(resolution: int, preset: str | None, conditional: bool) -> dict:
    from .sd_lora.summary import parameter_summary

    return parameter_summary(resolution)


def _sd_validate(cfg: Any) -> None:
    from .sd_lora.config import validate

    validate(cfg)


def _sd_sample_config(gen_spec: Any) -> dict:
    c = gen_spec.sd_lora
    return {"sd_sampler": c.sampler, "sd_steps": c.sampling_steps, "guidance_scale": c.guidance_scale,
            "negative_prompt": c.negative_prompt}


def _sd_pretrained(cfg: Any) -> str:
    from .sd_lora.train import pretrained_name

    return pretrained_name(cfg.base)


GENERATORS: dict[str, Generator] = {
    "ddpm": Generator(
        "ddpm", _ddpm_config, _ddpm_train, _ddpm_sample, _ddpm_summary, lambda cfg: None,
        ("max_steps", "seed", "resolution"),
        lambda s, out: f"ddpm: {s['steps']} steps on {s['train_images']} train images; EMA snapshot in {out}/pipeline",
        lambda gen_spec: {}),
    "stylegan2_ada": Generator(
        "stylegan2_ada", _sg2_config, _sg2_train, _sg2_sample, _sg2_summary, _sg2_validate,
        ("kimg", "seed", "resolution", "preset"),
        lambda s, out: (f"stylegan2_ada: {s['kimg']:g} kimg ({s['steps']} steps) on {s['train_images']} train "
                        f"images, ADA p {s['ada_p']:.3f}; G_ema snapshot in {out}/snapshot"),
        lambda gen_spec: {"psi": gen_spec.stylegan2_ada.truncation_psi}),
    "sd_lora": Generator(
        "sd_lora", _sd_config, _sd_train, _sd_sample, _sd_summary, _sd_validate,
        ("max_steps", "seed", "resolution", "base", "rank"),
        lambda s, out: (f"sd_lora: {s['steps']} steps on {s['train_images']} train images, LoRA on "
                        f"{s['pretrained_from']}; snapshot in {out}/snapshot"),
        _sd_sample_config,
        lambda size, target, seed: {"target_class": target, "seed": seed},
        _sd_pretrained, ("sampler", "sampling_steps", "guidance_scale", "negative_prompt")),
}


def get_generator(name: str) -> Generator:
    """The registry entry of ``name``, or a one-line error listing the generators there are."""
    if name not in GENERATORS:
        raise UserError(f"generator {name!r} unknown; implemented: {', '.join(GENERATORS)}")
    return GENERATORS[name]
