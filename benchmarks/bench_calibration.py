"""Calibration of the report's inference on simulated studies (issues 15 and 24; PROTOCOL rules 7 and 9).

Simulates whole studies' predictions without training (skingen/report/simulate.py) and runs the report's
joint bootstrap, effects and deltas on each. Scenarios (each rate with its 95 % Wilson interval):
  * null: independent seed effects, 3 seeds, 3 generator instances, 500 test images;
  * shared: a class bias per (pipeline, seed) shared by every arm and model of the pipeline;
  * single: one generator instance per (pipeline, generator) with a large instance-to-instance variance;
  * small: 55 test images (a handful of melanoma lesions);
  * three: three generators (stylegan2_ada, ddpm, sd_lora; 3 instances each), null: each generator contrast vs the
    reference generator and its comparison with preprocessing at the Bonferroni level (97.5 %), and the
    family-wise rate: the share of studies in which any of them excludes 0 (and in which a verdict says 'Resolved');
then the width of each interval over the true spread of its estimate (null), power for +0.03 and +0.06
macro-F1 preprocessing effects, per-cell and per-unit coverage of the population macro-F1 and melanoma F1,
a planted large arm effect through Holm at paper size, and the paper-sized report's time.

Usage: python benchmarks/bench_calibration.py [--studies 400] [--boot 500] [--power 100] [--coverage 200]
       python benchmarks/bench_calibration.py --only three --skip-paper --power 0 --coverage 0 --holm 0
       (0 skips that part)
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from skingen.metrics.diagnostic import all_metrics
from skingen.report.effects import delta_records, factor_effects
from skingen.report.joint import run_joint_bootstrap
from skingen.report.simulate import THREE_GENERATORS, SimulatedStudy, simulate
from skingen.report.verdict import verdicts

NULL = SimulatedStudy(n_images=500, arms=("real", "gta", "synthetic_stylegan2_ada", "synthetic_ddpm"),
                      models=("resnet50", "resnet18", "vit_b16"), seeds=3, instances=3)
SCENARIOS = {"null": NULL, "shared": replace(NULL, shared_seed_bias=0.3),
             "single": replace(NULL, instances=1, instance_shift=0.6), "small": replace(NULL, n_images=55),
             "three": replace(NULL, arms=THREE_GENERATORS)}
FAMILY = ("generator", "generator_vs_preprocessing")  # the factors read at the family's simultaneous level
PAPER = replace(NULL, n_images=2200, arms=("real", "gta", "oversample", "class_weighted", "synthetic_stylegan2_ada",
                                           "synthetic_ddpm"),
                models=("resnet50", "resnet18", "vit_b16", "efficientnet_b0", "vgg16"))


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of a binomial rate."""
    z, p = 1.959964, hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _statistics(jb, metric: str = "macro_f1"):
    """(name, status, estimate, lo, hi) of every factor effect and of the basic/resnet50 deltas."""
    for e in factor_effects(jb, "resnet50"):
        if e["metric"] == metric and e["ci"][0] is not None:
            level = f" ({100 * e['level']:.4g} %, {e['simultaneous']})" if e.get("simultaneous") else ""
            yield f"{e['factor']}: {e['contrast']}{level}", e["status"], e["effect"], *e["ci"]
    for r in delta_records(jb):
        if r["pipeline"] == "basic" and r["model"] == "resnet50" and r[metric]["ci"][0] is not None:
            yield f"delta: {r['arm']} - real", "ok", r[metric]["delta"], *r[metric]["ci"]


def _family_hits(effects: list[dict], metrics: tuple[str, ...]) -> bool:
    """Whether any generator contrast or comparison of ``metrics`` has an interval excluding 0."""
    return any(e["factor"] in FAMILY and e["metric"] in metrics and e["ci"][0] is not None
               and not e["ci"][0] <= 0 <= e["ci"][1] for e in effects)


def run_scenario(sim: SimulatedStudy, n: int, n_boot: int, offset: int = 0) -> dict:
    """name -> dict(hits, estimates, widths, statuses), plus the verdicts' 'Resolved' count, undefined shares and
    the family-wise hits (any generator contrast or comparison excluding 0; on macro-F1, on either headline metric,
    and a verdict saying 'Resolved')."""
    out: dict = {"_resolved": 0, "_studies": n, "_no_mel": [], "_family": [], "_family_headline": [],
                 "_resolved_any": []}
    for k in tqdm(range(n), desc="simulated studies", unit="study", leave=False):
        jb = run_joint_bootstrap(simulate(sim, offset + k), n_boot, k, progress=False)
        for name, status, est, lo, hi in _statistics(jb):
            rec = out.setdefault(name, {"hits": [], "est": [], "width": [], "status": set()})
            rec["hits"].append(not lo <= 0 <= hi)
            rec["est"].append(est)
            rec["width"].append(hi - lo)
            rec["status"].add(status)
        effects = factor_effects(jb, "resnet50")
        said = [t for t in verdicts(effects, jb) if "Resolved" in t]
        out["_resolved"] += len(said)
        out["_resolved_any"].append(bool(said))
        out["_family"].append(_family_hits(effects, ("macro_f1",)))
        out["_family_headline"].append(_family_hits(effects, ("macro_f1", "mel_f1")))
        out["_no_mel"].append(float(np.isnan(jb.values["mel_sensitivity"]).mean()))
    return out


def report_scenario(label: str, res: dict) -> None:
    """Print each statistic's rejection rate (Wilson interval) and width over true spread."""
    n = res["_studies"]
    print(f"\n{label}: {n} null studies; fraction of 95 % intervals excluding 0 (target <= 0.075) | width / "
          "(2 x 1.96 x sd of the estimate over studies)")
    for name, rec in sorted((k, v) for k, v in res.items() if not k.startswith("_")):
        hits = int(np.sum(rec["hits"]))
        lo, hi = wilson(hits, len(rec["hits"]))
        ratio = np.mean(rec["width"]) / (2 * 1.96 * np.std(rec["est"]))
        print(f"  {name:62s} {'/'.join(sorted(rec['status'])):16s} {hits / len(rec['hits']):.3f} "
              f"[{lo:.3f}, {hi:.3f}]  width/spread {ratio:.2f}")
    print(f"  verdicts saying 'Resolved': {res['_resolved']} of {2 * n}; replicates with no melanoma-sensitivity "
          f"(no melanoma drawn): {np.mean(res['_no_mel']):.4f}")
    for key, words in (("_family", "any generator contrast or comparison excluding 0, macro-F1"),
                       ("_family_headline", "the same on macro-F1 or melanoma F1"),
                       ("_resolved_any", "a verdict (macro-F1 or melanoma F1) saying 'Resolved'")):
        hits = int(np.sum(res[key]))
        lo, hi = wilson(hits, n)
        print(f"  family-wise: {words}: {hits / n:.3f} [{lo:.3f}, {hi:.3f}] (target <= 0.075)")


def population(sim: SimulatedStudy, metric: str, n_images: int = 60000, draws: int = 12, studies: int = 8) -> float:
    """A real-arm cell's metric on an effectively infinite test set, averaged over seed draws and over ``studies``
    independent big test sets (one 60,000-image set still moves macro-F1 by ~0.002, a seed draw by more)."""
    big = replace(sim, n_images=n_images, arms=("real",), models=("resnet50",), pipelines=("basic",), seeds=draws)
    values = []
    for k in range(studies):
        study = simulate(big, 90 + k)
        values += [all_metrics(study.y, c.prob)[metric] for c in study.cells]
    return float(np.mean(values))


def planted_skill(sim: SimulatedStudy, target: float) -> float:
    """The skill increment that raises population macro-F1 by ``target`` (linear interpolation)."""
    gain = population(replace(sim, skill=sim.skill + 0.4), "macro_f1") - population(sim, "macro_f1")
    return 0.4 * target / gain


def coverage(sim: SimulatedStudy, n: int, n_boot: int) -> dict:
    """metric -> fraction of (study, real/gta unit) intervals containing the population value."""
    truth = {m: population(sim, m) for m in ("macro_f1", "mel_f1")}
    inside: dict = {m: [] for m in truth}
    for k in tqdm(range(n), desc="coverage studies", unit="study", leave=False):
        jb = run_joint_bootstrap(simulate(sim, 5000 + k), n_boot, k, progress=False)
        for m in truth:
            for unit, (_, lo, hi, _) in jb.summary(m).items():
                if unit[1] in ("real", "gta"):
                    inside[m].append(lo <= truth[m] <= hi)
    return {m: float(np.mean(v)) for m, v in inside.items()}


def holm_power(n: int) -> None:
    """Paper-sized tables (150 p-values) with a large planted synthetic-DDPM effect: share surviving Holm."""
    sim = replace(PAPER, n_images=500, instances=2, planted={"arm:synthetic_ddpm": 1.0})
    passed = []
    for k in tqdm(range(n), desc="Holm studies", unit="study", leave=False):
        rows = delta_records(run_joint_bootstrap(simulate(sim, 20000 + k), 2000, k, progress=False))
        passed += [r["macro_f1"]["p_holm"] < 0.05 for r in rows if r["arm"].startswith("synthetic_ddpm")]
    print(f"\nplanted large arm effect (+1.0 skill on synthetic_ddpm), {len(passed)} rows in {n} paper-sized tables: "
          f"{np.mean(passed):.3f} reach Holm-adjusted p < 0.05")


def paper_timing(n_boot: int = 2000) -> None:
    """The paper-sized report's inference time."""
    study = simulate(PAPER, 0)
    start = time.perf_counter()
    jb = run_joint_bootstrap(study, n_boot, 0)
    effects, deltas = factor_effects(jb, "resnet50"), delta_records(jb)
    print(f"paper-sized report inference: {len(study.cells)} cells, {len(study.y)} test images, {n_boot} replicates, "
          f"{len(effects)} effects, {len(deltas)} delta rows: {time.perf_counter() - start:.1f} s (target <= 120 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--boot", type=int, default=500)
    parser.add_argument("--power", type=int, default=100)
    parser.add_argument("--coverage", type=int, default=200)
    parser.add_argument("--holm", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    if not args.skip_paper:
        paper_timing()
    for name in args.only:
        report_scenario(name, run_scenario(SCENARIOS[name], args.studies, args.boot))
    for target in (0.03, 0.06) if args.power else ():
        delta = planted_skill(NULL, target)
        res = run_scenario(replace(NULL, planted={"pipeline:advanced": delta}), args.power, args.boot, 10_000)
        hits = res["preprocessing: advanced - basic"]["hits"]
        lo, hi = wilson(int(np.sum(hits)), len(hits))
        print(f"\nplanted +{target} macro-F1 preprocessing effect (skill +{delta:.3f}): power {np.mean(hits):.2f} "
              f"[{lo:.2f}, {hi:.2f}] over {args.power} studies")
    for label, sim in (("3 seeds (unit = mean over seeds)", NULL),
                       ("1 seed, no seed bias (unit = one cell)", replace(NULL, seeds=1, seed_bias=0.0))
                       ) if args.coverage else ():
        cov = coverage(sim, args.coverage, args.boot)
        print(f"\ncoverage of the population value, real/gta units, {label}: macro-F1 {cov['macro_f1']:.3f}, "
              f"melanoma F1 {cov['mel_f1']:.3f} (target >= 0.94)")
    if args.holm:
        holm_power(args.holm)


if __name__ == "__main__":
    main()
