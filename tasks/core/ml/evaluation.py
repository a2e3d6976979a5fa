"""Evaluation helpers shared by the evaluate step and the promotion gate.

The paired bootstrap of a lift, and metrics per slice of a column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.core.metrics import Metric
from tasks.core.ml.objective import Objective


class Ranked:
    """Scores sorted once, so that the ROC-AUC or average precision of a bootstrap sample is a
    weighted sum over the sorted rows, linear in the rows, rather than a fresh sort each time.

    A bootstrap sample is given by ``counts``, how many times it drew each row; the result
    equals scikit-learn's on the resampled rows (ties count one half, thresholds at the
    distinct scores), up to rounding.
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
        ranked = np.asarray(scores, dtype=float)[self.order]
        self.positive = np.asarray(y)[self.order] == 1
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # tied scores

    def score(self, metric: str, counts: np.ndarray) -> float:
        """``metric`` (roc_auc or pr_auc) of the sample drawing each row ``counts`` times."""
        w = counts[self.order].astype(float)
        tp = np.add.reduceat(np.where(self.positive, w, 0.0), self.starts)  # per tied group,
        fp = np.add.reduceat(np.where(self.positive, 0.0, w), self.starts)  # highest score first
        pos, neg = tp.sum(), fp.sum()
        if metric == "roc_auc":  # a positive beats each negative scored lower, ties count half
            lower = neg - np.cumsum(fp)
            return float((tp * (lower + 0.5 * fp)).sum() / (pos * neg))
        ctp, seen = np.cumsum(tp), np.cumsum(tp + fp)
        precision = np.divide(ctp, seen, out=np.zeros_like(ctp), where=seen > 0)
        return float((tp / pos * precision).sum())


def paired_bootstrap_lift(
    y: np.ndarray,
    model: np.ndarray,
    baseline: np.ndarray,
    metric: Metric,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, float]:
    """Lift of the model over a baseline on the same resampled rows: point estimate and interval.

    Each resample draws ``len(y)`` rows with replacement; one that holds a single class is
    skipped. A ranked metric (ROC-AUC, PR-AUC) sorts both scores once (:class:`Ranked`), so
    the time is linear in the rows; any other is recomputed on each resample.
    """
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(y)
    ranked = (Ranked(y, model), Ranked(y, baseline)) if metric.ranked else None
    positive = np.asarray(y) == 1
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if ranked is not None:
            counts = np.bincount(idx, minlength=n)
            drawn = int(counts[positive].sum())
            if drawn in (0, n):
                continue
            diffs.append(
                ranked[0].score(metric.name, counts) - ranked[1].score(metric.name, counts)
            )
            continue
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(
            metric.oriented(metric(y[idx], model[idx]))
            - metric.oriented(metric(y[idx], baseline[idx]))
        )
    alpha = (1 - confidence) / 2
    return {
        "lift": metric.oriented(metric(y, model)) - metric.oriented(metric(y, baseline)),
        "lower": float(np.quantile(diffs, alpha)),
        "upper": float(np.quantile(diffs, 1 - alpha)),
    }


NUMERIC_GROUPS = 4
"""A numeric slice or sensitive column with many values is judged in this many ranges."""


def slice_groups(values: pd.Series, max_values: int = 10) -> dict[str, np.ndarray]:
    """Row positions of each value of a slice column (missing values are one slice).

    A numeric column with more than ``max_values`` distinct values (an age, an income) is
    cut into :data:`NUMERIC_GROUPS` ranges of about equal size, named by their bounds:
    groups of one value each would be too small to judge.
    """
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > max_values:
        ranges = pd.qcut(values, NUMERIC_GROUPS, duplicates="drop")
        return values.groupby(ranges.astype("string").fillna("<missing>")).indices
    return values.groupby(values.astype("string").fillna("<missing>")).indices


def column_slices(
    values: pd.Series, y: np.ndarray, proba: np.ndarray, min_rows: int, objective: Objective
) -> list[dict[str, Any]]:
    """The objective's summary metrics for each value of one slice column."""
    rows = []
    for value, idx in slice_groups(values).items():
        ys, ps = y[idx], proba[idx]
        both = objective.judgeable(ys)
        rows.append(
            {
                "column": str(values.name),
                "value": str(value),
                "rows": int(len(idx)),
                **objective.slice_facts(ys),
                **{m: objective.score(m, ys, ps) if both else None for m in objective.SUMMARY},
                "checked": bool(both and len(idx) >= min_rows),
            }
        )
    return rows
