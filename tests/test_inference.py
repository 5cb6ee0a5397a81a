"""The report's inference against independent recomputations: brute-force resampling, scikit-learn,
hand-computed Holm; and a fast null/planted calibration on simulated studies (PROTOCOL rules 7 and 9)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as t_dist
from sklearn import metrics as skm

from skingen.metrics.diagnostic import MEL, METRIC_KEYS, all_metrics
from skingen.metrics.weighted import replicate_metrics
from skingen.report.effects import delta_records, factor_effects
from skingen.report.components import Parts, combine, label_share, small_sample_factor
from skingen.report.joint import cluster_weights, label_weights, run_joint_bootstrap
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


def _brute_force_parts(study, n_boot, seed):
    """The joint bootstrap's parts recomputed image by image with ``all_metrics`` and explicit loops."""
    rng = np.random.default_rng(seed)
    w_img = cluster_weights(study.cluster, n_boot, rng, study.y)
    weights = label_weights(study.cells, n_boot, rng)
    v = np.zeros((len(study.cells), n_boot + 1))
    for r in range(n_boot + 1):
        idx = np.repeat(np.arange(len(study.y)), w_img[r].astype(int))
        for k, cell in enumerate(study.cells):
            v[k, r] = all_metrics(study.y[idx], cell.prob[idx])["macro_f1"]
    out = {}
    for u in sorted({c.unit for c in study.cells}):
        ks = [k for k, c in enumerate(study.cells) if c.unit == u]
        image = v[ks].mean(0)
        dev = v[ks] - v[ks, :1]
        hier, noise = [], []
        for level in weights:  # the seed draw, then the instance draw
            w = level[ks]
            hier.append((w * v[ks, :1]).sum(0) / w.sum(0) - image[0])
            noise.append((w * dev).sum(0) / w.sum(0) - dev.mean(0))
        out[u] = (image, np.stack(hier), np.stack(noise))
    return out


def test_joint_bootstrap_equals_a_brute_force_recomputation():
    sim = SimulatedStudy(n_images=120, arms=("real", "synthetic_stylegan2_ada", "synthetic_ddpm"), models=("resnet50",),
                         seeds=2, instances=2)
    study = simulate(sim, 3)
    jb = run_joint_bootstrap(study, n_boot=12, seed=5)
    brute = _brute_force_parts(study, 12, 5)
    assert jb.units == sorted(brute)
    parts = jb.parts["macro_f1"]
    for i, u in enumerate(jb.units):
        row = parts.row(i)
        for got, want in zip((row.image, row.hier, row.noise), brute[u]):
            assert np.allclose(got, want, atol=1e-9), u
    # column 0 is the plain estimate: mean over seeds and instances of each cell's test-set metric
    real = [c for c in study.cells if c.arm == "real" and c.pipeline == "basic"]
    mean = np.mean([all_metrics(study.y, c.prob)["macro_f1"] for c in real])
    assert jb.values["macro_f1"][jb.units.index(("basic", "real", "resnet50")), 0] == pytest.approx(mean)


def test_replicates_combine_the_parts_as_documented():
    """estimate - b + f x (a x (image deviation - b) + s_seed x hier_seed + s_inst x hier_inst): s^2 = share x
    n/(n - 1), each level's share pooled as sum(var(hier) - var(noise)) / sum(var(hier)), f = t/z at the
    Satterthwaite df (seeds: n - 1; instances: groups x (n - 1))."""
    from skingen.report.components import Levels, label_shares

    rng = np.random.default_rng(0)
    image = np.r_[0.5, 0.5 - 0.01 + 0.02 * rng.normal(size=4000)]  # the bootstrap sits 0.01 below: biased
    hier = np.stack([np.r_[0.0, 0.03 * rng.normal(size=4000)], np.r_[0.0, 0.02 * rng.normal(size=4000)]])
    noise = np.stack([np.r_[0.0, 0.01 * rng.normal(size=4000)], np.zeros(4001)])
    shares = label_shares(Parts(image, hier, noise))
    assert shares[0] == pytest.approx(1 - 0.01 ** 2 / 0.03 ** 2, abs=0.02) and shares[1] == pytest.approx(1.0)
    two = Parts(np.vstack([image, image]), np.stack([np.vstack([hier[0], 2 * noise[0]])] * 2),
                np.stack([np.vstack([noise[0], noise[0]])] * 2))
    assert label_share(two, 0) == pytest.approx((0.03 ** 2 - 0.01 ** 2 + 0.02 ** 2 - 0.01 ** 2) / (0.03 ** 2 + 0.02 ** 2),
                                                abs=0.02)  # pooled: sums, not a mean of ratios
    levels = Levels(seeds=3, instances=3, groups=4)
    out = combine(Parts(image, hier, noise), levels, shares, image_inflation=1.1)
    assert out[0] == 0.5
    assert np.mean(out[1:]) == pytest.approx(0.51, abs=2e-3)  # centred on estimate - bias
    var_image = (1.1 * 0.02) ** 2
    var_seed, var_inst = 1.5 * shares[0] * hier[0, 1:].var(), 1.5 * shares[1] * hier[1, 1:].var()
    df = (var_image + var_seed + var_inst) ** 2 / (var_seed ** 2 / 2 + var_inst ** 2 / 8)
    factor = t_dist.ppf(0.975, df) / norm.ppf(0.975)
    assert 1.0 < factor == pytest.approx(small_sample_factor(var_image, (var_seed, var_inst), (2, 8)), rel=0.01)
    assert np.std(out[1:]) == pytest.approx(factor * np.sqrt(var_image + var_seed + var_inst), rel=0.05)
    # more instance groups: more degrees of freedom for the same variance, a smaller widening
    assert small_sample_factor(var_image, (0.0, var_inst), (2, 8)) < small_sample_factor(var_image, (0.0, var_inst), (2, 2))
    # no label variance beyond the image-level noise: the label part drops out entirely
    assert label_share(Parts(image, noise, hier), 0) == 0.0
    one_seed = combine(Parts(image, hier, noise), Levels(seeds=1), shares)
    assert np.std(one_seed[1:]) == pytest.approx(0.02, rel=0.05)
    flat = Parts(np.r_[0.99, np.full(10, 0.999)], np.zeros((2, 11)), np.zeros((2, 11)))
    assert combine(flat, Levels(3), (0.0, 0.0), (0.0, 1.0)).max() <= 1.0


def test_every_replicate_shares_one_cluster_draw_within_each_class():
    cluster = np.array([0, 0, 1, 2, 2, 2, 3, 4])
    y = np.array([3, 3, 0, 0, 0, 0, 3, 0])  # clusters 0 and 3 are melanoma
    w = cluster_weights(cluster, 200, np.random.default_rng(0), y)
    assert (w[0] == 1).all() and (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()  # whole clusters
    assert (w[1:, [0, 6]].sum(1) == 2).all() and (w[1:, [2, 3, 7]].sum(1) == 3).all()  # class sizes kept
    plain = cluster_weights(cluster, 200, np.random.default_rng(0))
    assert (plain[1:, [0, 6]].sum(1) == 0).any()  # without strata some replicates lose every melanoma


def test_label_draws_are_shared_by_every_cell_that_carries_the_label():
    sim = SimulatedStudy(n_images=60, arms=("real", "synthetic_ddpm"), models=("resnet50", "resnet18"), seeds=3,
                         instances=2)
    cells = simulate(sim, 0).cells
    seed_w, inst_w = label_weights(cells, 500, np.random.default_rng(0))
    assert (seed_w >= 0).all() and (inst_w >= 0).all() and (seed_w[:, 0] == 1).all() and (inst_w[:, 0] == 1).all()
    by_seed = {c.seed: seed_w[k] for k, c in enumerate(cells)}
    for k, c in enumerate(cells):  # one seed draw for every arm, model and pipeline
        assert (seed_w[k] == by_seed[c.seed]).all()
    assert sum(by_seed[s][1:] for s in range(3)).tolist() == [3.0] * 500
    real = [k for k, c in enumerate(cells) if c.generator is None]
    assert (inst_w[real] == 1).all()
    synth = [k for k, c in enumerate(cells) if c.generator is not None]
    for k in synth:  # one instance draw per (pipeline, generator), shared by its models and seeds
        same = [j for j in synth if cells[j].instance == cells[k].instance and cells[j].pipeline == cells[k].pipeline]
        assert all((inst_w[j] == inst_w[k]).all() for j in same)
    first = {c.pipeline: inst_w[k] for k, c in enumerate(cells) if k in synth and c.instance == 0}
    assert not np.array_equal(first["basic"], first["advanced"])  # two trained networks, two draws


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
    shared = _rejections(SimulatedStudy(**{**sim.__dict__, "shared_seed_bias": 0.3}), 12, 200)
    assert all(rate <= 2 / 12 for rate in shared.values()), shared
    planted = SimulatedStudy(**{**sim.__dict__, "planted": {"pipeline:advanced": 0.8}})
    assert _rejections(planted, 4, 200)["preprocessing"] == 1.0


def test_deltas_and_verdict_on_a_null_study_say_not_resolved():
    sim = SimulatedStudy(n_images=300, seeds=2, instances=2)
    jb = run_joint_bootstrap(simulate(sim, 7), 300, 0)
    effects = factor_effects(jb, "resnet50")
    text = verdicts(effects, jb)
    assert len(text) == 2 and all("|generator| − |preprocessing|" in t for t in text)
    assert text[0].startswith("On macro-F1 (95 %") and text[1].startswith("On melanoma F1 (95 %")
    assert any("Not resolved" in t or "Resolved" in t for t in text)
    rows = delta_records(jb)
    assert len(rows) == 2 * 3 * 2 and all(r["macro_f1"]["p_holm"] >= r["macro_f1"]["p"] for r in rows)
    assert all("2 classifier-seed labels" in r["resampled"] for r in rows)
    arch = [e for e in effects if e["factor"] == "architecture" and e["metric"] == "macro_f1"]
    assert [e["contrast"] for e in arch] == ["resnet18 - resnet50"]
    gen = next(e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1")
    assert gen["status"] == "ok" and "2 generator-instance labels" in gen["resampled"]


def test_one_instance_cannot_answer_the_generator_question():
    """Issue 24 item 2: a large instance-to-instance variance with one trained instance per generator."""
    sim = SimulatedStudy(n_images=300, seeds=3, instances=1, instance_shift=1.5)
    for k in range(3):
        jb = run_joint_bootstrap(simulate(sim, k), 300, 0)
        effects = factor_effects(jb, "resnet50")
        pick = {(e["factor"], e["metric"]): e for e in effects}
        gen, cmp = pick[("generator", "macro_f1")], pick[("generator_vs_preprocessing", "macro_f1")]
        assert gen["status"] == cmp["status"] == "single instance"
        assert "1 generator instance (its variability not estimable" in gen["resampled"]
        pre = pick[("preprocessing", "macro_f1")]
        assert pre["status"] == "ok" and pre["contrast"].endswith("(arms without generated images)")
        assert pre["n_pairs"] == 2 * 2 * 3  # real and gta arms x 2 models x 3 seeds, no synthetic arm
        for text in verdicts(effects, jb):
            assert "Resolved" not in text and "generator comparison is insufficient" in text
            assert "[generate] seeds = [0, 1, 2]" in text
        rows = delta_records(jb)
        assert {r["arm"]: r["status"] for r in rows} == {"gta": "ok", "synthetic_stylegan2_ada": "single instance",
                                                        "synthetic_ddpm": "single instance"}


def test_too_few_pairs_are_insufficient_never_separate():
    sim = SimulatedStudy(n_images=200, arms=("real", "synthetic_stylegan2_ada", "synthetic_ddpm"), models=("resnet50",),
                         seeds=1, instances=2)
    jb = run_joint_bootstrap(simulate(sim, 2), 200, 0)
    effects = factor_effects(jb, "resnet50")
    gen = next(e for e in effects if e["factor"] == "generator" and e["metric"] == "macro_f1")
    assert gen["n_pairs"] == 4 and gen["status"] == "insufficient"
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


def test_a_small_test_set_keeps_its_melanomas_in_every_replicate():
    """Issue 24 items 4 and 6: 55 test images, ~6 melanoma lesions: the class-stratified cluster draw keeps
    them in every replicate, so melanoma F1 is never 0 for want of positives and its interval is not [0, 1]."""
    sim = SimulatedStudy(n_images=55, arms=("real", "gta"), models=("resnet50",), seeds=3, instances=1)
    study = simulate(sim, 4)
    jb = run_joint_bootstrap(study, 1000, 0)
    w = cluster_weights(study.cluster, 1000, np.random.default_rng(0), study.y)
    first = np.unique(study.cluster, return_index=True)[1]  # one image per cluster: its draw count
    mel_clusters = first[study.y[first] == MEL]
    assert len(mel_clusters) >= 3 and (w[1:, mel_clusters].sum(1) == len(mel_clusters)).all()
    i = jb.units.index(("basic", "real", "resnet50"))
    assert np.isnan(jb.values["mel_sensitivity"][i]).sum() == 0
    est, (lo, hi) = interval(jb.values["mel_f1"][i])
    assert 0.0 <= lo < est < hi <= 1.0 and hi - lo < 0.9
    assert jb.small_strata and all(n < 5 for n in jb.small_strata.values())  # SCC: a lesion or two
    assert all("Caution: few test clusters in" in t for t in verdicts(factor_effects(jb, "resnet50"), jb))


def test_two_seeds_give_no_runaway_dor():
    """Issue 24 item 5: weights are draw counts (never negative), so a unit's DOR replicates stay in the range
    the cells' own test-set replicates span, widened only by the documented factors."""
    sim = SimulatedStudy(n_images=300, arms=("real",), models=("resnet50",), seeds=2, instances=1)
    study = simulate(sim, 1)
    jb = run_joint_bootstrap(study, 1000, 0)
    cells = np.exp(jb.cell_values["mel_dor"])
    for i in range(len(jb.units)):
        dor = jb.values["mel_dor"][i]
        assert np.isfinite(dor).all() and dor.max() < 10 * np.nanmax(cells) and dor.min() > np.nanmin(cells) / 10


def test_an_undefined_cell_or_pair_makes_the_replicate_undefined_not_shifted():
    """A replicate where one of a unit's cells (or one of a contrast's pairs) is undefined is undefined, and counted;
    averaging the others would move the replicate for no reason (0.2/0.8 cells: 0.5 -> 0.2)."""
    from skingen.report.components import unit_parts
    from skingen.report.stats import undefined_share

    values = np.array([[0.2, 0.2, np.nan, 0.2], [0.8, 0.8, 0.8, 0.8], [np.nan] * 4])  # third cell: never defined
    from skingen.report.components import Levels

    parts = unit_parts(values, (np.ones_like(values), np.ones_like(values)), np.array([0, 0, 0]), 1)
    assert parts.image[0].tolist()[:2] == [0.5, 0.5] and np.isnan(parts.image[0, 2]) and parts.image[0, 3] == 0.5
    out = combine(parts.row(0), Levels(2), (0.0, 0.0))
    assert np.isnan(out[2]) and undefined_share(out) == pytest.approx(1 / 3)
    pairs = Parts(np.array([[0.1, 0.1, np.nan], [0.5, 0.5, 0.5], [np.nan] * 3]), np.zeros((2, 3, 3)),
                  np.zeros((2, 3, 3)))
    mean = pairs.mean()
    assert mean.image[0] == pytest.approx(0.3) and np.isnan(mean.image[2])


def test_a_seed_effect_shared_by_the_pairs_keeps_its_share_in_their_mean():
    """Issue 24 item 1: 12 pairs share one seed effect (sd 1 per seed label) and each has its own image-level
    noise (sd 1): one pair's label spread is half seed effect, their mean's is 12/13 seed effect; the mean's
    interval must carry the latter, not the share pooled over pairs."""
    from skingen.report.components import Parts, label_shares
    from skingen.report.effects import contrast_shares

    rng = np.random.default_rng(0)
    replicates = 4000
    shared = rng.standard_normal(replicates)
    noise = rng.standard_normal((12, replicates))
    hier = np.zeros((2, 12, replicates + 1))
    hier[0, :, 1:] = shared + noise
    noises = np.zeros_like(hier)
    noises[0, :, 1:] = noise
    diffs = Parts(np.zeros((12, replicates + 1)), hier, noises)
    pooled, own = label_shares(diffs)[0], label_shares(diffs.mean())[0]
    assert pooled == pytest.approx(0.5, abs=0.03) and own == pytest.approx(12 / 13, abs=0.02)
    assert contrast_shares(diffs)[0] == own
    own_effects = hier.copy()
    own_effects[0, :, 1:] = rng.standard_normal((12, replicates)) + noise  # seed effects not shared by the pairs
    alone = Parts(diffs.image, own_effects, noises)
    assert contrast_shares(alone)[0] == pytest.approx(0.5, abs=0.05)  # the mean's share is one pair's


def test_the_image_part_counts_the_degrees_of_freedom_of_its_class_strata():
    """Issue 24 item 4: a class-averaged metric's test-set variance rests on each class's few clusters; at 55 test
    images it is known to ~12 degrees of freedom, not infinitely many, and the interval widens by t/z there."""
    from scipy.stats import t as t_dist

    from skingen.report.components import small_sample_factor
    from skingen.report.joint import stratum_df, target_df

    equal = np.array([10, 10, 10])  # equal shares: the df add up, 3 x 9
    assert stratum_df(equal) == pytest.approx(27.0)
    assert stratum_df(np.array([21, 8, 5, 4, 1])) == pytest.approx(11.7, abs=0.1)  # a 55-image test set
    assert stratum_df(np.array([186, 76, 41, 39, 12])) == pytest.approx(34.6, abs=0.1)  # 500 images
    assert stratum_df(np.array([1, 0])) == float("inf")
    assert target_df(np.array([21, 8, 5, 4, 1]), 3) == pytest.approx(3.7, abs=0.1)  # 4 melanoma clusters of 39
    assert small_sample_factor(1.0, (0.0, 0.0), (2, 0), image_df=12.0) == pytest.approx(
        t_dist.ppf(0.975, 12) / 1.959963984540054)
    assert small_sample_factor(1.0, (0.0, 0.0), (2, 0)) == 1.0  # no stratum information: the image part is exact
    # a seed part with 2 df and an image part with 12: Satterthwaite between them
    both = small_sample_factor(1.0, (1.0, 0.0), (2, 0), image_df=12.0)
    df = 4.0 / (1 / 2 + 1 / 12)
    assert both == pytest.approx(t_dist.ppf(0.975, df) / 1.959963984540054)
