"""Calibration of the report's inference on simulated studies (issue 15; PROTOCOL rules 7 and 9).

Simulates whole studies' predictions without training (skingen/report/simulate.py) and runs the
report's joint bootstrap and effects on each:
  * null studies: how often each factor's 95 % interval excludes 0 (target <= 7.5 %: preprocessing,
    generator, each architecture contrast, |generator| - |preprocessing|);
  * planted studies: power for a +0.03 macro-F1 preprocessing effect;
  * per-cell coverage of the population value (target >= 0.93);
  * the paper-sized report: 2 pipelines x 6 arms x 5 models x 3 seeds, 3 generator instances,
    2,200 test images, 2,000 replicates (target <= 120 s on 2 cores), against a per-replicate loop
    of the same metrics (the baseline, timed side by side on a few cells).

Usage: python benchmarks/bench_calibration.py [--studies 400] [--boot 500] [--power 100] [--skip-paper]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from skingen.metrics.diagnostic import all_metrics
from skingen.report.effects import delta_records, factor_effects
from skingen.report.joint import cluster_weights, run_joint_bootstrap
from skingen.report.simulate import SimulatedStudy, simulate

NULL = SimulatedStudy(n_images=500, arms=("real", "gta", "synthetic_stylegan2_ada", "synthetic_ddpm"),
                      models=("resnet50", "resnet18", "vit_b16"), seeds=3, instances=3)


def rejection_rates(sim: SimulatedStudy, n: int, n_boot: int, offset: int = 0) -> dict:
    """(factor, contrast, metric) -> fraction of studies whose interval excludes 0."""
    hits: dict = {}
    for k in tqdm(range(n), desc="simulated studies", unit="study"):
        jb = run_joint_bootstrap(simulate(sim, offset + k), n_boot, k, progress=False)
        for e in factor_effects(jb, "resnet50"):
            if e["metric"] in ("macro_f1", "mel_f1") and e["ci"][0] is not None:
                hits.setdefault((e["factor"], e["contrast"], e["metric"]), []).append(not e["ci"][0] <= 0 <= e["ci"][1])
    return {key: float(np.mean(v)) for key, v in hits.items()}


def population_macro_f1(sim: SimulatedStudy, n_images: int = 60000, draws: int = 12) -> float:
    """Macro-F1 of a real-arm cell on an effectively infinite test set, averaged over seed draws."""
    big = replace(sim, n_images=n_images, arms=("real",), models=("resnet50",), pipelines=("basic",), seeds=draws)
    study = simulate(big, 99)
    return float(np.mean([all_metrics(study.y, c.prob)["macro_f1"] for c in study.cells]))


def planted_skill(sim: SimulatedStudy, target: float = 0.03) -> float:
    """The skill increment that raises population macro-F1 by ``target`` (linear interpolation)."""
    base = population_macro_f1(sim)
    lo, hi = 0.0, 0.4
    gain_hi = population_macro_f1(replace(sim, skill=sim.skill + hi)) - base
    return hi * target / gain_hi


def coverage(sim: SimulatedStudy, n: int, n_boot: int) -> float:
    """Fraction of (study, real/gta unit) intervals of macro-F1 containing the population value."""
    truth = population_macro_f1(sim)
    inside = []
    for k in tqdm(range(n), desc="coverage studies", unit="study"):
        jb = run_joint_bootstrap(simulate(sim, 5000 + k), n_boot, k, progress=False)
        for unit, (_, lo, hi, _) in jb.summary("macro_f1").items():
            if unit[1] in ("real", "gta"):
                inside.append(lo <= truth <= hi)
    return float(np.mean(inside))


def paper_timing(n_boot: int = 2000) -> None:
    """The paper-sized report's inference, and a per-replicate loop baseline on the same data."""
    sim = SimulatedStudy(n_images=2200, arms=("real", "gta", "oversample", "class_weighted", "synthetic_stylegan2_ada",
                                              "synthetic_ddpm"),
                         models=("resnet50", "resnet18", "vit_b16", "efficientnet_b0", "vgg16"), seeds=3, instances=3)
    study = simulate(sim, 0)
    start = time.perf_counter()
    jb = run_joint_bootstrap(study, n_boot, 0)
    effects, deltas = factor_effects(jb, "resnet50"), delta_records(jb)
    seconds = time.perf_counter() - start
    w = cluster_weights(study.cluster, 20, np.random.default_rng(0))
    start = time.perf_counter()
    for cell in study.cells[:3]:
        for r in range(1, 21):
            idx = np.repeat(np.arange(len(study.y)), w[r].astype(int))
            all_metrics(study.y[idx], cell.prob[idx])
    loop = (time.perf_counter() - start) / 60 * len(study.cells) * n_boot
    print(f"paper-sized report inference: {len(study.cells)} cells, {len(study.y)} test images, {n_boot} replicates, "
          f"{len(effects)} effects, {len(deltas)} delta rows: {seconds:.1f} s (target <= 120 s); "
          f"per-replicate loop baseline (extrapolated from 60 cell-replicates): {loop:.0f} s; "
          f"speed-up {loop / seconds:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--boot", type=int, default=500)
    parser.add_argument("--power", type=int, default=100)
    parser.add_argument("--coverage", type=int, default=100)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    if not args.skip_paper:
        paper_timing()
    rates = rejection_rates(NULL, args.studies, args.boot)
    print(f"null studies: {args.studies}, {args.boot} replicates each; fraction of 95 % intervals excluding 0 "
          "(target <= 0.075):")
    for (factor, contrast, metric), rate in sorted(rates.items()):
        print(f"  {factor:27s} {contrast:45s} {metric:9s} {rate:.3f}")
    delta = planted_skill(NULL)
    planted = replace(NULL, planted={"pipeline:advanced": delta})
    power = rejection_rates(planted, args.power, args.boot, offset=10_000)
    print(f"planted +0.03 macro-F1 preprocessing effect (skill +{delta:.3f}): power "
          f"{power[('preprocessing', 'advanced - basic', 'macro_f1')]:.2f} over {args.power} studies")
    print(f"per-cell coverage of the population macro-F1 (real/gta units): {coverage(NULL, args.coverage, args.boot):.3f} "
          "(target >= 0.93)")


if __name__ == "__main__":
    main()
