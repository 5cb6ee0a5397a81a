"""Generative metrics: clean-fid parity, metric behaviour, cached features, memorisation, t-SNE, bad input."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from skingen.data.classes import CLASS_INDEX
from skingen.data.shards import ShardReader, ShardWriter
from skingen.errors import UserError
from skingen.metrics import generative as gm
from skingen.metrics import matched as mt
from skingen.metrics.extractors import load_extractor
from skingen.metrics.feature_space import tsne_figure
from skingen.metrics.features import ImageSet, extract_features
from skingen.metrics.gen_eval import GenMetricsConfig, matched_metrics

REQUIRED = {"fid", "fid_ci", "fid_sd", "fid_ci_method", "kid", "kid_std", "kid_subset_size", "is_mean", "is_std",
            "precision", "recall", "memorised_fraction", "memorised_ci", "memorised_baseline", "n_real", "n_fake",
            "n_test", "n_matched", "matched_repeats", "extractor", "extractor_sha256", "implementation", "fid_floor",
            "fid_floor_sd", "fid_floor_ci", "fid_minus_floor", "fid_minus_floor_ci", "full_n"}


def _blobs(rng: np.random.Generator, n: int, size: int, shift: int) -> list[np.ndarray]:
    """Smooth random colour fields (plus a brightness shift): distinct but comparable image sets."""
    out = []
    for _ in range(n):
        low = rng.integers(0, 200, (4, 4, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(low).resize((size, size), Image.BILINEAR)).astype(np.int16) + shift
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _shard(path, images, label="MEL", synthetic=False):
    attrs = {"synthetic": True, "synthetic_class": label, "generator": "test"} if synthetic else {}
    with ShardWriter(path, images[0].shape[0], "synthetic" if synthetic else "basic", attrs=attrs) as w:
        for i, img in enumerate(images):
            w.add(img, CLASS_INDEX[label], f"{path.stem}_{i}", f"{path.stem}_{i}", "test")
    return path


def test_fid_matches_cleanfid_on_the_same_folders_and_extractor(tmp_path):
    from cleanfid import fid as cfid
    from cleanfid.resize import make_resizer

    rng = np.random.default_rng(0)
    sets = {"a": _blobs(rng, 90, 32, 0), "b": _blobs(rng, 90, 32, 30)}
    tiny = load_extractor("tiny", device="cpu")
    ours = {}
    for name, images in sets.items():
        (tmp_path / name).mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(tmp_path / name / f"{i:03d}.png")
        ours[name] = extract_features(ImageSet(_shard(tmp_path / f"{name}.h5", images)), tiny).features
    theirs = cfid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean",
                              custom_feat_extractor=lambda x: tiny.net(x)[0], device=torch.device("cpu"),
                              num_workers=0, batch_size=30, verbose=False,
                              custom_fn_resize=make_resizer("PIL", False, "bicubic", (64, 64)))
    mine = gm.fid(ours["a"], ours["b"])
    assert theirs > 1e-3  # the sets differ, so the comparison means something
    assert mine == pytest.approx(theirs, rel=1e-3)
    assert gm.fid(ours["a"], ours["a"]) == pytest.approx(0, abs=1e-6)


def test_both_exact_routes_to_the_trace_term_agree_with_scipy():
    from scipy import linalg

    rng = np.random.default_rng(8)
    for n1, n2, d in ((30, 40, 16), (20, 25, 64)):  # many images per dim (Cholesky), few (singular values)
        x1, x2 = rng.normal(size=(n1, d)), rng.normal(0.3, 1.2, size=(n2, d))
        s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
        want = np.trace(linalg.sqrtm(s1 @ s2)).real
        a1 = gm._centred(torch.from_numpy(x1))[1]
        a2 = gm._centred(torch.from_numpy(x2))[1]
        assert float(gm._trace_sqrt_product(a1, a2)) == pytest.approx(want, rel=1e-6)


def test_blocked_symmetric_product_equals_the_full_product():
    rng = np.random.default_rng(3)
    # blocked Gram of many images; covariance of many dims; one (diagonal) block below 1024 rows
    for rows, cols in ((1100, 8), (7, 1500), (300, 20)):
        a = torch.from_numpy(rng.normal(size=(rows, cols)))
        got = gm.symmetric_product(a if rows > cols else a.T)
        want = a @ a.T if rows > cols else a.T @ a
        assert torch.equal(got, got.T)  # by construction (mirrored), whatever the CPU's BLAS does
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-10)


def test_kid_equals_cleanfid_on_full_sets_and_is_seeded():
    from cleanfid import fid as cfid

    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(60, 16)), rng.normal(0.5, 1, size=(50, 16))
    grams = gm.Grams(real, fake, device="cpu")
    full, _, m = gm.kid(grams, subsets=3, subset_size=1000)
    assert m == 50  # subset size capped at min(N)
    np.random.seed(0)
    subset_real = real[:50]  # cleanfid subsets both sets to min(N); with N equal it uses all of them
    g2 = gm.Grams(subset_real, fake, device="cpu")
    assert gm.kid(g2, subsets=2, subset_size=50)[0] == pytest.approx(cfid.kernel_distance(subset_real, fake, 2), rel=1e-4)
    assert gm.kid(grams, 20, 30, seed=3) == gm.kid(grams, 20, 30, seed=3)
    assert gm.kid(grams, 20, 30, seed=3)[0] != gm.kid(grams, 20, 30, seed=4)[0]
    base = rng.normal(size=(400, 16))
    same = gm.kid(gm.Grams(base, rng.normal(size=(400, 16)), device="cpu"), 50, 200)[0]
    shifted = gm.kid(gm.Grams(base, rng.normal(0.5, 1, size=(400, 16)), device="cpu"), 50, 200)[0]
    assert abs(same) < 0.1 * shifted  # unbiased: about 0 for two samples of one distribution


def test_inception_score_counts_confident_distinct_classes():
    uniform = np.zeros((100, 10))
    assert gm.inception_score(uniform)[0] == pytest.approx(1.0)
    confident = np.full((100, 10), -50.0)
    confident[np.arange(100), np.arange(100) % 10] = 50.0
    mean, std = gm.inception_score(confident)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
    collapsed = np.full((100, 10), -50.0)
    collapsed[:, 3] = 50.0
    assert gm.inception_score(collapsed)[0] == pytest.approx(1.0)


def test_precision_recall_separate_fidelity_from_coverage():
    rng = np.random.default_rng(2)
    mode_a, mode_b = rng.normal(0, 1, (100, 8)), rng.normal(20, 1, (100, 8))
    real = np.concatenate([mode_a, mode_b])
    assert gm.precision_recall(gm.Grams(real, real + 1e-4, device="cpu")) == pytest.approx((1.0, 1.0))
    assert gm.precision_recall(gm.Grams(real, real + 100, device="cpu")) == pytest.approx((0.0, 0.0))
    collapsed = rng.normal(0, 1, (100, 8))  # covers mode a only: faithful, half the coverage
    precision, recall = gm.precision_recall(gm.Grams(real, collapsed, device="cpu"))
    fresh = np.concatenate([rng.normal(0, 1, (100, 8)), rng.normal(20, 1, (100, 8))])
    fresh_p, fresh_r = gm.precision_recall(gm.Grams(real, fresh, device="cpu"))
    assert precision > 0.8 and fresh_p > 0.8  # k-NN balls in 8-d from 100 points cover most of a mode
    assert 0.35 < recall < 0.6 < 0.8 < fresh_r


def test_memorisation_flags_copies_not_fresh_samples():
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(200, 16)), rng.normal(size=(100, 16))
    copies = train[:50] + rng.normal(0, 1e-3, (50, 16))
    fresh = rng.normal(size=(200, 16))
    copied = gm.memorisation(copies, train, test)
    assert copied["memorised_fraction"] == 1.0 and copied["closer_to_train_fraction"] == 1.0
    honest = gm.memorisation(fresh, train, test)
    assert honest["memorised_fraction"] < 0.15
    assert 0.3 < honest["closer_to_train_fraction"] < 0.9  # train has twice the images of test


FAST = GenMetricsConfig(n_boot=30, kid_subsets=5)


def _gaussians(seed: int, n_train=300, n_test=40, n_fake=1500, d=8, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_train, d)), rng.normal(size=(n_test, d)), rng.normal(shift, 1, size=(n_fake, d))


def test_a_perfect_generator_scores_about_the_floor_at_matched_n():
    train, test, fake = _gaussians(0)  # fakes from the real distribution, 1500 of them against 40 test reals
    m = matched_metrics(train, test, fake, FAST)
    assert m["n_matched"] == 40 and m["matched_repeats"] == 10 and m["kid_subset_size"] <= 40
    assert 0.75 < m["fid"] / m["fid_floor"] < 1.35  # not far below the floor, as the unmatched comparison was
    # a 95 % interval of a null difference: contains 0 in about 19 of 20 independent studies, not in all
    nulls = [matched_metrics(*_gaussians(seed), FAST)["fid_minus_floor_ci"] for seed in range(1, 11)]
    assert sum(lo < 0 < hi for lo, hi in nulls) >= 8
    assert abs(m["precision"] - m["precision_floor"]) < 0.15 and abs(m["recall"] - m["recall_floor"]) < 0.15
    worse = matched_metrics(train, test, _gaussians(0, shift=1.0)[2], FAST)
    assert worse["fid_minus_floor_ci"][0] > 0 and worse["kid"] > m["kid"]


def test_fid_intervals_contain_their_estimate_and_say_how_they_were_made():
    for seed in range(2):
        m = matched_metrics(*_gaussians(seed, n_test=25, shift=0.3), FAST)
        for key in ("fid", "fid_floor", "fid_minus_floor"):
            lo, hi = m[f"{key}_ci"]
            assert lo <= m[key] <= hi and lo < hi
        assert m["fid_range"][0] <= m["fid"] <= m["fid_range"][1] and m["fid_sd"] > 0
    assert "joint bootstrap" in m["fid_ci_method"] and "shifted" in m["fid_ci_method"]
    assert "rounds" in m["fid_ci_method"] and "bench_fid_coverage" in m["fid_ci_method"]
    boot = np.array([5.0, 6.0, 7.0, 8.0])  # every replicate above the estimate, as FID's upward bias makes them
    lo, hi = mt.shifted_interval(3.0, boot)
    assert lo <= 3.0 <= hi and hi - lo == pytest.approx(np.quantile(boot, 0.975) - np.quantile(boot, 0.025))
    rounds = np.array([2.0, 3.0, 4.0, 3.0])  # the estimate's rounds: their own spread widens each side in quadrature
    lo2, hi2 = mt.shifted_interval(3.0, boot, rounds=rounds)
    extra = 1.959964 * np.std(rounds, ddof=1) / 2
    assert 3.0 - lo2 == pytest.approx(np.hypot(3.0 - lo, extra), rel=1e-6)
    assert hi2 - 3.0 == pytest.approx(np.hypot(hi - 3.0, extra), rel=1e-6)


def test_fid_of_index_draws_from_the_gram_matches_the_direct_fid():
    rng = np.random.default_rng(9)
    for n1, n2, d, m in ((50, 80, 64, 30), (300, 200, 8, 40)):  # fewer images than dims (Gram route), more
        x, y = rng.normal(size=(n1, d)), rng.normal(0.3, 1.2, size=(n2, d))
        ix, iy = rng.integers(0, n1, m), rng.integers(0, n2, m)  # repeats allowed, as in a bootstrap draw
        assert mt.PairFrechet(x, y, "cpu")(ix, iy) == pytest.approx(gm.fid(x[ix], y[iy]), rel=1e-6)


def test_repeat_summary_matches_numpy():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    s = mt.summary(values)
    assert s["mean"] == pytest.approx(3.9) and s["sd"] == pytest.approx(np.std(values, ddof=1))
    assert s["range"] == pytest.approx(list(np.quantile(values, [0.025, 0.975]))) and s["repeats"] == 10


def test_fid_difference_interval_has_the_sign_of_a_clearly_worse_generator():
    _, test, good = _gaussians(1)
    worse = _gaussians(2, shift=1.0)[2]
    d = mt.fid_difference(test, worse, good, repeats=10, n_boot=30)
    assert d["n"] == 40 and d["ci"][0] > 0 and d["ci"][0] <= d["estimate"] <= d["ci"][1]
    flipped = mt.fid_difference(test, good, worse, repeats=10, n_boot=30)
    assert flipped["ci"][1] < 0
    twin = mt.fid_difference(test, good, _gaussians(3)[2], repeats=10, n_boot=30)
    assert twin["ci"][0] < 0 < twin["ci"][1]  # two draws of one distribution: no difference claimed


def test_memorisation_has_an_interval_and_a_matched_size_real_baseline():
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(200, 16)), rng.normal(size=(60, 16))
    d_test = gm.nearest(test, train)[0]
    copies = gm.nearest(train[:50] + rng.normal(0, 1e-3, (50, 16)), train)[0]
    honest = gm.nearest(rng.normal(size=(400, 16)), train)[0]
    copied = mt.memorised_baseline(copies, d_test, 0.05, 10)
    assert mt.memorised_interval(copies, d_test, 0.05, 50) == [1.0, 1.0] and copied["fake"]["mean"] == 1.0
    assert copied["n"] == 30 and copied["real"]["mean"] < 0.25  # held-out reals: about the quantile
    fresh = mt.memorised_baseline(honest, d_test, 0.05, 10)
    lo, hi = mt.memorised_interval(honest, d_test, 0.05, 100)
    estimate = float((honest < np.quantile(d_test, 0.05)).mean())
    assert lo <= estimate <= hi < 0.3 and lo < fresh["real"]["mean"] + 0.1
    assert abs(fresh["fake"]["mean"] - fresh["real"]["mean"]) < 0.15
    assert mt.memorised_baseline(honest, d_test[:1], 0.05, 10) is None  # one test real cannot be split


def test_matched_repeats_below_ten_are_refused():
    with pytest.raises(UserError, match="matched_repeats = 5; PROTOCOL rule 8 asks for >= 10"):
        GenMetricsConfig(matched_repeats=5)


def test_bad_metric_input_names_the_problem():
    rng = np.random.default_rng(5)
    with pytest.raises(UserError, match="dims differ"):
        gm.fid(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)))
    with pytest.raises(UserError, match="got 1 real"):
        gm.kid(gm.Grams(rng.normal(size=(1, 4)), rng.normal(size=(10, 4)), device="cpu"))
    with pytest.raises(UserError, match="k=3 needs at least 4 images per set; got 10 real and 3 fake"):
        gm.precision_recall(gm.Grams(rng.normal(size=(10, 4)), rng.normal(size=(3, 4)), device="cpu"))
    with pytest.raises(UserError, match="10 splits needs at least 10 images; got 4"):
        gm.inception_score(rng.normal(size=(4, 10)))


def test_features_are_cached_once_and_recomputed_when_stale(tmp_path):
    rng = np.random.default_rng(6)
    shard = _shard(tmp_path / "s.h5", _blobs(rng, 20, 32, 0))
    tiny = load_extractor("tiny", device="cpu")
    calls = []
    net = tiny.net
    tiny.net = lambda x: calls.append(len(x)) or net(x)
    cache = tmp_path / "feats.h5"
    first = extract_features(ImageSet(shard), tiny, cache, batch_size=8)
    assert sum(calls) == 20 and first.features.shape == (20, 64) and first.logits.shape == (20, 10)
    with h5py.File(cache) as h5:
        assert h5["tiny"].attrs["weights_sha256"] == tiny.weights_sha256
        assert h5["tiny"].attrs["image_set"] == first.set_id and len(h5["image_id"]) == 20
    again = extract_features(ImageSet(shard), tiny, cache)
    assert sum(calls) == 20 and np.array_equal(again.features, first.features)  # from the cache
    other = _shard(tmp_path / "t.h5", _blobs(rng, 12, 32, 0))
    extract_features(ImageSet(other), tiny, cache)
    assert sum(calls) == 32  # another image set under the same cache path: recomputed, not reused
    assert not list(tmp_path.glob(".*tmp"))


def _fake_shard(phantom_shards, path, label, copy):
    """Synthetic shard from the train images of ``label``: exact copies, or noisy, blurred versions."""
    reader = ShardReader(phantom_shards / "train.h5")
    idx = np.flatnonzero(reader.labels == CLASS_INDEX[label])
    rng = np.random.default_rng(0)
    images = []
    for i in np.resize(idx, 24):
        img = reader.image(int(i))
        if not copy:
            img = np.clip(img.astype(np.int16)[::-1] + rng.integers(-60, 60, img.shape), 0, 255).astype(np.uint8)
        images.append(img)
    return _shard(path, images, label, synthetic=True)


def test_gen_metrics_cli_scores_a_synthetic_shard(phantom_shards, tmp_path, cli):
    noisy = _fake_shard(phantom_shards, tmp_path / "noisy.h5", "NV", copy=False)
    copies = _fake_shard(phantom_shards, tmp_path / "copies.h5", "NV", copy=True)
    results = {}
    for name, shard in (("noisy", noisy), ("copies", copies)):
        r = cli("gen", "metrics", shard, "--real", phantom_shards, "--out", tmp_path / name, "--extractor", "tiny",
                "--n-boot", "100", "--features", tmp_path / "real_features")
        assert r.code == 0, r.err
        assert "FID" in r.out and "memorised" in r.out
        results[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    noisy_m, copy_m = results["noisy"], results["copies"]
    assert REQUIRED <= set(noisy_m)
    n_train_nv = int((ShardReader(phantom_shards / "train.h5").labels == CLASS_INDEX["NV"]).sum())
    assert noisy_m["n_real"] == n_train_nv and noisy_m["n_fake"] == 24 and noisy_m["extractor"] == "tiny"
    n_test_nv = int((ShardReader(phantom_shards / "test.h5").labels == CLASS_INDEX["NV"]).sum())
    assert noisy_m["n_test"] == n_test_nv and noisy_m["n_matched"] == min(n_train_nv, n_test_nv, 24)
    assert noisy_m["fid_ci"][0] <= noisy_m["fid"] <= noisy_m["fid_ci"][1]  # the interval contains its estimate
    assert noisy_m["fid_floor"] > 0 and noisy_m["kid_subset_size"] <= noisy_m["n_matched"]
    assert noisy_m["full_n"]["n_real"] == n_train_nv and noisy_m["full_n"]["fid"] > 0
    base = noisy_m["memorised_baseline"]
    assert base["n"] == min(n_test_nv // 2, 24) and 0 <= base["real"]["mean"] <= 1
    assert copy_m["memorised_ci"][0] == 1.0
    assert copy_m["memorised_fraction"] == 1.0 and noisy_m["memorised_fraction"] < 0.5
    assert copy_m["fid"] < noisy_m["fid"]
    assert Image.open(tmp_path / "noisy" / "closest_pairs.png").size == (4 * 2 * 32, 4 * 32)
    assert (tmp_path / "real_features" / "train_NV.h5").is_file()  # shared real cache, reused by the second cell


def test_gen_metrics_rejects_real_shards_and_missing_weights(phantom_shards, tmp_path, cli):
    r = cli("gen", "metrics", phantom_shards / "train.h5", "--real", phantom_shards, "--out", tmp_path / "x",
            "--extractor", "tiny")
    assert r.code == 2 and "not a synthetic shard" in r.err and r.err.count("\n") == 1
    fake = _fake_shard(phantom_shards, tmp_path / "f.h5", "NV", copy=False)
    r = cli("gen", "metrics", fake, "--real", phantom_shards, "--out", tmp_path / "y", "--assets", tmp_path / "empty")
    assert r.code == 2 and "skingen assets fetch --only inception" in r.err and r.err.count("\n") == 1


def test_tsne_places_the_far_generator_farther(tmp_path):
    rng = np.random.default_rng(7)
    groups = {"real": rng.normal(size=(40, 32)), "near": rng.normal(0.2, 1, (30, 32)),
              "far": rng.normal(4, 1, (30, 32))}
    result = tsne_figure(groups, tmp_path, "MEL basic", perplexity=50, seed=0)
    rows = {r["source"]: r for r in result["rows"]}
    assert rows["real"]["centroid_distance_to_real"] == 0
    assert rows["far"]["centroid_distance_to_real"] > 5 * rows["near"]["centroid_distance_to_real"]
    assert rows["far"]["tsne_centroid_distance_to_real"] > rows["near"]["tsne_centroid_distance_to_real"]
    settings = json.loads((tmp_path / "tsne.json").read_text())
    assert settings["seed"] == 0 and settings["perplexity"] == pytest.approx(33.0) and settings["perplexity_requested"] == 50 and settings["pca_components"] == 32
    assert Image.open(tmp_path / "tsne.png").size[0] > 300
    again = tsne_figure(groups, tmp_path / "again", "MEL basic", perplexity=50, seed=0)
    assert again["rows"] == result["rows"]  # seeded and single-threaded: the same map on every run


def _knn_radius(points: np.ndarray, k: int) -> np.ndarray:
    """Brute force: distance from each point to its k-th nearest other point."""
    return np.array([np.sort([np.linalg.norm(p - q) for j, q in enumerate(points) if j != i])[k - 1]
                     for i, p in enumerate(points)])


# seeds whose every distance is >= 0.2 % (squared) away from every radius: the float32 Gram route cannot
# flip a point across a boundary on any CPU
@pytest.mark.parametrize("k, seed", [(3, 15), (5, 139)])
def test_precision_recall_equal_a_brute_force_recomputation_of_the_definition(k, seed):
    """Kynkäänniemi et al.: a fake is in the real manifold when it lies within some real's k-NN radius."""
    rng = np.random.default_rng(seed)
    real = np.concatenate([rng.normal(0, 1, (40, 6)), rng.normal(4, 1, (30, 6))])
    fake = np.concatenate([rng.normal(0, 1.3, (50, 6)), rng.normal(8, 1, (10, 6))])
    r_real, r_fake = _knn_radius(real, k), _knn_radius(fake, k)
    inside = lambda x, pts, radii: any(np.linalg.norm(x - p) <= r for p, r in zip(pts, radii))  # noqa: E731
    precision = np.mean([inside(f, real, r_real) for f in fake])
    recall = np.mean([inside(r, fake, r_fake) for r in real])
    assert 0.1 < precision < 0.95 and 0.1 < recall < 0.95  # neither trivially 0 nor 1
    assert gm.precision_recall(gm.Grams(real, fake, device="cpu"), k=k) == pytest.approx((precision, recall), abs=1e-12)


def test_inception_score_equals_the_per_split_formula_in_plain_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, (103, 7))  # 103 images: splits of 11 and 10, as numpy.array_split
    scores = []
    for part in np.array_split(logits, 10):
        p = np.exp(part - part.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        marginal = p.mean(0)
        scores.append(np.exp(np.mean([np.sum(row * (np.log(row) - np.log(marginal))) for row in p])))
    assert gm.inception_score(logits) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-9)


def test_memorisation_equals_a_brute_force_recomputation():
    rng = np.random.default_rng(5)
    train, test = rng.normal(size=(60, 5)), rng.normal(size=(30, 5))
    fake = np.concatenate([train[:10] + rng.normal(0, 0.05, (10, 5)), rng.normal(size=(40, 5))])
    nn = lambda q, ref: np.array([min(np.linalg.norm(x - r) for r in ref) for x in q])  # noqa: E731
    d_train, d_test, baseline = nn(fake, train), nn(fake, test), nn(test, train)
    threshold = np.quantile(baseline, 0.05)
    got = gm.memorisation(fake, train, test)
    assert got["memorisation_threshold"] == pytest.approx(threshold, rel=1e-5)
    assert got["memorised_fraction"] == np.mean(d_train < threshold) and got["memorised_fraction"] >= 10 / 50
    assert got["closer_to_train_fraction"] == np.mean(d_train < d_test)
    assert got["nn_train_median"] == pytest.approx(np.median(d_train), rel=1e-5)
    assert got["nn_test_median"] == pytest.approx(np.median(d_test), rel=1e-5)
