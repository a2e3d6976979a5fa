"""The metric registry: every metric a problem type can be judged by, in one table.

A :class:`Metric` carries its name (the key in ``params.yaml``, ``reports/metrics.json`` and
the plots), how it is written for people, which way is better, what it is computed from
and the function. ``problem.primary_metric``, the KPI floors, tuning, model selection, the
evaluation gate, promotion and the monitoring estimate all look their metrics up here,
through the problem's objective (:mod:`tasks.core.ml.objective`).

This module sits at the bottom of the base (the typed config validates
``problem.primary_metric`` against it), so it imports scikit-learn only inside the
functions.

Binary (:data:`BINARY`), regression (:data:`REGRESSION`; scores are the predicted values)
and multiclass (:data:`MULTICLASS`; scores are one probability per class, a column each)
have their tables in :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Needs = Literal["scores", "decisions"]


@dataclass(frozen=True)
class Metric:
    """One metric of a problem type.

    Attributes
    ----------
    name : str
        Its key in ``params.yaml`` and the reports.
    label : str
        How people read it; ``{target_precision}`` and the like are filled from
        :meth:`describe`'s options.
    higher_is_better : bool
    compute : callable
        ``compute(y_true, scores, options) -> float``; ``options`` holds what some metrics
        need beyond the rows (``target_precision``).
    needs : {"scores", "decisions"}
        ``scores``: the model's scores (ranking metrics, losses); ``decisions``: the scores
        cut at 0.5 (the metric judges labels, not a ranking).
    ranked : bool
        The bootstrap computes it from one sort of the scores
        (:class:`tasks.core.ml.evaluation.Ranked`).
    reported : bool
        Part of the headline every evaluation reports, whatever the primary metric.
    options : tuple of str
        What it needs beyond the rows (``target_precision``); asked only when it is computed.
    not_selectable : str
        Empty when it may be ``problem.primary_metric``; else why not (shown to the user).
    """

    name: str
    label: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], float]
    needs: Needs = "scores"
    ranked: bool = False
    reported: bool = True
    options: tuple[str, ...] = ()
    not_selectable: str = ""

    @property
    def selectable(self) -> bool:
        """Whether it may be ``problem.primary_metric`` (select and tune models by)."""
        return not self.not_selectable

    def __call__(self, y_true: np.ndarray, scores: np.ndarray, **options: Any) -> float:
        """The metric of ``scores`` against ``y_true``."""
        return float(self.compute(np.asarray(y_true), np.asarray(scores), options))

    def oriented(self, value: float) -> float:
        """``value`` turned so that higher is better (a loss is negated)."""
        return value if self.higher_is_better else -value

    def describe(self, **options: Any) -> str:
        """The label with its options filled in (``recall at precision 0.5``)."""
        return self.label.format(**options)


def _roc_auc(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _pr_auc(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


def _brier(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y, s))


def _f1(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, s >= 0.5))


def recall_at_precision(y_true: np.ndarray, score: np.ndarray, precision: float) -> float:
    """Highest recall reachable with precision at least ``precision``."""
    from sklearn.metrics import precision_recall_curve

    p, r, _ = precision_recall_curve(y_true, score)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def _recall_at_precision(y: np.ndarray, s: np.ndarray, options: Mapping[str, Any]) -> float:
    return recall_at_precision(y, s, float(options.get("target_precision", 0.5)))


BINARY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", "ROC-AUC", True, _roc_auc, ranked=True),
        Metric("pr_auc", "PR-AUC", True, _pr_auc, ranked=True),
        Metric("brier", "Brier score", False, _brier),
        Metric(
            "recall_at_precision",
            "recall at precision {target_precision}",
            True,
            _recall_at_precision,
            options=("target_precision",),
            not_selectable="is measured at problem.kpis.target_precision, an operating point "
            "the KPIs set: it is a floor (problem.kpis.recall_at_target_precision_min), not a "
            "metric to select and tune models by",
        ),
        Metric("f1", "F1 at 0.5", True, _f1, needs="decisions", reported=False),
    )
}
"""A yes/no outcome; the scores are the positive class's probability."""


def _rmse(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(s, float)) ** 2)))


def _mae(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(s, float))))


def _r2(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, s))


def _mape(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    y = np.asarray(y, float)
    if len(y) == 0 or (y <= 0).any():
        return float("nan")  # a percentage of a value at or below zero means nothing
    return float(np.mean(np.abs(y - np.asarray(s, float)) / y))


REGRESSION: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("rmse", "RMSE", False, _rmse),
        Metric("mae", "MAE", False, _mae),
        Metric("r2", "R²", True, _r2),
        Metric("mape", "MAPE", False, _mape, reported=False),
    )
}
"""A number; the scores are the predicted values. MAPE only when the target is positive
(``problem.primary_metric: mape`` is refused at step 1 otherwise)."""


def _classes(s: np.ndarray) -> list[int]:
    return list(range(np.asarray(s).shape[1]))


def _known(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose label is a class of the model (-1: a label it never saw, as a later
    split can hold: not scored)."""
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    return (y, s) if (y >= 0).all() else (y[y >= 0], s[y >= 0])


def _log_loss(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import log_loss

    y, s = _known(y, s)  # float32 probabilities (XGBoost's) summed to one again below
    return float(log_loss(y, s / s.sum(axis=1, keepdims=True), labels=_classes(s)))


def _macro_f1(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    from sklearn.metrics import f1_score

    y, s = _known(y, s)
    return float(f1_score(y, np.argmax(s, axis=1), labels=_classes(s), average="macro"))


def _accuracy(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    y, s = _known(y, s)
    return float(np.mean(y == np.argmax(s, axis=1)))


def _roc_auc_ovr(y: np.ndarray, s: np.ndarray, _: Mapping[str, Any]) -> float:
    """The mean of each class's ROC-AUC against the rest, over the classes present with
    some rows of another class (a resample or a slice may lack a class)."""
    from sklearn.metrics import roc_auc_score

    y, s = _known(y, s)
    found = [roc_auc_score(y == k, s[:, k]) for k in _classes(s) if 0 < np.sum(y == k) < len(y)]
    return float(np.mean(found)) if found else float("nan")


MULTICLASS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("log_loss", "log loss", False, _log_loss),
        Metric("macro_f1", "macro-F1", True, _macro_f1),
        Metric("accuracy", "accuracy", True, _accuracy),
        Metric("roc_auc_ovr", "ROC-AUC (one vs rest)", True, _roc_auc_ovr),
    )
}
"""One of several classes; the scores are one probability per class (a column each, in the
order of the classes recorded with the model) and the labels the class's index. The
decision-based metrics take the most probable class."""

REGISTRY: dict[str, dict[str, Metric]] = {
    "binary": BINARY,
    "regression": REGRESSION,
    "multiclass": MULTICLASS,
}
"""Each problem type's metrics, by name."""


def metrics_for(problem_type: str) -> dict[str, Metric]:
    """The metrics of ``problem_type`` (``binary``), by name."""
    try:
        return REGISTRY[problem_type]
    except KeyError:
        raise ValueError(
            f"problem type '{problem_type}' has no metrics; known: {sorted(REGISTRY)}"
        ) from None


def metric(name: str, problem_type: str = "binary") -> Metric:
    """The metric ``name`` of ``problem_type``, or an error that lists the known ones."""
    table = metrics_for(problem_type)
    if name not in table:
        raise ValueError(
            f"'{name}' is not a metric of a {problem_type} problem; known: {', '.join(table)}"
        )
    return table[name]
