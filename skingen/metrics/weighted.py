"""Classifier metrics for many bootstrap replicates at once.

A replicate is a weight vector over the test images: weight ``w[r, n]`` = how often image ``n`` was
drawn in replicate ``r``. Every metric here equals :func:`skingen.metrics.diagnostic.all_metrics` on
the data set in which image ``n`` appears ``w[r, n]`` times (tested against that brute force), but
is computed for all replicates at once: confusion matrices as one matrix product, ROC-AUC and
average precision by one compiled pass per replicate over the images in score order. Integer weights
keep every sum exact, so results do not depend on the BLAS or the CPU.
"""
from __future__ import annotations

import numba
import numpy as np

# rows of the returned arrays that are undefined come back as NaN (e.g. an AUC without positives)
CONFUSION_KEYS = ("macro_f1", "balanced_accuracy", "mcc", "accuracy", "mel_f1", "mel_sensitivity",
                  "mel_specificity", "mel_precision", "mel_dor")


def _div(a: np.ndarray, b: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(np.broadcast(a, b).shape, empty, float)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(-1)
    return _div(np.where(mask, values, 0.0).sum(-1), count, np.nan)


def confusion_metrics(cm: np.ndarray, target: int) -> dict[str, np.ndarray]:
    """Metrics of stacked confusion matrices ``cm`` (R, C, C; rows true, columns predicted)."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true, pred = cm.sum(2), cm.sum(1)
    total = cm.sum((1, 2))
    correct = tp.sum(1)
    out = {"macro_f1": _masked_mean(_div(2 * tp, true + pred, 0.0), (true + pred) > 0),
           "balanced_accuracy": _masked_mean(_div(tp, true, 0.0), true > 0),
           "accuracy": _div(correct, total, np.nan)}
    den = np.sqrt((total ** 2 - (pred * pred).sum(1)) * (total ** 2 - (true * true).sum(1)))
    out["mcc"] = _div(correct * total - (true * pred).sum(1), den, 0.0)
    t_p = tp[:, target]
    f_n, f_p = true[:, target] - t_p, pred[:, target] - t_p
    t_n = total - t_p - f_n - f_p
    out.update(mel_f1=_div(2 * t_p, 2 * t_p + f_p + f_n, 0.0), mel_sensitivity=_div(t_p, t_p + f_n, np.nan),
               mel_specificity=_div(t_n, t_n + f_p, np.nan), mel_precision=_div(t_p, t_p + f_p, 0.0),
               mel_dor=odds_ratio(t_p, f_n, f_p, t_n))
    return out


def odds_ratio(tp, fn, fp, tn) -> np.ndarray:
    """DOR = TP·TN / (FP·FN), 0.5 added to every cell when one is zero; NaN (n/a) when the classifier
    predicts no positives or no negatives (the correction would invent a ratio from nothing)."""
    tp, fn, fp, tn = (np.asarray(v, float) for v in (tp, fn, fp, tn))
    zero = np.minimum.reduce([tp, fn, fp, tn]) == 0
    c = np.where(zero, 0.5, 0.0)
    dor = (tp + c) * (tn + c) / ((fp + c) * (fn + c))
    return np.where((tp + fp == 0) | (fn + tn == 0), np.nan, dor)


@numba.njit(cache=False)  # a read-only install (container) cannot hold a cache
def _ranked_sums(w_t, order, pos, group_end, descending):  # pragma: no cover - compiled
    """Per replicate: positive weight, negative weight, and the AUC numerator (ascending) or the AP
    numerator (descending), walking the images in score order one tie group at a time. ``w_t`` is
    (N, R): each image's weights over the replicates form one contiguous row, updated as a vector."""
    n, n_rep = w_t.shape
    out = np.zeros((3, n_rep))
    n_chunks = 1
    for c in range(n_chunks):
        lo, hi = c * n_rep // n_chunks, (c + 1) * n_rep // n_chunks
        m = hi - lo
        pos_seen, neg_seen, num = np.zeros(m), np.zeros(m), np.zeros(m)
        g_pos, g_neg = np.zeros(m), np.zeros(m)
        i = 0
        while i < n:
            end = group_end[i]
            for r in range(m):
                g_pos[r] = 0.0
                g_neg[r] = 0.0
            for j in range(i, end):
                row = order[j]
                if pos[j]:
                    for r in range(m):
                        g_pos[r] += w_t[row, lo + r]
                else:
                    for r in range(m):
                        g_neg[r] += w_t[row, lo + r]
            if descending:
                for r in range(m):
                    pos_seen[r] += g_pos[r]
                    neg_seen[r] += g_neg[r]
                    seen = pos_seen[r] + neg_seen[r]
                    num[r] += g_pos[r] * pos_seen[r] / (seen if seen > 0 else 1.0)
            else:
                for r in range(m):
                    num[r] += g_pos[r] * (neg_seen[r] + 0.5 * g_neg[r])
                    pos_seen[r] += g_pos[r]
                    neg_seen[r] += g_neg[r]
            i = end
        out[0, lo:hi] = pos_seen
        out[1, lo:hi] = neg_seen
        out[2, lo:hi] = num
    return out


def _sums(pos: np.ndarray, score: np.ndarray, w_t: np.ndarray, descending: bool) -> np.ndarray:
    order = np.argsort(-score if descending else score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group_end = np.repeat(np.r_[starts[1:], len(s)], np.diff(np.r_[starts, len(s)]))
    return _ranked_sums(w_t, order.astype(np.int64), pos[order].astype(np.bool_), group_end.astype(np.int64),
                        descending)


def weighted_auc(pos: np.ndarray, score: np.ndarray, w_t: np.ndarray) -> np.ndarray:
    """ROC-AUC per replicate (Mann-Whitney, ties count one half); NaN without positives or negatives.
    ``w_t``: the weights transposed, (N, R), C-contiguous float64."""
    pos_w, neg_w, num = _sums(pos, score, w_t, descending=False)
    return _div(num, pos_w * neg_w, np.nan)


def weighted_average_precision(pos: np.ndarray, score: np.ndarray, w_t: np.ndarray) -> np.ndarray:
    """Average precision per replicate (scikit-learn's step-wise form, ties grouped); NaN without positives.
    ``w_t``: the weights transposed, (N, R), C-contiguous float64."""
    pos_w, _, num = _sums(pos, score, w_t, descending=True)
    return _div(num, pos_w, np.nan)


def replicate_metrics(y: np.ndarray, prob: np.ndarray, w: np.ndarray, target: int,
                      w_t: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every metric of ``diagnostic.METRIC_KEYS`` for each row of weights ``w`` (R, N); ``target`` = melanoma
    index; ``w_t`` = ``w.T`` as a C-contiguous array (pass it when many cells share the weights)."""
    w_t = np.ascontiguousarray(w.T, dtype=np.float64) if w_t is None else w_t
    n_classes = prob.shape[1]
    pred = prob.argmax(1)
    cells = np.zeros((len(y), n_classes * n_classes))
    cells[np.arange(len(y)), y * n_classes + pred] = 1.0
    out = confusion_metrics((w @ cells).reshape(-1, n_classes, n_classes), target)
    per_image = ((prob - np.eye(n_classes)[y]) ** 2).sum(1)
    out["brier"] = _div(w @ per_image, w.sum(1), np.nan)
    aucs = np.stack([weighted_auc(y == k, prob[:, k], w_t) for k in range(n_classes)])
    valid = ~np.isnan(aucs)
    out["roc_auc"] = _div(np.where(valid, aucs, 0.0).sum(0), valid.sum(0), np.nan)
    out["mel_roc_auc"] = aucs[target]
    out["mel_pr_auc"] = weighted_average_precision(y == target, prob[:, target], w_t)
    return out
