"""Diagnostic metrics against scikit-learn and hand computations; bootstrap, paired deltas, DeLong."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from skingen.metrics.bootstrap import paired_deltas, with_intervals
from skingen.metrics.diagnostic import (MEL, all_metrics, average_precision, binary_auc, brier,
                                         diagnostic_odds_ratio)
from skingen.metrics.predictions import evaluate_predictions, write_predictions


def _fixture(n=300, seed=0, skill=1.5):
    rng = np.random.default_rng(seed)
    y = rng.choice(5, size=n, p=[0.5, 0.2, 0.12, 0.13, 0.05])
    logits = rng.normal(size=(n, 5)) + skill * np.eye(5)[y]
    logits = np.round(logits, 1)  # ties, as real probabilities have
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, prob


def test_matches_scikit_learn():
    y, prob = _fixture()
    pred = prob.argmax(1)
    m = all_metrics(y, prob)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    pos = y == MEL
    assert m["mel_roc_auc"] == pytest.approx(skm.roc_auc_score(pos, prob[:, MEL]))
    assert m["mel_pr_auc"] == pytest.approx(skm.average_precision_score(pos, prob[:, MEL]))
    assert m["mel_f1"] == pytest.approx(skm.f1_score(pos, pred == MEL))
    assert m["mel_precision"] == pytest.approx(skm.precision_score(pos, pred == MEL))
    assert m["mel_sensitivity"] == pytest.approx(skm.recall_score(pos, pred == MEL))
    assert m["mel_specificity"] == pytest.approx(skm.recall_score(~pos, pred != MEL))


def test_brier_is_the_multiclass_sum_form():
    y = np.array([0, 1])
    prob = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.2, 0.6, 0.1, 0.1, 0.0]])
    by_hand = ((0.3 ** 2 + 0.1 ** 2 + 0.1 ** 2 + 0.05 ** 2 + 0.05 ** 2)
               + (0.2 ** 2 + 0.4 ** 2 + 0.1 ** 2 + 0.1 ** 2 + 0.0)) / 2
    assert brier(y, prob) == pytest.approx(by_hand)
    assert brier(y, prob) == pytest.approx(5 * np.mean((prob - np.eye(5)[y]) ** 2))  # not the per-entry mean


def test_dor_with_and_without_a_zero_cell():
    assert diagnostic_odds_ratio(tp=20, fn=5, fp=10, tn=65) == pytest.approx((20 * 65) / (10 * 5))
    se, sp = 20 / 25, 65 / 75
    assert diagnostic_odds_ratio(20, 5, 10, 65) == pytest.approx((se / (1 - se)) / ((1 - sp) / sp))
    assert diagnostic_odds_ratio(tp=10, fn=0, fp=3, tn=50) == pytest.approx(10.5 * 50.5 / (3.5 * 0.5))
    assert np.isnan(diagnostic_odds_ratio(tp=0, fn=12, fp=0, tn=88))  # never predicts melanoma: n/a, not 5.7
    assert np.isnan(diagnostic_odds_ratio(tp=12, fn=0, fp=88, tn=0))  # predicts melanoma for every image


def test_probabilities_keep_float32_precision(tmp_path):
    from skingen.metrics.predictions import read_predictions

    y, prob = _fixture(n=50, skill=30.0)  # over-confident: tiny probabilities
    prob = prob.astype(np.float32)
    path = write_predictions(tmp_path / "p.csv", [str(i) for i in range(50)], ["L"] * 50, y, prob)
    _, _, _, back = read_predictions(path)
    assert np.array_equal(back.astype(np.float32), prob)  # %.9g round-trips every float32 exactly
    assert (back[prob < 5e-7] > 0).all() and (prob < 5e-7).any()  # not rounded to 0.000000


def test_auc_and_ap_edge_cases():
    assert np.isnan(binary_auc(np.array([True, True]), np.array([0.1, 0.2])))
    assert binary_auc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    assert average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.1])) == pytest.approx(
        skm.average_precision_score([1, 0, 1], [0.9, 0.8, 0.1]))


def test_bootstrap_intervals_resample_lesions_and_contain_the_estimate():
    y, prob = _fixture(n=200)
    lesions = [f"L{i // 2}" for i in range(200)]
    out = with_intervals(y, prob, lesions, n_boot=200, seed=1)
    assert out["n_lesions"] == 100 and out["n_boot"] == 200
    for key in ("macro_f1", "mel_f1", "roc_auc", "brier"):
        lo, hi = out[f"{key}_ci"]
        assert lo <= out[key] <= hi and lo < hi
    again = with_intervals(y, prob, lesions, n_boot=200, seed=1)
    assert again == out  # seeded


def test_paired_deltas_detect_a_better_model():
    y, weak = _fixture(n=400, seed=2, skill=0.5)
    _, strong = _fixture(n=400, seed=2, skill=3.0)
    lesions = [f"L{i}" for i in range(400)]
    deltas = paired_deltas(y, weak, strong, lesions, n_boot=200, seed=0)
    assert deltas["macro_f1"]["delta"] > 0 and deltas["macro_f1"]["ci"][0] > 0
    assert deltas["mel_roc_auc"]["delta"] > 0 and deltas["mel_roc_auc"]["ci"][0] > 0


def test_predictions_roundtrip_and_paired_file_evaluation(tmp_path):
    y, prob = _fixture(n=120)
    ids = [f"ISIC_{i:07d}" for i in range(120)]
    lesions = [f"L{i // 3}" for i in range(120)]
    a = write_predictions(tmp_path / "a.csv", ids, lesions, y, prob)
    b = write_predictions(tmp_path / "b.csv", ids[::-1], lesions[::-1], y[::-1], prob[::-1])
    res = evaluate_predictions(b, baseline=a, n_boot=50)
    assert res["paired_vs_baseline"]["macro_f1"]["delta"] == pytest.approx(0, abs=1e-9)
    assert res["macro_f1"] == pytest.approx(all_metrics(y, prob)["macro_f1"], abs=1e-6)
