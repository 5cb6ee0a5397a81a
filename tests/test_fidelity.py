"""Density/coverage and CMMD (issue 27) against the references' numbers (tests/data/fidelity_parity.npz, made by
benchmarks/make_fidelity_fixtures.py from dgm-eval's compute_prdc and the CMMD PyTorch port) and against
brute-force recomputation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skingen.errors import UserError
from skingen.metrics.fidelity import cmmd, density_coverage
from skingen.metrics.generative import Grams, precision_recall

FIXTURE = np.load(Path(__file__).parent / "data" / "fidelity_parity.npz")


@pytest.mark.parametrize("k", [3, 5])
def test_precision_recall_density_coverage_equal_dgm_eval(k):
    grams = Grams(FIXTURE["real"], FIXTURE["fake"], "cpu")
    density, coverage = density_coverage(grams, k)
    precision, recall = precision_recall(grams, k)
    assert density == pytest.approx(float(FIXTURE[f"density_k{k}"]), rel=1e-6)
    assert coverage == pytest.approx(float(FIXTURE[f"coverage_k{k}"]), rel=1e-6)
    assert precision == pytest.approx(float(FIXTURE[f"precision_k{k}"]), rel=1e-6)
    assert recall == pytest.approx(float(FIXTURE[f"recall_k{k}"]), rel=1e-6)


def test_cmmd_equals_the_reference_implementation():
    assert cmmd(FIXTURE["emb_real"], FIXTURE["emb_fake"]) == pytest.approx(float(FIXTURE["cmmd"]), rel=1e-6)
    assert cmmd(FIXTURE["emb_real"], FIXTURE["emb_real"]) == pytest.approx(0.0, abs=1e-9)
    assert cmmd(FIXTURE["emb_real"], FIXTURE["emb_fake"], block=7) == pytest.approx(float(FIXTURE["cmmd"]), rel=1e-9)


def test_density_and_coverage_by_brute_force():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.5, 1.0, size=(30, 6))
    k = 4
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    radius = np.sort(d_rr, axis=1)[:, k]  # k-th neighbour, itself at index 0
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=2)
    density = np.mean([sum(d_rf[i, j] < radius[i] for i in range(40)) for j in range(30)]) / k
    coverage = np.mean([d_rf[i].min() < radius[i] for i in range(40)])
    got = density_coverage(Grams(real, fake, "cpu"), k)
    assert got == pytest.approx((density, coverage), rel=1e-6)
    # fakes copied from the reals cover every real ball they sit in: coverage 1, density ~ 1 on average
    d, c = density_coverage(Grams(real, real.copy(), "cpu"), k)
    assert c == 1.0 and 0.5 < d < 1.5
    with pytest.raises(UserError, match="density/coverage with k=5 needs at least 6 real"):
        density_coverage(Grams(real[:5], fake, "cpu"), 5)


def test_cmmd_by_brute_force_and_its_scale():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.3, 1.0, size=(9, 5))

    def kmean(a, b):
        return np.mean([[np.exp(-np.sum((p - q) ** 2) / 200.0) for q in b] for p in a])

    assert cmmd(x, y) == pytest.approx(1000 * (kmean(x, x) + kmean(y, y) - 2 * kmean(x, y)), rel=1e-9)
    assert cmmd(x, y + 1.0) > cmmd(x, y) > 0
    with pytest.raises(UserError, match="feature dims differ"):
        cmmd(x, y[:, :3])


def test_cmmd_from_the_pairs_grams_matches_the_float64_computation():
    from skingen.metrics.fidelity import cmmd_grams

    grams = Grams(FIXTURE["emb_real"], FIXTURE["emb_fake"], "cpu")
    assert cmmd_grams(grams) == pytest.approx(float(FIXTURE["cmmd"]), rel=1e-5)
    rng = np.random.default_rng(3)
    x, y = (20 * rng.normal(size=(150, 32))).astype(np.float32), (20 * rng.normal(size=(120, 32)) + 3).astype(np.float32)
    assert cmmd_grams(Grams(x, y, "cpu")) == pytest.approx(cmmd(x, y), rel=1e-5)  # Inception-sized norms


def test_matched_rounds_report_density_coverage_and_cmmd_beside_the_floor():
    from skingen.metrics.matched import matched_repeats

    rng = np.random.default_rng(4)
    test, train, fake = rng.normal(size=(60, 8)), rng.normal(size=(70, 8)), rng.normal(0.8, 1.0, size=(80, 8))
    reps = matched_repeats(test, {"": fake, "_floor": train}, 50, 10, 0, kid_subsets=5, kid_subset_size=50, dc_k=5)
    for key in ("density", "coverage", "cmmd"):
        assert len(reps[""][key]) == len(reps["_floor"][key]) == 10
    assert np.mean(reps[""]["cmmd"]) > np.mean(reps["_floor"]["cmmd"])  # a shifted generator is further away
    assert np.mean(reps[""]["coverage"]) < np.mean(reps["_floor"]["coverage"])


def test_the_agreement_block_says_when_spaces_rank_generators_differently():
    from skingen.report.spaces import agreement

    def d(space, lo, hi):
        return {"pipeline": "basic", "space": space, "a": "ddpm", "b": "stylegan2_ada", "estimate": (lo + hi) / 2,
                "ci": [lo, hi]}

    table, sentences = agreement([d("inception", -5, -1), d("dinov2_vitl14", 2, 6), d("clip_vitl14_336", 1, 3)])
    assert [row[2:] for row in table.rows][0][0].endswith("→ ddpm")
    assert sentences == ["basic: the spaces disagree — inception ranks ddpm first, dinov2_vitl14 and clip_vitl14_336 "
                         "rank stylegan2_ada first, every one of these intervals excluding 0."]
    _, one = agreement([d("inception", -5, -1), d("dinov2_vitl14", -1, 2)])
    assert one == ["basic: inception ranks ddpm first (interval excluding 0); dinov2_vitl14 cannot order ddpm and "
                   "stylegan2_ada."]
    assert agreement([d("inception", -5, -1), d("dinov2_vitl14", -3, -2)])[1] == []
    assert agreement([d("inception", -5, -1)]) == (None, [])


def test_timm_feature_spaces_have_their_documented_outputs():
    """The real spaces' architectures and output shapes with random weights (the CLIP L/14@336 and DINOv2 L/14
    towers are too slow for CI at full size: the stand-in is the DINOv2 S/14 architecture at 56 px)."""
    import torch

    from skingen.metrics.extractors import TIMM_SPACES, load_extractor

    ext = load_extractor("dinov2_standin", device="cpu")
    images = torch.rand(2, 3, 56, 56) * 255
    feats, logits = ext(images)
    assert feats.shape == (2, 384) and logits is None and ext.dim == 384
    again, _ = load_extractor("dinov2_standin", device="cpu")(images)
    assert np.array_equal(feats, again)  # seeded: the same stand-in everywhere
    clip = TIMM_SPACES["clip_vitl14_336"]
    assert clip.head and clip.l2 and clip.dim == 768 and clip.input_size == 336
    with pytest.raises(UserError, match="clip_vitl14_336 weights missing; run 'skingen assets fetch --only "
                                        "clip_vitl14_336'"):
        load_extractor("clip_vitl14_336", assets="/nonexistent", device="cpu")


@pytest.mark.parametrize("space, key, size", [("dinov2_vitl14", "dinov2_clean_features", 224),
                                              ("dinov2_vits14", "dinov2_clean_features", 224),
                                              ("clip_vitl14_336", "clip_features", 336)])
def test_feature_space_preprocessing_equals_the_references(space, key, size):
    """Our resize and normalisation feed a seeded random carrier network the same input as dgm-eval's DINOv2
    transform (its clean_resize variant) and the CMMD port's CLIP preprocessing: features within 1e-5."""
    import timm
    import torch

    from skingen.metrics.extractors import TIMM_SPACES, network_input

    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(n, n, 3), dtype=np.uint8) for n in (64, 96, 331)]
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=size).eval()
    with torch.no_grad():
        ours = net(network_input(images, TIMM_SPACES[space]).float()).numpy()
    assert np.abs(ours - FIXTURE[key]).max() <= 1e-5 * max(1.0, np.abs(FIXTURE[key]).max())
    if key.startswith("dinov2"):  # dgm-eval's default (uint8 PIL resize) is a different input, and it shows
        assert np.abs(ours - FIXTURE["dinov2_default_features"]).max() > 1e-4


def test_fd_and_kd_equal_dgm_eval():
    """FID's formula and the unbiased cubic-kernel MMD (KID) against dgm-eval's compute_FD_with_reps and
    compute_mmd (one subset holding every image, so its random draw only permutes them)."""
    from skingen.metrics.generative import fid, kid

    assert fid(FIXTURE["real"].astype(np.float64), FIXTURE["fake"].astype(np.float64), "cpu") == pytest.approx(
        float(FIXTURE["fd"]), rel=1e-6)
    n = min(len(FIXTURE["real"]), len(FIXTURE["fake"]))
    value, _, m = kid(Grams(FIXTURE["real"][:n], FIXTURE["fake"][:n], "cpu"), subsets=1, subset_size=n)
    assert m == n and value == pytest.approx(float(FIXTURE["kd"]), rel=1e-6)
