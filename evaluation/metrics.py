"""Metrics of a vote against crowd labels, all from scikit-learn.

Per category: precision, recall, F1 (of the hard vote) and ROC-AUC (of the soft vote); their
means; exact match (all six labels right); and good-vs-bad tip, where "bad" means Bad/blurry or
Tip change: a frame is bad if either label is set, and its score is the larger of the two soft
votes.

Example:
    >>> m = evaluate(vote, y_true)         # doctest: +SKIP
    >>> m["macro_roc_auc"], m["exact_match"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

BAD_TIP_CATEGORIES = ("Tip change", "Bad/blurry")


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    # ROC-AUC is undefined when a held-out set has only one class: report NaN, not a crash.
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def _nanmean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(
    hard: np.ndarray,
    soft: np.ndarray,
    y_true: np.ndarray,
    categories: Sequence[str],
    *,
    agreement: np.ndarray | None = None,
) -> dict:
    """Metrics dict: ``n``, ``exact_match``, ``macro_roc_auc``, ``mean_precision``, ... .

    ``hard`` (N, C) 0/1 votes, ``soft`` (N, C) scores, ``y_true`` (N, C) 0/1 labels.
    """
    hard = np.asarray(hard).astype(int)
    soft = np.asarray(soft, dtype=float)
    y = np.asarray(y_true).astype(int)
    if not (hard.shape == soft.shape == y.shape) or y.ndim != 2 or y.shape[1] != len(categories):
        raise ValueError(
            f"evaluate: expected hard, soft and y_true of shape (N, {len(categories)}), got "
            f"{hard.shape}, {soft.shape}, {y.shape}"
        )
    p, r, f1, support = precision_recall_fscore_support(y, hard, average=None, zero_division=0)
    per = {}
    for i, c in enumerate(categories):
        per[c] = {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f1[i]),
            "roc_auc": _auc(y[:, i], soft[:, i]),
            "support": int(support[i]),
            "predicted_positive": int(hard[:, i].sum()),
        }
        if agreement is not None:
            per[c]["mean_agreement"] = float(np.mean(agreement[:, i]))
    out = {
        "n": len(y),
        "exact_match": float(accuracy_score(y, hard)) if len(y) else float("nan"),
        "macro_roc_auc": _nanmean(v["roc_auc"] for v in per.values()),
        "mean_precision": float(np.mean(p)),
        "mean_recall": float(np.mean(r)),
        "mean_f1": float(np.mean(f1)),
        "per_category": per,
    }
    bad_idx = [i for i, c in enumerate(categories) if c in BAD_TIP_CATEGORIES]
    if bad_idx:
        yb = y[:, bad_idx].max(axis=1)
        hb = hard[:, bad_idx].max(axis=1)
        sb = soft[:, bad_idx].max(axis=1)
        pb, rb, fb, _ = precision_recall_fscore_support(yb, hb, average="binary", zero_division=0)
        out["good_vs_bad"] = {
            "precision": float(pb),
            "recall": float(rb),
            "f1": float(fb),
            "roc_auc": _auc(yb, sb),
            "support_bad": int(yb.sum()),
        }
    return out


def majority_class_baseline(y_true: np.ndarray) -> float:
    """Exact match of always guessing the most common label set (e.g. "Dimers only")."""
    y = np.asarray(y_true).astype(int)
    if len(y) == 0:
        return float("nan")
    _, counts = np.unique(y, axis=0, return_counts=True)
    return float(counts.max() / len(y))
