"""What the two classifying types, binary and multiclass, share."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from tasks.core.config import EvaluateParams, FeasibilityParams, MonitorParams
from tasks.core.ml.objectives.base import Kind, Objective, SignalSpec


def classifiers(xgboost: dict[str, str]) -> dict[str, Kind]:
    """The candidate classifiers, XGBoost told ``xgboost`` beside its parameters."""
    return {
        "logistic_regression": Kind("sklearn.linear_model.LogisticRegression", {"max_iter": 2000}),
        "random_forest": Kind("sklearn.ensemble.RandomForestClassifier", {"n_jobs": 2}),
        "xgboost": Kind("xgboost.XGBClassifier", {"tree_method": "hist", "n_jobs": 2, **xgboost}),
    }


class Classifier(Objective):
    """What the two classifying types share: the candidate classifiers, feasibility's quick
    classifier (its score: :meth:`signal_score`), and judging by a ranking metric's points
    (slices against ``evaluate.slice_roc_auc_floor``, the live drop against
    ``monitor.max_roc_auc_drop``)."""

    DASK_XGBOOST = "DaskXGBClassifier"
    UNJUDGEABLE = "of one class"
    QUICK_MODEL: ClassVar[dict[str, Any]] = {"max_iter": 50, "learning_rate": 0.15}
    """Feasibility's gradient-boosted classifier."""

    @abstractmethod
    def signal_score(self) -> tuple[str, str, str, Any, float]:
        """Feasibility's score: its name, its label, scikit-learn's scorer, the dummy's
        score (a number, or a function of the labels) and the too-good-to-be-true mark."""

    def signal(self, cfg: FeasibilityParams) -> SignalSpec:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold

        name, label, scoring, dummy, near_perfect = self.signal_score()
        return SignalSpec(
            metric=name,
            label=label,
            scoring=scoring,
            dummy=dummy,
            near_perfect=near_perfect,
            model=HistGradientBoostingClassifier(random_state=cfg.random_state, **self.QUICK_MODEL),
            cv=StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.random_state),
        )

    @abstractmethod
    def class_names(self) -> tuple[str, ...]:
        """Each class index's name, as a message names it."""

    def missing_classes(self, y_fit: np.ndarray) -> list[str]:
        present = set(np.unique(np.asarray(y_fit)).tolist())
        return [name for k, name in enumerate(self.class_names()) if k not in present]

    def worse_by(self, reference: float, found: float, name: str | None = None) -> float:
        judged = self.metric(name or self.FLOOR_METRIC)
        return judged.oriented(reference) - judged.oriented(found)

    def live_drop_limit(self, cfg: MonitorParams) -> float:
        return cfg.max_roc_auc_drop

    def slice_check(
        self, row: dict[str, Any], metrics: dict[str, float], cfg: EvaluateParams
    ) -> tuple[bool, str]:
        """The slice's ranking metric (:data:`FLOOR_METRIC`) at least
        ``evaluate.slice_roc_auc_floor``."""
        judged = self.metric(self.FLOOR_METRIC)
        return (
            row[judged.name] >= cfg.slice_roc_auc_floor,
            f"slice {row['column']}={row['value']} ({row['rows']} rows) {judged.label} "
            f"{row[judged.name]:.4f} vs floor {cfg.slice_roc_auc_floor}",
        )
