"""Classifier metrics (PROTOCOL definitions), fast enough to bootstrap: confusion-matrix and rank based.

All functions take ``y`` (int labels, N) and ``prob`` (N, C softmax probabilities); the one-vs-rest
``mel_*`` metrics score class ``target`` (the set's MEL, see ``classes.metric_target``).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..data.classes import CLASS_INDEX

MEL = CLASS_INDEX["MEL"]  # paper5's MEL: the default target
METRIC_KEYS = ("macro_f1", "balanced_accuracy", "mcc", "roc_auc", "accuracy", "brier", "mel_f1",
               "mel_sensitivity", "mel_specificity", "mel_precision", "mel_roc_auc", "mel_pr_auc", "mel_dor")


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _safe_div(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def macro_f1(cm: np.ndarray) -> float:
    """Macro F1 over classes present in y or predictions (scikit-learn's labels=None behaviour)."""
    tp = np.diag(cm)
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = _safe_div(2 * tp, cm.sum(0) + cm.sum(1))
    return float(f1[present].mean())


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over classes present in y."""
    support = cm.sum(1)
    return float(_safe_div(np.diag(cm), support)[support > 0].mean())


def mcc(cm: np.ndarray) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K), as scikit-learn."""
    t, p = cm.sum(1).astype(float), cm.sum(0).astype(float)
    c, s = float(np.trace(cm)), float(cm.sum())
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / den) if den else 0.0


def binary_auc(pos: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney statistic (ties count one half); NaN when one class is absent."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(pos: np.ndarray, score: np.ndarray) -> float:
    """PR-AUC as average precision (scikit-learn's step-wise definition, ties grouped)."""
    n_pos = int(pos.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, p = score[order], pos[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(~p)[last_of_tie]
    precision = tp / (tp + fp)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((precision * recall_step).sum())


def macro_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over classes with positives and negatives in ``y``."""
    aucs = [binary_auc(y == k, prob[:, k]) for k in range(prob.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def brier(y: np.ndarray, prob: np.ndarray) -> float:
    """Multiclass Brier: mean over samples of the sum over classes of (p - onehot)^2."""
    onehot = np.eye(prob.shape[1])[y]
    return float(((prob - onehot) ** 2).sum(1).mean())


def diagnostic_odds_ratio(tp: float, fn: float, fp: float, tn: float) -> float:
    """DOR = (Se/(1-Se)) / ((1-Sp)/Sp) = TP*TN / (FP*FN), with 0.5 added to every cell if one is zero;
    NaN (n/a) when the classifier predicts no positives or no negatives."""
    if tp + fp == 0 or fn + tn == 0:
        return float("nan")
    if min(tp, fn, fp, tn) == 0:
        tp, fn, fp, tn = tp + 0.5, fn + 0.5, fp + 0.5, tn + 0.5
    return float(tp * tn / (fp * fn))


def melanoma_metrics(y: np.ndarray, prob: np.ndarray, pred: np.ndarray, target: int = MEL) -> dict[str, float]:
    """Melanoma (class ``target``) one-vs-rest: F1, sensitivity, specificity, precision, ROC-AUC, PR-AUC, DOR."""
    pos, hit = y == target, pred == target
    tp, fn = float((pos & hit).sum()), float((pos & ~hit).sum())
    fp, tn = float((~pos & hit).sum()), float((~pos & ~hit).sum())
    return {
        "mel_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "mel_sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "mel_specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "mel_precision": tp / (tp + fp) if tp + fp else 0.0,
        "mel_roc_auc": binary_auc(pos, prob[:, target]),
        "mel_pr_auc": average_precision(pos, prob[:, target]),
        "mel_dor": diagnostic_odds_ratio(tp, fn, fp, tn),
    }


def all_metrics(y: np.ndarray, prob: np.ndarray, target: int = MEL) -> dict[str, float]:
    """Every key of METRIC_KEYS for one set of predictions (``mel_*`` for class ``target``)."""
    pred = prob.argmax(1)
    cm = confusion(y, pred, prob.shape[1])
    out = {"macro_f1": macro_f1(cm), "balanced_accuracy": balanced_accuracy(cm), "mcc": mcc(cm),
           "roc_auc": macro_auc(y, prob), "accuracy": float(np.trace(cm) / cm.sum()), "brier": brier(y, prob)}
    out.update(melanoma_metrics(y, prob, pred, target))
    return out
