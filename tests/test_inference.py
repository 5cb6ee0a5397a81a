"""The report's inference against independent recomputations: brute-force resampling, scikit-learn,
hand-computed Holm; and a fast null/planted calibration on simulated studies (PROTOCOL rules 7 and 9)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from skingen.metrics.diagnostic import MEL, METRIC_KEYS, all_metrics
from skingen.metrics.weighted import replicate_metrics
from skingen.report.effects import delta_records, factor_effects
from skingen.report.joint import _draws, cluster_weights, hierarchy_weights, run_joint_bootstrap
from skingen.report.simulate import SimulatedStudy, simulate
from skingen.report.stats import bootstrap_p, holm, interval
from skingen.report.verdict import verdicts


def _predictions(n=240, seed=0, skill=1.0):
    rng = np.random.default_rng(seed)
    y = rng.choice(5, size=n, p=[0.5, 0.2, 0.12, 0.13, 0.05])
    logits = np.round(rng.normal(size=(n, 5)) + skill * np.eye(5)[y], 1)  # ties
    return y, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) < 1e-9


def test_weighted_metrics_equal_metrics_of_the_resampled_data():
    y, prob = _predictions()
    w = np.random.default_rng(1).multinomial(len(y), np.full(len(y), 1 / len(y)), size=25).astype(float)
    got = replicate_metrics(y, prob, w, MEL)
    for r in range(len(w)):
        idx = np.repeat(np.arange(len(y)), w[r].astype(int))
        ref = all_metrics(y[idx], prob[idx])
        assert all(_same(got[k][r], ref[k]) for k in METRIC_KEYS), r
        pred = prob[idx].argmax(1)
        assert got["macro_f1"][r] == pytest.approx(skm.f1_score(y[idx], pred, average="macro"))
        assert got["mel_pr_auc"][r] == pytest.approx(skm.average_precision_score(y[idx] == MEL, prob[idx, MEL]))
        assert got["mel_roc_auc"][r] == pytest.approx(skm.roc_auc_score(y[idx] == MEL, prob[idx, MEL]))


def test_dor_is_na_when_no_melanoma_is_predicted():
    y, prob = _predictions()
    prob[:, MEL] = 0.0  # never predicts melanoma: the 0.5 correction must not invent a DOR
    got = replicate_metrics(y, prob, np.ones((3, len(y))), MEL)
    assert np.isnan(got["mel_dor"]).all() and np.isnan(all_metrics(y, prob)["mel_dor"])


def _brute_force_unit_means(study, n_boot, seed):
    """The joint bootstrap's replicates recomputed image by image with ``all_metrics`` and explicit loops."""
    rng = np.random.default_rng(seed)
    w_img = cluster_weights(study.cluster, n_boot, rng)
    weights = hierarchy_weights(study.cells, n_boot, rng)
    units = sorted({c.unit for c in study.cells})
    out = {u: np.zeros(n_boot + 1) for u in units}
    for r in range(n_boot + 1):
        idx = np.repeat(np.arange(len(study.y)), w_img[r].astype(int))
        for k, cell in enumerate(study.cells):
            out[cell.unit][r] += weights[k, r] * all_metrics(study.y[idx], cell.prob[idx])["macro_f1"]
    return units, out


def test_joint_bootstrap_equals_a_brute_force_recomputation():
    sim = SimulatedStudy(n_images=120, arms=("real", "synthetic_stylegan2_ada", "synthetic_ddpm"), models=("resnet50",),
                         seeds=2, instances=2)
    study = simulate(sim, 3)
    jb = run_joint_bootstrap(study, n_boot=12, seed=5)
    units, brute = _brute_force_unit_means(study, 12, 5)
    assert jb.units == units
    for i, u in enumerate(units):
        assert np.allclose(jb.values["macro_f1"][i], brute[u], atol=1e-9), u
    # column 0 is the plain estimate: mean over seeds and instances of each cell's test-set metric
    real = [c for c in study.cells if c.arm == "real" and c.pipeline == "basic"]
    mean = np.mean([all_metrics(study.y, c.prob)["macro_f1"] for c in real])
    assert jb.values["macro_f1"][units.index(("basic", "real", "resnet50")), 0] == pytest.approx(mean)


def test_every_replicate_shares_one_cluster_draw_across_cells():
    y = np.zeros(6, int)
    w = cluster_weights(np.array([0, 0, 1, 2, 2, 2]), 50, np.random.default_rng(0))
    assert (w[0] == 1).all() and (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()  # whole clusters
    assert (w[1:, [0, 2, 3]].sum(1) == 3).all() and len(y) == w.shape[1]


def test_seed_draws_have_the_unbiased_variance_of_a_mean():
    x = np.array([0.2, 0.5, 0.9])
    draws = _draws(3, 20000, np.random.default_rng(0))
    assert np.allclose(draws.sum(1), 1.0) and np.allclose(draws[0], 1 / 3)
    assert (draws[1:] @ x).var() == pytest.approx(x.var(ddof=1) / 3, rel=0.05)  # not (n-1)/n of it


def test_interval_p_value_and_holm_by_hand():
    values = np.r_[0.1, np.linspace(-0.1, 0.3, 401)]
    est, (lo, hi) = interval(values)
    assert est == 0.1 and lo == pytest.approx(-0.09) and hi == pytest.approx(0.29)
    assert bootstrap_p(values) == pytest.approx(2 * (1 + 101) / 402)
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])


def _rejections(sim: SimulatedStudy, n_studies: int, n_boot: int):
    hits: dict = {}
    for k in range(n_studies):
        jb = run_joint_bootstrap(simulate(sim, 1000 + k), n_boot, k)
        for e in factor_effects(jb, "resnet50"):
            if e["metric"] == "macro_f1" and e["ci"][0] is not None:
                hits.setdefault(e["factor"], []).append(not e["ci"][0] <= 0 <= e["ci"][1])
    return {f: float(np.mean(v)) for f, v in hits.items()}


def test_null_studies_rarely_find_an_effect_and_a_planted_one_is_found():
    """Fast version of benchmarks/bench_calibration.py (which runs >= 400 studies)."""
    sim = SimulatedStudy(n_images=300, arms=("real", "synthetic_stylegan2_ada", "synthetic_ddpm"), seeds=3, instances=3)
    null = _rejections(sim, 12, 200)
    assert all(rate <= 2 / 12 for rate in null.values()), null
    planted = SimulatedStudy(**{**sim.__dict__, "planted": {"pipeline:advanced": 0.8}})
    assert _rejections(planted, 4, 200)["preprocessing"] == 1.0


def test_deltas_and_verdict_on_a_null_study_say_not_resolved():
    sim = SimulatedStudy(n_images=300, seeds=2, instances=1)
    jb = run_joint_bootstrap(simulate(sim, 7), 300, 0)
    effects = factor_effects(jb, "resnet50")
    text = verdicts(effects, jb)
    assert len(text) == 2 and all("|generator| − |preprocessing|" in t for t in text)
    assert text[0].startswith("On macro-F1 (95 %") and text[1].startswith("On melanoma F1 (95 %")
    assert all("compares single trained instances" in t for t in text)
    assert any("Not resolved" in t or "Resolved" in t for t in text)
    rows = delta_records(jb)
    assert len(rows) == 2 * 3 * 2 and all(r["macro_f1"]["p_holm"] >= r["macro_f1"]["p"] for r in rows)
    arch = [e for e in effects if e["factor"] == "architecture" and e["metric"] == "macro_f1"]
    assert [e["contrast"] for e in arch] == ["resnet18 - resnet50"]


def test_too_few_pairs_are_insufficient_never_separate():
    sim = SimulatedStudy(n_images=200, arms=("real", "synthetic_stylegan2_ada", "synthetic_ddpm"), models=("resnet50",),
                         seeds=1, instances=1)
    jb = run_joint_bootstrap(simulate(sim, 2), 200, 0)
    effects = factor_effects(jb, "resnet50")
    gen = next(e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1")
    assert gen["n_pairs"] == 2 and gen["status"] == "insufficient"
    assert "Insufficient data for the comparison" in verdicts(effects, jb)[0]


def test_a_large_effect_can_pass_holm_at_the_default_replicates():
    """Issue 24 item 3: counted p-values stop at 2/(B + 1) = 0.001 at B = 2,000, above Holm's 0.05/150 for a
    paper-sized table; the tail beyond the replicates is read from a normal fitted to them."""
    rng = np.random.default_rng(0)
    planted = np.r_[0.14, rng.normal(0.14, 0.02, 2000)]  # every replicate above 0
    p = bootstrap_p(planted)
    assert p < 1e-9 and p == pytest.approx(2 * norm.sf(0.14 / 0.02), rel=0.2)
    family = [p] + [0.5] * 149
    assert holm(family)[0] < 0.05
    null = np.r_[0.0, rng.normal(0.0, 0.02, 2000)]
    tail = min((null[1:] <= 0).sum(), (null[1:] >= 0).sum())
    assert bootstrap_p(null) == pytest.approx(2 * (1 + tail) / 2001)  # a tail the replicates resolve: counted
    edge = np.r_[0.05, rng.normal(0.05, 0.02, 2000)]  # ~12 replicates below 0 (z = 2.5): counted, ~0.012
    assert 0.005 < bootstrap_p(edge) < 0.03


def test_a_planted_arm_effect_reaches_holm_adjusted_significance():
    """A paper-sized table (2 pipelines x 5 arms x 5 models x 3 metrics = 150 p-values; Holm's first threshold
    0.05/150 lies below the counted floor 0.001) with a large planted synthetic-arm effect: it survives Holm."""
    sim = SimulatedStudy(n_images=500, arms=("real", "gta", "oversample", "class_weighted", "synthetic_stylegan2_ada",
                                             "synthetic_ddpm"),
                         models=("resnet50", "resnet18", "vit_b16", "efficientnet_b0", "vgg16"), seeds=3, instances=2,
                         planted={"arm:synthetic_ddpm": 1.0})
    rows = delta_records(run_joint_bootstrap(simulate(sim, 3), 2000, 0))
    assert len(rows) * 3 == 150
    ddpm = [r["macro_f1"] for r in rows if r["arm"].startswith("synthetic_ddpm")]
    assert len(ddpm) == 10 and all(d["delta"] > 0 and d["p_holm"] < 0.05 for d in ddpm), ddpm


def test_the_share_of_undefined_replicates_is_reported_beside_the_interval():
    """Issue 24 item 5: replicates where a statistic is undefined (NaN) are not dropped silently."""
    from skingen.report.effects import effect_record
    from skingen.report.stats import undefined_share

    values = np.r_[0.1, np.linspace(-0.1, 0.3, 400), np.full(100, np.nan)]
    assert undefined_share(values) == pytest.approx(0.2)
    rec = effect_record("architecture", "mel_dor", "vit_b16 - resnet50", values, 12)
    assert rec["undefined_share"] == pytest.approx(0.2) and rec["ci"][0] == pytest.approx(-0.09)
    assert effect_record("architecture", "mel_dor", "x", np.r_[0.1, np.zeros(10)], 12)["undefined_share"] == 0
