"""Coverage of the report's matched-N FID intervals on simulated studies (PROTOCOL rule 8).

What it measures: how often the 95 % intervals that the generative-metrics report prints contain the
quantity they estimate, for
  * FID of one generator at matched N (``fid_ci`` of ``gen_eval.matched_metrics``), for a near generator
    A and a far generator B, and the real floor (train vs test reals, ``fid_floor_ci``);
  * FID(A) - floor (``fid_minus_floor_ci``, same call);
  * FID(A) - FID(B), the report's generator-vs-generator row (``matched.fid_difference``, called with the
    arguments ``report/generative.py`` gives it: matched_repeats, n_boot, seed, n = min of the two N).
The intervals come from the library, called exactly as the report calls it; nothing is reimplemented.

Populations: Gaussians in d = 16 with a non-identity covariance S (eigenvalues geometric from 0.2 to 3,
random rotation). Real P = N(0, S); generator A = N(0.5 u, 1.15 S); generator B = N(1.0 u, 1.4 S), with u
a random unit vector. A simulated study draws fresh test reals (N_test), train reals (N_train) and the
fakes of A and B (N_fake each) and runs ``matched_metrics`` for A and for B (each also gives the floor) and
``fid_difference(test, A, B)``.

Estimand: FID at matched N, N = min(N_test, N_train, N_fake), i.e. E[FID(X_N, Y_N)] over independent
N-image samples X_N of P and Y_N of the compared population; for a difference, the difference of two such
expectations. That is what the estimate (the mean over subsample rounds of FID at N) targets when the sets
are random samples of their populations: every round's subsample is itself such a pair of samples. The truth
is computed by Monte Carlo over ``--truth-draws`` independent draws (FID by ``generative.fid``, common reference
draws for the differences), and its Monte Carlo standard error is printed beside the interval widths. The
population FID ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (scipy sqrtm) is printed for context: the gap
is the finite-N bias.

Coverage: the fraction of ``--studies`` R simulated studies whose interval contains the truth, with Monte Carlo
error sqrt(c (1 - c) / R); misses are split into interval below / above the truth. Diagnostics: the estimate's
mean minus the truth, its sd across studies, and the interval's implied sd (width / 3.92), which a calibrated
interval should roughly match, and the sd of a single FID at N from fresh independent samples (one truth draw;
for a difference, one paired draw sharing its reference sample). ``--diagnose K`` recomputes the library's
bootstrap replicates for the first K studies (same calls and seeds as inside matched_metrics/fid_difference)
and prints their sd and their mean minus the estimate (the bias the interval is shifted by).

Seeds: truth draws default_rng([seed, 0]); study i's data default_rng([seed, 1, i]); populations
default_rng([seed, 2]); the library's own seed is GenMetricsConfig().seed (0, the report's default) in
every study, as in the report.

Usage: python benchmarks/bench_fid_coverage.py [--studies 200] [--n-boot 100] [--repeats 10]
           [--n-test 200] [--n-train 1000] [--n-fake 1000] [--dim 16] [--truth-draws 4000] [--seed 20261130]
           [--diagnose K]
``--kid-subsets`` (default 10 instead of the report's 100) only thins KID, which matched_metrics computes
alongside; the FID rounds and bootstrap do not depend on it. The default run takes ~3 min on 2 busy cores;
the diagnosis table: ``--studies 80 --diagnose 80`` (~2 min).

Finding (2026-11-30, benchmarks/RESULTS.md): the estimates are unbiased for FID at matched N, but the
intervals are too wide (coverage 1.000 for FID(A), the floor and both differences, 0.990 for the far
generator B): the bootstrap replicate (i) draws each pool to N once, so it spreads like one round's FID,
not like the mean of the rounds over the whole pool, and (ii) being a naive bootstrap of a near-degenerate
quadratic statistic, spreads more than even one fresh-sample FID does.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg as sl
import torch

from skingen.metrics import generative as gm
from skingen.metrics import matched as mt
from skingen.metrics.gen_eval import GenMetricsConfig, matched_metrics


class Gaussian:
    def __init__(self, mean: np.ndarray, cov: np.ndarray):
        self.mean, self.cov = mean, cov
        self.chol = np.linalg.cholesky(cov)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.mean + rng.standard_normal((n, len(self.mean))) @ self.chol.T


def populations(dim: int, seed: int) -> dict[str, Gaussian]:
    rng = np.random.default_rng([seed, 2])
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    cov = (q * np.geomspace(0.2, 3.0, dim)) @ q.T
    cov = (cov + cov.T) / 2
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    return {"P": Gaussian(np.zeros(dim), cov), "A": Gaussian(0.5 * u, 1.15 * cov), "B": Gaussian(1.0 * u, 1.4 * cov)}


def population_fid(p: Gaussian, q: Gaussian) -> float:
    diff = p.mean - q.mean
    return float(diff @ diff + np.trace(p.cov + q.cov - 2 * sl.sqrtm(p.cov @ q.cov).real))


QUANTITIES = ("FID(A)", "FID(B)", "floor FID(P', P)", "FID(A) - floor", "FID(A) - FID(B)")


def truth_at_n(pops: dict[str, Gaussian], n: int, draws: int, seed: int) -> dict[str, tuple[float, float, float]]:
    """Per quantity: (Monte Carlo mean, its standard error, sd of one draw) of FID at N over independent draws."""
    rng = np.random.default_rng([seed, 0])
    vals = np.empty((draws, 3))
    for k in range(draws):
        ref = pops["P"].sample(rng, n)
        vals[k] = [gm.fid(ref, pops[name].sample(rng, n), "cpu") for name in ("A", "B", "P")]
    cols = {"FID(A)": vals[:, 0], "FID(B)": vals[:, 1], "floor FID(P', P)": vals[:, 2],
            "FID(A) - floor": vals[:, 0] - vals[:, 2], "FID(A) - FID(B)": vals[:, 0] - vals[:, 1]}
    return {q: (float(v.mean()), float(v.std(ddof=1) / np.sqrt(draws)), float(v.std(ddof=1))) for q, v in cols.items()}


def one_study(pops: dict[str, Gaussian], args, cfg: GenMetricsConfig, i: int) -> tuple[dict, dict | None]:
    """Per quantity: (estimate, interval) from the library for simulated study ``i``; for the first
    ``args.diagnose`` studies also (sd of the bootstrap replicates, their mean minus the estimate)."""
    rng = np.random.default_rng([args.seed, 1, i])
    test, train = pops["P"].sample(rng, args.n_test), pops["P"].sample(rng, args.n_train)
    fake_a, fake_b = pops["A"].sample(rng, args.n_fake), pops["B"].sample(rng, args.n_fake)
    m_a = matched_metrics(train, test, fake_a, cfg)  # as gen_eval.evaluate_synthetic
    m_b = matched_metrics(train, test, fake_b, cfg)
    d = mt.fid_difference(test, fake_a, fake_b, m_a["matched_repeats"], cfg.n_boot, cfg.seed,  # as report/generative.py
                          n=min(m_a["n_matched"], m_b["n_matched"]))
    out = {"FID(A)": (m_a["fid"], m_a["fid_ci"]), "FID(B)": (m_b["fid"], m_b["fid_ci"]),
           "floor FID(P', P)": (m_a["fid_floor"], m_a["fid_floor_ci"]),
           "FID(A) - floor": (m_a["fid_minus_floor"], m_a["fid_minus_floor_ci"]),
           "FID(A) - FID(B)": (d["estimate"], d["ci"])}
    if i >= args.diagnose:
        return out, None
    # Diagnosis only: the very replicates the intervals above were built from (same calls, same seeds).
    n = m_a["n_matched"]
    boot_a = mt.fid_bootstrap(test, {"": fake_a, "_floor": train}, n, cfg.n_boot, cfg.seed + 1)
    boot_b = mt.fid_bootstrap(test, {"": fake_b, "_floor": train}, n, cfg.n_boot, cfg.seed + 1)
    boot_d = mt.fid_bootstrap(test, {"a": fake_a, "b": fake_b}, d["n"], cfg.n_boot, cfg.seed + 1)
    boots = {"FID(A)": boot_a[""], "FID(B)": boot_b[""], "floor FID(P', P)": boot_a["_floor"],
             "FID(A) - floor": boot_a[""] - boot_a["_floor"], "FID(A) - FID(B)": boot_d["a"] - boot_d["b"]}
    return out, {q: (float(b.std(ddof=1)), float(b.mean() - out[q][0])) for q, b in boots.items()}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--kid-subsets", type=int, default=10)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-fake", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--truth-draws", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--diagnose", type=int, default=0, help="re-run the bootstrap of the first K studies and report "
                    "its replicates' sd and mean shift")
    return ap.parse_args()


def run_studies(pops, args, cfg) -> tuple[dict, dict, dict]:
    """Estimates, intervals and (for the first --diagnose studies) bootstrap diagnostics per quantity."""
    t0 = time.time()
    est, cis, diag = ({q: [] for q in QUANTITIES} for _ in range(3))
    for i in range(args.studies):
        out, boot = one_study(pops, args, cfg, i)
        for q, (e, ci) in out.items():
            est[q].append(e)
            cis[q].append(ci)
            if boot is not None:
                diag[q].append(boot[q])
        if (i + 1) % max(1, args.studies // 10) == 0:
            print(f"  {i + 1}/{args.studies} studies, {time.time() - t0:.0f} s", flush=True)
    print(f"studies: {time.time() - t0:.1f} s\n")
    return est, cis, diag


def print_coverage(truth: dict, pop: dict, est: dict, cis: dict) -> None:
    r = len(est[QUANTITIES[0]])
    print("| quantity | population FID | truth E[FID at N] (MC se) | coverage ± MC se | below / above | mean width "
          "| mean est − truth | sd of est | width / 3.92 | sd of one FID at N |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for q in QUANTITIES:
        t, se, sd1 = truth[q]
        e, ci = np.asarray(est[q]), np.asarray(cis[q])
        below, above = int((ci[:, 1] < t).sum()), int((ci[:, 0] > t).sum())
        c = 1 - (below + above) / r
        width = ci[:, 1] - ci[:, 0]
        print(f"| {q} | {pop[q]:.4f} | {t:.4f} ({se:.4f}) | {c:.3f} ± {np.sqrt(c * (1 - c) / r):.3f} | "
              f"{below} / {above} | {width.mean():.4f} | {e.mean() - t:+.4f} | {e.std(ddof=1):.4f} | "
              f"{width.mean() / 3.92:.4f} | {sd1:.4f} |")
    print("\n(below: interval entirely under the truth; above: entirely over it)")


def print_diagnosis(truth: dict, pop: dict, est: dict, diag: dict) -> None:
    k = len(diag[QUANTITIES[0]])
    if not k:
        return
    print(f"\nDiagnosis, first {k} studies: the library's bootstrap replicates (fid_bootstrap, same arguments and seeds)\n")
    print("| quantity | sd of replicates (mean) | sd of est | ratio | sd of one FID at N | ratio | "
          "mean(boot) − est (mean) | truth − population FID |")
    print("|---|---|---|---|---|---|---|---|")
    for q in QUANTITIES:
        sd_b, shift = np.asarray(diag[q]).mean(0)
        sd_e, sd1 = np.std(est[q], ddof=1), truth[q][2]
        print(f"| {q} | {sd_b:.4f} | {sd_e:.4f} | {sd_b / sd_e:.2f} | {sd1:.4f} | {sd_b / sd1:.2f} | {shift:+.4f} | "
              f"{truth[q][0] - pop[q]:+.4f} |")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    cfg = GenMetricsConfig(n_boot=args.n_boot, matched_repeats=args.repeats, kid_subsets=args.kid_subsets)
    n = min(args.n_test, args.n_train, args.n_fake)
    pops = populations(args.dim, args.seed)
    print(f"d = {args.dim}, N_test = {args.n_test}, N_train = {args.n_train}, N_fake = {args.n_fake} -> matched N = {n}; "
          f"{args.studies} studies, n_boot = {cfg.n_boot}, matched_repeats = {cfg.matched_repeats}, "
          f"library seed = {cfg.seed}; seeds: truth [{args.seed}, 0], study i [{args.seed}, 1, i], "
          f"populations [{args.seed}, 2]")
    t0 = time.time()
    truth = truth_at_n(pops, n, args.truth_draws, args.seed)
    pop = {"FID(A)": population_fid(pops["P"], pops["A"]), "FID(B)": population_fid(pops["P"], pops["B"]),
           "floor FID(P', P)": 0.0}
    pop["FID(A) - floor"] = pop["FID(A)"]
    pop["FID(A) - FID(B)"] = pop["FID(A)"] - pop["FID(B)"]
    print(f"truth: {args.truth_draws} Monte Carlo draws at N = {n} ({time.time() - t0:.1f} s)")
    est, cis, diag = run_studies(pops, args, cfg)
    print_coverage(truth, pop, est, cis)
    print_diagnosis(truth, pop, est, diag)


if __name__ == "__main__":
    main()
