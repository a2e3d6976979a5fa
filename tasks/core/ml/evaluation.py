"""Evaluation helpers shared by the evaluate step and the promotion gate.

The paired bootstrap of a lift, and metrics per slice of a column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from tasks.core.ml.models import metric_fn, oriented


def paired_bootstrap_lift(
    y: np.ndarray,
    model: np.ndarray,
    baseline: np.ndarray,
    metric: str,
    samples: int,
    confidence: float,
    seed: int,
) -> dict[str, float]:
    """Lift of the model over a baseline on the same resampled rows: point estimate and interval."""
    score = metric_fn(metric)
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(y)
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(
            oriented(metric, score(y[idx], model[idx]))
            - oriented(metric, score(y[idx], baseline[idx]))
        )
    alpha = (1 - confidence) / 2
    return {
        "lift": oriented(metric, score(y, model)) - oriented(metric, score(y, baseline)),
        "lower": float(np.quantile(diffs, alpha)),
        "upper": float(np.quantile(diffs, 1 - alpha)),
    }


def slice_groups(values: pd.Series) -> dict[str, np.ndarray]:
    """Row positions of each value of a slice column (missing values are one slice)."""
    return values.groupby(values.astype("string").fillna("<missing>")).indices


def column_slices(
    values: pd.Series, y: np.ndarray, proba: np.ndarray, min_rows: int
) -> list[dict[str, Any]]:
    """ROC-AUC and PR-AUC for each value of one slice column."""
    rows = []
    for value, idx in slice_groups(values).items():
        ys, ps = y[idx], proba[idx]
        both = ys.min() != ys.max()
        rows.append(
            {
                "column": str(values.name),
                "value": str(value),
                "rows": int(len(idx)),
                "positive_rate": float(ys.mean()),
                "roc_auc": float(roc_auc_score(ys, ps)) if both else None,
                "pr_auc": metric_fn("pr_auc")(ys, ps) if both else None,
                "checked": bool(both and len(idx) >= min_rows),
            }
        )
    return rows
