"""The binary objective: a yes/no outcome."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import EvaluateParams, FairnessLimits, FeasibilityParams
from tasks.core.data.labels import LabelError, binarize_target, observed_labels
from tasks.core.metrics import Metric
from tasks.core.ml.baselines import rule_scores
from tasks.core.ml.costs import best_threshold, expected_cost
from tasks.core.ml.objectives.base import Floor, TargetError, threshold_check
from tasks.core.ml.objectives.classifier import Classifier, classifiers


class Binary(Classifier):
    """A yes/no outcome: the positive class's probability, cut at a threshold."""

    type = "binary"

    SUMMARY = ("roc_auc", "pr_auc")
    """The short list scored for each baseline, each slice and each tuning trial (a slice of
    a single class has neither: left unjudged)."""

    FLOOR_METRIC = "roc_auc"
    """The metric a slice's floor (``evaluate.slice_roc_auc_floor``) is judged on."""

    IMPORTANCE_SCORER = "roc_auc"
    """scikit-learn's scorer for permutation importance (the drop in this metric)."""

    ORACLE_COLUMN = "oracle_proba"

    XGBOOST = {"eval_metric": "logloss"}
    ESTIMATORS = classifiers(XGBOOST)

    def signal_score(self) -> tuple[str, str, str, Any, float]:
        """ROC-AUC: a constant score (the majority-class dummy) has 0.5."""
        return "roc_auc", "ROC-AUC", "roc_auc", 0.5, 0.99

    STORED_VALUES = (0.0, 1.0)

    @property
    def options(self) -> dict[str, Any]:
        return {"target_precision": self.problem.kpis.target_precision}

    @property
    def lift_metric(self) -> Metric:
        """The metric the gate's lift over the baselines is judged on: the primary one when
        it ranks (a baseline is a ranking, not a probability), else ROC-AUC."""
        return self.primary if self.primary.ranked else self.metric("roc_auc")

    def floors(self) -> list[Floor]:
        k = self.problem.kpis
        return [
            Floor(self.metric("roc_auc"), "roc_auc_min", k.roc_auc_min, "ROC-AUC"),
            Floor(self.metric("pr_auc"), "pr_auc_min", k.pr_auc_min, "PR-AUC"),
            Floor(
                self.metric("recall_at_precision"),
                "recall_at_target_precision_min",
                k.recall_at_target_precision_min,
                self.metric("recall_at_precision").describe(**self.options),
            ),
        ]

    def read_target(self, values: pd.Series) -> pd.Series:
        return binarize_target(values, self.problem.positive_label)

    def check_target(self, values: pd.Series) -> pd.Series:
        cfg = self.problem
        labels = observed_labels(values)
        if len(labels) < 2:
            raise TargetError(
                "two classes",
                f"'{cfg.target}' holds one class only ({labels[:10]}): nothing to predict",
            )
        if len(labels) > 2:
            raise TargetError(
                "two classes",
                f"'{cfg.target}' holds {len(labels)} classes ({labels[:10]}); this workflow "
                "predicts a binary target: map the classes to two in the export (or a column "
                "derived from it), then set problem.target and problem.positive_label",
            )
        try:
            y = self.read_target(values)
        except LabelError as exc:
            raise TargetError("positive label", str(exc)) from None
        if not (y == 1).any():
            raise TargetError(
                "positive label",
                f"problem.positive_label {cfg.positive_label!r} never occurs in '{cfg.target}'; "
                f"labels seen: {labels[:10]}",
            )
        if not (y == 0).any():
            raise TargetError(
                "two classes",
                f"'{cfg.target}' holds one class only ({labels[:10]}): nothing to predict",
            )
        return y

    def class_names(self) -> tuple[str, ...]:
        """1: the positive label (named by ``problem.positive_label``, which a step that
        only fits models does not read)."""
        return "0", "1"

    def labels(self, values: pd.Series | np.ndarray) -> np.ndarray:
        return np.asarray(values).astype(int)

    def label_error(self, value: Any) -> str | None:
        if isinstance(value, int) and value in (0, 1):
            return None
        positive = self.problem.positive_label
        return f"a label of a yes/no problem is 0 or 1 (1: {positive!r}), not {value!r}"

    def stored(self, y: pd.Series) -> pd.Series:
        return y.astype("int8")

    def clean_facts(self, y: pd.Series) -> dict[str, float]:
        rows = len(y)
        return {"positive_rate": round(int(y.sum()) / rows, 6) if rows else float("nan")}

    def target_facts(self, y: pd.Series) -> dict[str, Any]:
        labelled = int(y.notna().sum())
        return {
            "positive_rows": int((y == 1).sum()),
            "positive_rate": float((y == 1).sum() / labelled),
        }

    def describe_target(self) -> str:
        return f"(positive label `{self.problem.positive_label}`)"

    def label_checks(self, y: pd.Series, cfg: FeasibilityParams) -> list[dict[str, Any]]:
        minority = int(min((y == 1).sum(), (y == 0).sum()))
        return [threshold_check("minority-class rows", minority, cfg.min_minority_rows, ">=")]

    def feasibility_facts(self, y: pd.Series) -> dict[str, float]:
        return {"positive_rate": float((y == 1).sum() / max(int(y.notna().sum()), 1))}

    def target_risks(self, facts: dict[str, float]) -> list[str]:
        rate = facts["positive_rate"]
        if rate < 0.05 or rate > 0.95:
            return [f"strong class imbalance ({rate:.1%} positive): watch PR-AUC and calibration"]
        return []

    def describe_facts(self, facts: dict[str, Any]) -> str:
        return f"{facts['positive_rate']:.1%} positive"

    def linear_terms(self, model: Any) -> tuple[np.ndarray, float] | None:
        coef = getattr(model, "coef_", None)
        if coef is None or np.ndim(coef) != 2 or len(coef) != 1:  # one margin: two classes
            return None
        return np.asarray(coef[0], dtype=float), float(model.intercept_[0])

    def scores(self, model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1], dtype=float)

    def link(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(margin, -700.0, 700.0)))

    def decide(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        return (np.asarray(scores) >= threshold).astype(int)

    def answer(self, score: float, threshold: float | None) -> dict[str, Any]:
        return {"probability": round(score, 6), "decision": int(score >= threshold)}

    def output_columns(self, scores: np.ndarray, threshold: float | None) -> dict[str, np.ndarray]:
        return {"probability": scores, "decision": self.decide(scores, threshold)}

    def logged_decisions(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        return self.decide(scores, threshold)

    def decision_rule(
        self, y_valid: np.ndarray, scores: np.ndarray, cfg: EvaluateParams
    ) -> tuple[float, float]:
        """The threshold with the lowest expected cost (``evaluate.cost``) on validation,
        and that cost."""
        return best_threshold(y_valid, scores, cfg.cost)

    def expected_cost(
        self, y: np.ndarray, scores: np.ndarray, threshold: float, cfg: EvaluateParams
    ) -> float:
        """Mean cost per row of the decisions at ``threshold``."""
        return expected_cost(y, scores, threshold, cfg.cost)

    def strata(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y)

    def judgeable(self, y: np.ndarray) -> bool:
        """Both classes among ``y`` (a ranking metric needs both)."""
        return bool(len(y)) and np.min(y) != np.max(y)

    def baseline_scores(
        self, frame: pd.DataFrame, train: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """The majority class and the rule's ranking (neither learns from ``train``)."""
        out: dict[str, np.ndarray] = {}
        if self.problem.baseline.majority_class:
            out["majority_class"] = np.zeros(len(frame))
        rule = self.problem.baseline.rule
        if rule is not None and rule.column in frame:
            out[f"rule:{rule.column}"] = rule_scores(frame[rule.column], rule)
        return out

    def slice_facts(self, y: np.ndarray) -> dict[str, float]:
        return {"positive_rate": float(y.mean())}

    def group_figures(self, y: np.ndarray, decision: np.ndarray) -> dict[str, float]:
        return {
            "tpr": float(decision[y == 1].mean()) if (y == 1).any() else 0.0,
            "fpr": float(decision[y == 0].mean()) if (y == 0).any() else 0.0,
            "selection_rate": float(decision.mean()),
        }

    def fairness_gaps(self, groups: list[dict[str, Any]]) -> dict[str, float]:
        rates = [v["selection_rate"] for v in groups]
        return {
            "tpr_gap": max(v["tpr"] for v in groups) - min(v["tpr"] for v in groups),
            "fpr_gap": max(v["fpr"] for v in groups) - min(v["fpr"] for v in groups),
            "selection_rate_ratio": min(rates) / max(rates) if max(rates) > 0 else 1.0,
        }

    def fairness_checks(
        self, judged: dict[str, Any], limits: FairnessLimits
    ) -> list[tuple[bool, str]]:
        f, lim = judged, limits
        return [
            (
                f["tpr_gap"] <= lim.max_tpr_gap,
                f"{f['column']}: TPR gap {f['tpr_gap']:.4f} vs limit {lim.max_tpr_gap}",
            ),
            (
                f["fpr_gap"] <= lim.max_fpr_gap,
                f"{f['column']}: FPR gap {f['fpr_gap']:.4f} vs limit {lim.max_fpr_gap}",
            ),
            (
                f["selection_rate_ratio"] >= lim.min_selection_rate_ratio,
                f"{f['column']}: selection-rate ratio {f['selection_rate_ratio']:.4f} vs "
                f"minimum {lim.min_selection_rate_ratio}",
            ),
        ]
