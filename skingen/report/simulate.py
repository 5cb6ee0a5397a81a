"""Simulated studies for calibrating the report's inference without training anything.

A HAM10000-like test set (about 1.35 images per lesion, the real class mix) is scored by every cell
of a study grid. Each cell's logits are: a per-image appearance shared by all cells (lesions share
it) + the class signal + a per-pipeline image-level perturbation shared by that pipeline's cells + a
per-generator-instance melanoma shift shared by the cells trained on that instance + per-cell seed
noise (a class bias and image noise) + optionally a class bias per (pipeline, classifier seed) shared by
every arm and model of that pipeline (a seed fixes initial weights and data order everywhere). Under
the null no factor changes the population metrics; planted effects add skill to one level of a factor.
The test set is class-stratified at the lesion level, as the study's split is. Every ``synthetic_<g>`` arm is a
generator g with its own instances (``THREE_GENERATORS``: the arms of a study with three generators).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.classes import CLASS_INDEX
from .joint import CellScores, StudyScores

CLASS_MIX = (0.526, 0.214, 0.116, 0.110, 0.034)  # NV BCC BKL MEL SCC in HAM10000 + MILK10k
IMAGES_PER_LESION = ((1, 0.76), (2, 0.17), (3, 0.05), (4, 0.02))  # mean ~1.33
THREE_GENERATORS = ("real", "gta", "synthetic_stylegan2_ada", "synthetic_ddpm", "synthetic_sd_lora")


@dataclass(frozen=True)
class SimulatedStudy:
    """The grid and the noise levels of a simulated study; ``planted`` adds skill: {"pipeline:advanced": 0.3} or
    {"arm:synthetic_sd_lora": 1.0} (a generator's arm); ``instances``: trained instances of every generator."""

    n_images: int = 600
    pipelines: tuple[str, ...] = ("basic", "advanced")
    arms: tuple[str, ...] = ("real", "gta", "synthetic_stylegan2_ada", "synthetic_ddpm")
    models: tuple[str, ...] = ("resnet50", "resnet18")
    seeds: int = 3
    instances: int = 3
    skill: float = 1.6
    pipeline_noise: float = 0.6
    instance_shift: float = 0.25
    seed_bias: float = 0.12
    seed_noise: float = 0.5
    shared_seed_bias: float = 0.0
    planted: dict = field(default_factory=dict)


def test_set(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels, lesion index) of about ``n`` images, lesions of 1-4 images, the HAM-like class mix fixed
    over lesions (a class-stratified split)."""
    sizes, probs = zip(*IMAGES_PER_LESION)
    per = rng.choice(sizes, size=int(n / np.dot(sizes, probs)) + 1, p=probs)
    lesion = np.repeat(np.arange(len(per)), per)[:n]
    n_lesions = int(lesion.max()) + 1
    exact = np.array(CLASS_MIX) * n_lesions / np.sum(CLASS_MIX)
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[:n_lesions - counts.sum()]] += 1  # largest remainders: the mix, not NV, gains
    label = rng.permutation(np.repeat(np.arange(len(CLASS_MIX)), counts))[lesion]
    return label, lesion


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _grid(sim: SimulatedStudy):
    for pipe in sim.pipelines:
        for arm in sim.arms:
            gen = arm.removeprefix("synthetic_") if arm.startswith("synthetic_") else None
            for inst in range(sim.instances if gen else 1):
                for model in sim.models:
                    for seed in range(sim.seeds):
                        yield pipe, arm, gen, (inst if gen else None), model, seed


def simulate(sim: SimulatedStudy, seed: int) -> StudyScores:
    """One simulated study's predictions on one test set (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    y, lesion = test_set(sim.n_images, rng)
    n, c = len(y), len(CLASS_MIX)
    mel = CLASS_INDEX["MEL"]
    appearance = rng.normal(size=(lesion.max() + 1, c))[lesion] + 0.3 * rng.normal(size=(n, c))
    onehot = np.eye(c)[y]
    per_pipe = {p: sim.pipeline_noise * rng.normal(size=(n, c)) for p in sim.pipelines}
    shift = {(p, a, i): sim.instance_shift * rng.normal() for p in sim.pipelines for a in sim.arms
             for i in range(sim.instances)}
    shared = {(p, s): sim.shared_seed_bias * rng.normal(size=c) for p in sim.pipelines for s in range(sim.seeds)}
    cells = []
    for pipe, arm, gen, inst, model, s in _grid(sim):
        skill = sim.skill + sum(v for k, v in sim.planted.items() if k in (f"pipeline:{pipe}", f"arm:{arm}",
                                                                           f"model:{model}"))
        logits = appearance + skill * onehot + per_pipe[pipe] + sim.seed_noise * rng.normal(size=(n, c))
        logits += sim.seed_bias * rng.normal(size=c) + shared[(pipe, s)]
        if gen is not None:
            logits[:, mel] += shift[(pipe, arm, inst)]
        cells.append(CellScores(pipe, arm, model, s, _softmax(logits), gen, inst))
    return StudyScores(y, lesion, cells, mel)
