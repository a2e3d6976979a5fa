"""The objective: everything that depends on the problem type, behind one interface.

Steps, serving and monitoring ask the problem's objective (:func:`objective_for`) and
never slice a class index or name a metric themselves. An objective answers:

- **the target**: how a delivered label column becomes what the model learns
  (:meth:`Objective.read_target`) and how a split file's labels are read (:meth:`labels`);
- **the estimators**: the candidate model of each kind (:meth:`estimator`, and
  :meth:`dask_xgboost` across a Dask cluster), a linear model's weights
  (:meth:`linear_terms`) and what the compiled serving path applies to its margin
  (:meth:`link`);
- **the scores and the decision**: what a fitted model gives for each row
  (:meth:`scores`) and what is decided from it (:meth:`decide`);
- **the metrics**: the registry of the type (:mod:`tasks.core.metrics`), the primary one,
  the headline every evaluation reports, those scored for the baselines and per slice, and
  the KPI floors of ``problem.kpis`` (:meth:`floors`);
- **the baselines** (:meth:`baseline_scores`) and **how a split is stratified**
  (:meth:`strata`);
- **slices and fairness**: what a slice reports and how the gate judges it
  (:meth:`slice_facts`, :meth:`slice_check`), a group's figures, the gaps between groups
  and their checks (:meth:`group_figures`, :meth:`fairness_gaps`, :meth:`fairness_checks`);
- **how the target is read and stored** by clean (:meth:`read_target`, :meth:`stored`,
  :meth:`clean_facts`);
- **what the brief and feasibility say of the target**: its facts and risks
  (:meth:`target_facts`, :meth:`feasibility_facts`, :meth:`target_risks`), the type's label
  checks (:meth:`label_checks`) and feasibility's quick model (:meth:`signal`);
- **what a run draws**: the columns of the tuning-trials plot (:data:`TRIALS_Y`).

The types are binary (:class:`Binary`), regression (:class:`Regression`) and multiclass
(:class:`Multiclass`): its classes are the training split's sorted labels, bound with
:meth:`Objective.for_labels` (or given to :func:`objective_for` from the model's record);
``scores`` is the whole ``predict_proba`` matrix (one column per class); ``decide`` is the
arg-max, or the least expected cost under ``evaluate.cost_matrix``; the baseline is the
class prior; ``link`` is the soft-max; the monitoring estimate is one-vs-rest CBPE.

Each is a subclass registered in :data:`OBJECTIVES` under its ``problem.type``.

Tables keyed by the type, beside their code: the figures and ``dvc plots`` files
(:data:`tasks.core.ml.report.PLOTS`, ``PLOT_FILES``) and the leakage audit's single-feature
check (:data:`tasks.core.quality.leakage.SINGLE_FEATURE`). The performance estimate before
labels is a module of each type in :mod:`tasks.monitor` (binary: CBPE,
:mod:`tasks.monitor.estimate`; regression: direct loss estimation,
:mod:`tasks.monitor.loss_estimate`; multiclass: :mod:`tasks.monitor.class_estimate`),
chosen by the monitoring flow.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tasks.core.config import (
    MODEL_KINDS,
    Bounds,
    EvaluateParams,
    FairnessLimits,
    FeasibilityParams,
    MonitorParams,
    ProblemParams,
)
from tasks.core.data.labels import LabelError, binarize_target, observed_labels
from tasks.core.data.schema import parse_numbers
from tasks.core.metrics import Metric, metric, metrics_for
from tasks.core.ml.baselines import rule_scores
from tasks.core.ml.costs import best_threshold, expected_cost

TRIALS_Y = "validation_score"
"""The tuning-trials column that holds each trial's primary metric on validation (the y of
the ``dvc.yaml`` plot, whatever the metric is called; ``metric`` names it)."""


class TargetError(ValueError):
    """The target column cannot be what the problem type needs; ``check`` names the check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Floor:
    """A KPI bound from ``problem.kpis``: ``metric`` must be at least (or at most) ``value``."""

    metric: Metric
    key: str
    value: float
    label: str

    def met(self, found: float) -> bool:
        """Whether ``found`` is on the good side of the bound."""
        return found >= self.value if self.metric.higher_is_better else found <= self.value


@dataclass(frozen=True)
class SignalSpec:
    """How feasibility's signal check runs for a problem type (:mod:`tasks.core.ml.signal`)."""

    metric: str
    """The score's name in ``reports/feasibility.json`` (``cv_<metric>``, ``dummy_<metric>``)."""
    label: str
    scoring: str
    """scikit-learn's scorer, cross-validated and permutation-tested."""
    dummy: float | Callable[[np.ndarray], float]
    """A constant model's score, or, from the labels, the class prior's."""
    near_perfect: float
    """Above this, the quick model is too good to be true (a leaking column?)."""
    model: Any
    """The quick model, unfitted."""
    cv: Any
    """The folds."""


class Objective(ABC):
    """The problem type's answers; see the module docstring for each."""

    type: ClassVar[str]
    SUMMARY: ClassVar[tuple[str, ...]]
    """The short list of metrics scored for each baseline, each slice and each trial."""
    FLOOR_METRIC: ClassVar[str]
    """The metric a slice's floor, the live-performance drop and the shadow are judged on."""
    IMPORTANCE_SCORER: ClassVar[str]
    """scikit-learn's scorer for permutation importance."""
    ORACLE_COLUMN: ClassVar[str]
    """The simulator's column of the truth the model estimates (the oracle's score)."""
    STORED_VALUES: ClassVar[tuple[float, ...] | None]
    """The values the cleaned target may take (a proposed suite checks them); None: a number
    in the range the first snapshot holds."""

    classes: tuple[str, ...] | None = None
    """The class of each score column (multiclass; None for the other types)."""
    HAS_CLASSES: ClassVar[bool] = False
    """Whether the objective needs its classes bound (:meth:`for_labels`) to read labels."""
    COST_KEY: ClassVar[str | None] = "evaluate.cost"
    """The ``params.yaml`` key of the decisions' costs (None: a type without decisions)."""

    def __init__(self, problem: ProblemParams, classes: list[str] | None = None) -> None:
        self.problem = problem
        self.metrics: dict[str, Metric] = metrics_for(self.type)

    def for_labels(self, y: pd.Series) -> Objective:
        """This objective with its classes taken from the read target ``y`` (the training
        split's, or the data's before a split); itself for a type without classes."""
        return self

    def unseen(self, values: pd.Series | np.ndarray) -> dict[str, int]:
        """Labels among ``values`` the model has no class for, with their rows (multiclass:
        a class that arrived after training; none for the other types)."""
        return {}

    def per_class(self, y: np.ndarray, decision: np.ndarray) -> dict[str, dict[str, float]] | None:
        """Each class's precision, recall, F1 and rows of the decisions (multiclass; None for
        the others)."""
        return None

    # -- the prediction log, as monitoring reads it
    LOG_HOLDS_SCORES: ClassVar[bool] = True
    """Whether the prediction log's ``score`` (and ``shadow_score``) is the whole score
    (multiclass: the log keeps the top probability; monitoring recomputes each class's from
    the logged inputs, :func:`tasks.monitor.checks.with_class_scores`, and judges no shadow)."""

    def score_columns(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """The scores as named columns (multiclass: ``prediction_<class>`` each)."""
        return {"prediction": scores}

    def window_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's scores of logged predictions, as the metrics take them."""
        return frame["score"].to_numpy(dtype=float)

    def window_predictions(self, frame: pd.DataFrame) -> pd.Series:
        """What drift compares with the reference sample's ``prediction``: the score
        (multiclass: the decided class)."""
        return frame["score"]

    def reference_columns(self, scores: np.ndarray, threshold: Any) -> dict[str, np.ndarray]:
        """The columns the monitoring reference sample keeps of the model's scores (one
        ``prediction``; multiclass: the decided class and a ``prediction_<class>`` each)."""
        return {"prediction": scores}

    def oracle(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The simulator's true scores of ``frame``'s rows (its oracle columns), or None when
        they are not all there."""
        column = self.ORACLE_COLUMN
        if column not in frame or frame[column].isna().any():
            return None
        return frame[column].to_numpy()

    # -- metrics
    @property
    def primary(self) -> Metric:
        """``problem.primary_metric``."""
        return metric(self.problem.primary_metric, self.type)

    def metric(self, name: str) -> Metric:
        """The metric ``name`` of this type."""
        return metric(name, self.type)

    @property
    def options(self) -> dict[str, Any]:
        """What some metrics need beyond the rows (the KPI target precision)."""
        return {}

    def score(self, name: str, y_true: np.ndarray, scores: np.ndarray) -> float:
        """Metric ``name`` of ``scores`` against ``y_true``."""
        found = self.metric(name)
        return found(y_true, scores, **self.options_of(found))

    def options_of(self, found: Metric) -> dict[str, Any]:
        """The options ``found`` needs (read from params only when it needs them)."""
        return {k: self.options[k] for k in found.options} if found.options else {}

    def headline(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Every reported metric of the type, in the registry's order."""
        return {
            name: m(y_true, scores, **self.options_of(m))
            for name, m in self.metrics.items()
            if m.reported
        }

    @abstractmethod
    def floors(self) -> list[Floor]:
        """The KPI bounds of ``problem.kpis`` (each metric's floor or ceiling)."""

    @property
    @abstractmethod
    def lift_metric(self) -> Metric:
        """The metric the gate's lift over the baselines is judged on."""

    # -- the target, the model, its scores and the decision
    @abstractmethod
    def read_target(self, values: pd.Series) -> pd.Series:
        """The delivered label column as the model learns it (missing stays missing)."""

    @abstractmethod
    def check_target(self, values: pd.Series) -> pd.Series:
        """:meth:`read_target`, after checking the column is a target of this type.

        Raises
        ------
        TargetError
            Naming the check and the ``params.yaml`` key to fix.
        """

    @abstractmethod
    def labels(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """A split file's (already read) target column as the metrics take it."""

    @abstractmethod
    def label_error(self, value: Any) -> str | None:
        """Why ``value`` cannot be the ground truth of one prediction (``/feedback``), or
        None when it can."""

    def label_value(self, value: Any) -> float:
        """A ground truth :meth:`label_error` accepted, as the prediction log stores it (a
        number; multiclass: the class's index)."""
        return float(value)

    @abstractmethod
    def signal(self, cfg: FeasibilityParams) -> SignalSpec:
        """Feasibility's quick model, its folds and its score."""

    @abstractmethod
    def label_checks(self, y: pd.Series, cfg: FeasibilityParams) -> list[dict[str, Any]]:
        """Feasibility's checks of the read target beyond the labelled rows' count."""

    @abstractmethod
    def feasibility_facts(self, y: pd.Series) -> dict[str, float]:
        """The target's figures in ``reports/feasibility.json`` (binary: the positive rate)."""

    @abstractmethod
    def target_risks(self, facts: dict[str, float]) -> list[str]:
        """Risks of the target to name in the feasibility report."""

    @abstractmethod
    def stored(self, y: pd.Series) -> pd.Series:
        """The read target of labelled rows as the cleaned table stores it."""

    @abstractmethod
    def clean_facts(self, y: pd.Series) -> dict[str, float]:
        """The cleaned target's figures in ``reports/clean.json`` (binary: positive rate)."""

    @abstractmethod
    def target_facts(self, y: pd.Series) -> dict[str, Any]:
        """Facts about the read target column (missing: unlabelled) for ``problem.json``."""

    @abstractmethod
    def describe_target(self) -> str:
        """What the brief says after the target's name (binary: its positive label)."""

    @abstractmethod
    def describe_facts(self, facts: dict[str, Any]) -> str:
        """The brief's words for :meth:`target_facts` (binary: the positive share)."""

    @abstractmethod
    def estimator(self, kind: str, params: dict[str, Any], random_state: int) -> Any:
        """The unfitted model of ``kind`` with ``params``."""

    @abstractmethod
    def dask_xgboost(
        self, config: dict[str, Any], random_state: int, early_stopping_rounds: int
    ) -> Any:
        """The ``xgboost.dask`` model of this type, trained across the Dask workers."""

    @abstractmethod
    def linear_terms(self, model: Any) -> tuple[np.ndarray, float] | None:
        """A fitted linear model's weights and intercept on the margin :meth:`link` turns
        into scores (the compiled serving path, explanations); None if not one of this type."""

    @abstractmethod
    def scores(self, model: Any, X: Any) -> np.ndarray:
        """What a fitted model (a pipeline or a bare estimator) gives for each row of ``X``."""

    @abstractmethod
    def link(self, margin: np.ndarray) -> np.ndarray:
        """A linear model's margin turned into scores (the compiled serving path)."""

    @abstractmethod
    def decide(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """The decision for each row."""

    @abstractmethod
    def answer(self, score: float, threshold: float | None) -> dict[str, Any]:
        """One row's answer from ``/predict`` (binary: its probability and decision)."""

    @abstractmethod
    def output_columns(self, scores: np.ndarray, threshold: float | None) -> dict[str, np.ndarray]:
        """The columns ``make score`` writes for the rows (binary: probability, decision)."""

    @abstractmethod
    def logged_decisions(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        """The prediction log's decision per row (0/1; 0 for a type without a decision;
        multiclass: the class index)."""

    def logged_scores(self, scores: Any) -> Any:
        """The prediction log's score per row (a number each: the scores themselves;
        multiclass: the predicted class's probability)."""
        return scores

    @abstractmethod
    def decision_rule(
        self, y_valid: np.ndarray, scores: np.ndarray, cfg: EvaluateParams
    ) -> tuple[Any, float | None]:
        """The decision's parameter chosen on validation (binary: a threshold from
        ``evaluate.cost``; multiclass: ``evaluate.cost_matrix`` in the classes' order), and
        its expected cost per row (None without costs). Stored as the model's ``threshold``."""

    @abstractmethod
    def expected_cost(
        self, y: np.ndarray, scores: np.ndarray, threshold: Any, cfg: EvaluateParams
    ) -> float | None:
        """Mean cost per row of the decisions (None without costs)."""

    def rule_fields(self, threshold: Any) -> dict[str, Any]:
        """What ``/predict`` says of the decision rule beside the answers."""
        return {} if threshold is None else {"threshold": threshold}

    def describe_rule(self, threshold: Any) -> tuple[str, str] | None:
        """The model card's row for the decision rule: ``(name, value)``; None: no rule."""
        if threshold is None:
            return None
        return "Decision threshold", f"{threshold} (lowest expected cost on validation)"

    @abstractmethod
    def strata(self, y: np.ndarray) -> np.ndarray:
        """The values a split and the cross-validation folds stratify on."""

    @abstractmethod
    def judgeable(self, y: np.ndarray) -> bool:
        """Whether the metrics can judge rows with labels ``y`` (a slice, a resample)."""

    @abstractmethod
    def baseline_scores(
        self, frame: pd.DataFrame, train: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """Scores of the configured baselines on ``frame``'s rows, fitted on ``train``'s
        (the target and the rule's column; ``frame``'s own rows when not given)."""

    # -- slices and fairness (tasks.core.ml.gate)
    # -- monitoring (tasks.monitor)
    @abstractmethod
    def worse_by(self, reference: float, found: float, name: str | None = None) -> float:
        """How much worse ``found`` is than ``reference`` on metric ``name`` (default
        :data:`FLOOR_METRIC`), in the units of :meth:`live_drop_limit` and of promotion's
        ``slice_tolerance`` (binary: the metric's points)."""

    @abstractmethod
    def live_drop_limit(self, cfg: MonitorParams) -> float:
        """The live figure's :meth:`worse_by` the test figure that alerts."""

    @abstractmethod
    def slice_facts(self, y: np.ndarray) -> dict[str, float]:
        """What a slice's row in the evaluation says of its labels (binary: positive rate)."""

    @abstractmethod
    def slice_check(
        self, row: dict[str, Any], metrics: dict[str, float], cfg: EvaluateParams
    ) -> tuple[bool, str]:
        """The gate's judgement of one judged slice (``row``) against the whole (``metrics``)."""

    @abstractmethod
    def group_figures(self, y: np.ndarray, decision: np.ndarray) -> dict[str, float]:
        """A fairness group's figures (binary: TPR, FPR and selection rate)."""

    @abstractmethod
    def fairness_gaps(self, groups: list[dict[str, Any]]) -> dict[str, float]:
        """The gaps between a sensitive column's groups (each from :meth:`group_figures`)."""

    @abstractmethod
    def fairness_checks(
        self, judged: dict[str, Any], limits: FairnessLimits
    ) -> list[tuple[bool, str]]:
        """The gate's checks of one sensitive column's gaps: ``(passed, reason)`` each."""


def _shares(y: np.ndarray) -> np.ndarray:
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    return counts / counts.sum()


def prior_neg_log_loss(y: np.ndarray) -> float:
    """The class prior's negated log loss on labels ``y`` (minus their entropy)."""
    p = _shares(y)
    return float(np.sum(p * np.log(p)))


def prior_macro_f1(y: np.ndarray) -> float:
    """The macro-F1 of always answering the most frequent class of ``y``."""
    p = _shares(y)
    return float(2 * p.max() / (1 + p.max()) / len(p))


def prior_accuracy(y: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class of ``y``."""
    return float(_shares(y).max())


RULE_PRIOR_ROWS = 10
"""A multiclass rule's group counts as this many rows of the class prior besides its own."""


def rule_groups(fit_on: pd.Series, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The group of each row of a rule's column, for the rows it is fitted on and for
    ``values``: the value itself (missing: its own group), or for numbers with more than ten
    values, which of five quantile ranges of ``fit_on`` it falls in."""
    numeric = pd.api.types.is_numeric_dtype(fit_on) and not pd.api.types.is_bool_dtype(fit_on)
    if numeric and fit_on.nunique() > 10:
        edges = np.unique(np.nanquantile(fit_on.to_numpy(float), [0.2, 0.4, 0.6, 0.8]))

        def cut(v: pd.Series) -> np.ndarray:
            x = pd.to_numeric(v, errors="coerce").to_numpy(float)
            return np.where(np.isnan(x), -1, np.searchsorted(edges, x, side="right"))

        return cut(fit_on), cut(values)

    def text(v: pd.Series) -> np.ndarray:
        return v.astype("string").fillna("<missing>").to_numpy(dtype=object)

    return text(fit_on), text(values)


def number_error(value: Any) -> str | None:
    """Why ``value`` is not a finite number (a regression's label), or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return None
    return f"a label is a finite number, not {value!r}"


def bound_floors(objective: Objective) -> list[Floor]:
    """The ``<metric>_min`` / ``<metric>_max`` bounds of ``problem.kpis`` (regression and
    multiclass)."""
    out = []
    kpis = objective.problem.kpis
    bounds = kpis.bounds() if isinstance(kpis, Bounds) else {}
    for key, value in bounds.items():
        found = objective.metric(key.rpartition("_")[0])
        out.append(Floor(found, key, value, found.label))
    return out


class Classifier(Objective):
    """What the two classifying types share: the candidate classifiers, feasibility's quick
    classifier (its score: :meth:`signal_score`), and judging by a ranking metric's points
    (slices against ``evaluate.slice_roc_auc_floor``, the live drop against
    ``monitor.max_roc_auc_drop``)."""

    XGBOOST: ClassVar[dict[str, str]]
    """What the XGBoost classifier is told beside its parameters (its objective, metric)."""
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

    def estimator(self, kind: str, params: dict[str, Any], random_state: int) -> Any:
        if kind == "logistic_regression":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(max_iter=2000, random_state=random_state, **params)
        if kind == "random_forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(n_jobs=2, random_state=random_state, **params)
        if kind == "xgboost":
            from xgboost import XGBClassifier

            return XGBClassifier(
                tree_method="hist",
                n_jobs=2,
                random_state=random_state,
                **self.XGBOOST,
                **params,
            )
        raise ValueError(f"unknown model kind '{kind}'; known: {', '.join(MODEL_KINDS[self.type])}")

    def dask_xgboost(
        self, config: dict[str, Any], random_state: int, early_stopping_rounds: int
    ) -> Any:
        from xgboost import dask as dxgb

        return dxgb.DaskXGBClassifier(
            tree_method="hist",
            random_state=random_state,
            early_stopping_rounds=early_stopping_rounds or None,
            **self.XGBOOST,
            **config,
        )

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
        return [
            {
                "check": "minority-class rows",
                "value": minority,
                "threshold": cfg.min_minority_rows,
                "passed": minority >= cfg.min_minority_rows,
                "rule": ">=",
            }
        ]

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


class Regression(Objective):
    """A number: the model predicts it, and is judged by its error."""

    type = "regression"

    SUMMARY = ("rmse", "mae", "r2")
    """The short list scored for each baseline, each slice and each tuning trial."""

    FLOOR_METRIC = "rmse"
    """The metric a slice (against the whole), the live drop and the shadow are judged on."""

    IMPORTANCE_SCORER = "neg_root_mean_squared_error"

    ORACLE_COLUMN = "oracle_value"

    STORED_VALUES = None

    COST_KEY = None

    STRATA = 5
    """A split and the folds stratify on this many quantile bins of the target."""

    @property
    def lift_metric(self) -> Metric:
        """The primary metric: every regression metric compares values, not rankings."""
        return self.primary

    def floors(self) -> list[Floor]:
        return bound_floors(self)

    # -- the target
    def read_target(self, values: pd.Series) -> pd.Series:
        """Numbers (text such as ``"1,234.5"`` parsed); what does not parse is unlabelled."""
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.astype("float64")
        return parse_numbers(values)[0].astype("float64")

    def check_target(self, values: pd.Series) -> pd.Series:
        cfg = self.problem
        y = self.read_target(values)
        present = values.notna() & (values.astype("string").str.strip() != "")
        numbers = int(y.notna().sum())
        if numbers == 0:
            raise TargetError(
                "a number",
                f"'{cfg.target}' holds no numbers ({observed_labels(values)[:10]}): a "
                "regression target is a number; set problem.target to the column to predict, "
                "or problem.type to binary for a yes/no outcome",
            )
        if numbers < 0.5 * int(present.sum()):
            raise TargetError(
                "a number",
                f"only {numbers} of the {int(present.sum())} values of '{cfg.target}' are "
                "numbers: is it a class label? Set problem.type to binary for a yes/no outcome",
            )
        distinct = int(y.nunique())
        if distinct < 3:
            raise TargetError(
                "many values",
                f"'{cfg.target}' holds {distinct} distinct value(s): a yes/no outcome, not a "
                "quantity; set problem.type: binary and problem.positive_label",
            )
        if self.primary.name == "mape" and (y.dropna() <= 0).any():
            raise TargetError(
                "positive target",
                f"problem.primary_metric mape divides by the target, and '{cfg.target}' has "
                "values at or below zero: choose rmse, mae or r2",
            )
        return y

    def labels(self, values: pd.Series | np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)

    def label_error(self, value: Any) -> str | None:
        return number_error(value)

    def stored(self, y: pd.Series) -> pd.Series:
        return y.astype("float64")

    def clean_facts(self, y: pd.Series) -> dict[str, float]:
        if not len(y):
            return {"target_mean": float("nan")}
        return {"target_mean": round(float(y.mean()), 6), "target_std": round(float(y.std()), 6)}

    def target_facts(self, y: pd.Series) -> dict[str, Any]:
        v = y.dropna()
        return {
            "target_mean": float(v.mean()),
            "target_median": float(v.median()),
            "target_std": float(v.std()),
            "target_min": float(v.min()),
            "target_max": float(v.max()),
        }

    def describe_target(self) -> str:
        return "(a number)"

    def describe_facts(self, facts: dict[str, Any]) -> str:
        return (
            f"target mean {facts['target_mean']:.4g}, median {facts['target_median']:.4g}, "
            f"from {facts['target_min']:.4g} to {facts['target_max']:.4g}"
        )

    # -- feasibility
    def signal(self, cfg: FeasibilityParams) -> SignalSpec:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.model_selection import KFold

        return SignalSpec(
            metric="r2",
            label="R²",
            scoring="r2",
            dummy=0.0,  # predicting the mean has R² 0
            near_perfect=0.99,
            model=HistGradientBoostingRegressor(
                max_iter=50, learning_rate=0.15, random_state=cfg.random_state
            ),
            cv=KFold(cfg.cv_folds, shuffle=True, random_state=cfg.random_state),
        )

    def label_checks(self, y: pd.Series, cfg: FeasibilityParams) -> list[dict[str, Any]]:
        return []

    def feasibility_facts(self, y: pd.Series) -> dict[str, float]:
        v = y.dropna()
        return {"target_mean": float(v.mean()), "target_std": float(v.std())}

    def target_risks(self, facts: dict[str, float]) -> list[str]:
        return []

    # -- the model
    def estimator(self, kind: str, params: dict[str, Any], random_state: int) -> Any:
        if kind == "ridge":
            from sklearn.linear_model import Ridge

            return Ridge(**params)
        if kind == "random_forest":
            from sklearn.ensemble import RandomForestRegressor

            return RandomForestRegressor(n_jobs=2, random_state=random_state, **params)
        if kind == "xgboost":
            from xgboost import XGBRegressor

            return XGBRegressor(
                tree_method="hist",
                n_jobs=2,
                random_state=random_state,
                eval_metric="rmse",
                **params,
            )
        raise ValueError(f"unknown model kind '{kind}'; known: {', '.join(MODEL_KINDS[self.type])}")

    def dask_xgboost(
        self, config: dict[str, Any], random_state: int, early_stopping_rounds: int
    ) -> Any:
        from xgboost import dask as dxgb

        return dxgb.DaskXGBRegressor(
            tree_method="hist",
            random_state=random_state,
            eval_metric="rmse",
            early_stopping_rounds=early_stopping_rounds or None,
            **config,
        )

    def linear_terms(self, model: Any) -> tuple[np.ndarray, float] | None:
        coef = getattr(model, "coef_", None)
        if coef is None or np.ndim(coef) != 1:
            return None
        return np.asarray(coef, dtype=float), float(model.intercept_)

    def scores(self, model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.predict(X), dtype=float)

    def link(self, margin: np.ndarray) -> np.ndarray:
        return np.asarray(margin, dtype=float)

    def decide(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        """The prediction is the decision."""
        return np.asarray(scores, dtype=float)

    def answer(self, score: float, threshold: float | None) -> dict[str, Any]:
        return {"prediction": round(score, 6)}

    def output_columns(self, scores: np.ndarray, threshold: float | None) -> dict[str, np.ndarray]:
        return {"prediction": scores}

    def logged_decisions(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        return np.zeros(len(scores), dtype=int)  # no decision: the number is the answer

    def decision_rule(
        self, y_valid: np.ndarray, scores: np.ndarray, cfg: EvaluateParams
    ) -> tuple[None, None]:
        """No threshold: the number is the answer (``evaluate.cost`` does not apply)."""
        return None, None

    def expected_cost(
        self, y: np.ndarray, scores: np.ndarray, threshold: Any, cfg: EvaluateParams
    ) -> float | None:
        return None

    def strata(self, y: np.ndarray) -> np.ndarray:
        """Quantile bins of the target, so each split and fold spans its whole range."""
        y = np.asarray(y, dtype=float)
        bins = min(self.STRATA, max(1, len(np.unique(y))))
        return np.asarray(pd.qcut(pd.Series(y).rank(method="first"), bins, labels=False))

    def judgeable(self, y: np.ndarray) -> bool:
        """Two rows or more (an R² needs some spread: one value gives nan, not an error)."""
        return len(y) >= 2

    def baseline_scores(
        self, frame: pd.DataFrame, train: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """The training mean and median, and the rule as a straight-line fit of the target
        on its column (fitted on ``train``'s rows; ``frame``'s own when not given)."""
        target = self.problem.target
        fit_on = frame if train is None else train
        y = self.labels(fit_on[target])
        y = y[~np.isnan(y)]
        out = {
            "mean": np.full(len(frame), float(np.mean(y))),
            "median": np.full(len(frame), float(np.median(y))),
        }
        rule = self.problem.baseline.rule
        if rule is not None and rule.column in frame and rule.column in fit_on:
            x = pd.to_numeric(fit_on[rule.column], errors="coerce").to_numpy(float)
            ys = self.labels(fit_on[target])
            ok = ~np.isnan(x) & ~np.isnan(ys)
            if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
                slope, intercept = np.polyfit(x[ok], ys[ok], 1)
                new = pd.to_numeric(frame[rule.column], errors="coerce").to_numpy(float)
                out[f"rule:{rule.column}"] = np.where(
                    np.isnan(new), float(np.mean(y)), intercept + slope * new
                )
        return out

    # -- slices and fairness
    def worse_by(self, reference: float, found: float, name: str | None = None) -> float:
        """An error's relative rise (0.2: 20% above ``reference``): errors are in the
        target's units, which no fixed margin fits; R² (a share) by its points."""
        judged = self.metric(name or self.FLOOR_METRIC)
        if judged.higher_is_better:
            return reference - found
        if reference > 0:
            return found / reference - 1.0
        return float("inf") if found > 0 else 0.0

    def live_drop_limit(self, cfg: MonitorParams) -> float:
        return cfg.max_error_rise

    def slice_facts(self, y: np.ndarray) -> dict[str, float]:
        return {"target_mean": float(np.mean(y)) if len(y) else float("nan")}

    def slice_check(
        self, row: dict[str, Any], metrics: dict[str, float], cfg: EvaluateParams
    ) -> tuple[bool, str]:
        """The slice's RMSE at most ``evaluate.slice_max_error_ratio`` times the whole's."""
        judged, ratio = self.metric(self.FLOOR_METRIC), cfg.slice_max_error_ratio
        whole = metrics[judged.name]
        return (
            row[judged.name] <= ratio * whole,
            f"slice {row['column']}={row['value']} ({row['rows']} rows) {judged.label} "
            f"{row[judged.name]:.4g} vs {ratio} x the whole's {whole:.4g}",
        )

    def group_figures(self, y: np.ndarray, decision: np.ndarray) -> dict[str, float]:
        error = np.asarray(decision, dtype=float) - np.asarray(y, dtype=float)
        return {"mae": float(np.mean(np.abs(error))), "bias": float(np.mean(error))}

    def fairness_gaps(self, groups: list[dict[str, Any]]) -> dict[str, float]:
        maes = [g["mae"] for g in groups]
        biases = [g["bias"] for g in groups]
        scale = float(np.mean(maes)) or 1.0
        return {
            "mae_ratio": max(maes) / min(maes) if min(maes) > 0 else float("inf"),
            "bias_gap": (max(biases) - min(biases)) / scale,
        }

    def fairness_checks(
        self, judged: dict[str, Any], limits: FairnessLimits
    ) -> list[tuple[bool, str]]:
        f, lim = judged, limits
        return [
            (
                f["mae_ratio"] <= lim.max_mae_ratio,
                f"{f['column']}: MAE ratio {f['mae_ratio']:.4f} between groups vs limit "
                f"{lim.max_mae_ratio}",
            ),
            (
                f["bias_gap"] <= lim.max_bias_gap,
                f"{f['column']}: bias gap {f['bias_gap']:.4f} (in MAEs) vs limit "
                f"{lim.max_bias_gap}",
            ),
        ]


class Multiclass(Classifier):
    """One of several classes: a probability per class (a score column each, in the order of
    :attr:`classes`, the training split's sorted labels recorded with the model); the
    decision is the most probable class."""

    type = "multiclass"

    SUMMARY = ("log_loss", "macro_f1", "accuracy", "roc_auc_ovr")
    """Scored for each baseline, each slice and each tuning trial."""

    FLOOR_METRIC = "roc_auc_ovr"
    """The metric a slice's floor (``evaluate.slice_roc_auc_floor``), the live drop and the
    shadow are judged on."""

    IMPORTANCE_SCORER = "roc_auc_ovr"

    ORACLE_COLUMN = "oracle_"
    """The prefix of the simulator's columns of each class's true probability."""

    STORED_VALUES = None

    XGBOOST = {"objective": "multi:softprob", "eval_metric": "mlogloss"}

    QUICK_MODEL = {
        "max_iter": 100,
        "learning_rate": 0.05,
        "max_leaf_nodes": 8,
        "min_samples_leaf": 40,
    }
    """Slower and smaller trees than binary's: log loss needs honest probabilities (on the
    simulator's next move, 2,400 rows, the binary settings' log loss is worse than the class
    prior's, these 0.21 better)."""

    def signal_score(self) -> tuple[str, str, str, Any, float]:
        """The primary metric, against the class prior's on the same labels (log loss
        negated, as scikit-learn scores it: higher is better)."""
        name = self.primary.name
        if name == "log_loss":
            return "neg_log_loss", "negative log loss", "neg_log_loss", prior_neg_log_loss, -0.01
        if name == "macro_f1":
            return "macro_f1", "macro-F1", "f1_macro", prior_macro_f1, 0.99
        if name == "accuracy":
            return "accuracy", "accuracy", "accuracy", prior_accuracy, 0.99
        return "roc_auc_ovr", "ROC-AUC (one vs rest)", "roc_auc_ovr", 0.5, 0.99

    HAS_CLASSES = True

    COST_KEY = "evaluate.cost_matrix"

    MAX_CLASSES = 50
    """More distinct labels than this is a number or an identifier, not a class label."""

    def __init__(self, problem: ProblemParams, classes: list[str] | None = None) -> None:
        super().__init__(problem)
        self.classes = None if classes is None else tuple(str(c) for c in classes)

    def for_labels(self, y: pd.Series) -> Objective:
        return Multiclass(self.problem, sorted(pd.Series(y).dropna().astype(str).unique()))

    @property
    def known(self) -> tuple[str, ...]:
        """:attr:`classes`, which a step binds before it needs them."""
        if self.classes is None:
            raise RuntimeError("the multiclass objective's classes are not bound (for_labels)")
        return self.classes

    @property
    def lift_metric(self) -> Metric:
        """The primary metric: the class prior is a probability per class, as the model's."""
        return self.primary

    def floors(self) -> list[Floor]:
        return bound_floors(self)

    # -- the target
    def read_target(self, values: pd.Series) -> pd.Series:
        """The labels as text (``"2.0"`` read as ``"2"``, spaces trimmed), each alias of
        ``problem.class_aliases`` replaced by its class; a blank is unlabelled."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        aliases = self.problem.class_aliases
        names = []
        for u in uniques:
            text = str(u).strip()
            try:
                number = float(text)
                text = str(int(number)) if number.is_integer() else text
            except ValueError:
                pass
            names.append(aliases.get(text, text) if text else None)
        table = pd.array([*names, None], dtype="string")
        return pd.Series(table[codes], index=values.index)  # code -1 (missing) takes the last

    def check_target(self, values: pd.Series) -> pd.Series:
        cfg = self.problem
        y = self.read_target(values)
        labels = sorted(y.dropna().unique())
        if len(labels) < 3:
            raise TargetError(
                "several classes",
                f"'{cfg.target}' holds {len(labels)} class(es) ({labels[:10]}): set "
                "problem.type: binary and problem.positive_label for a yes/no outcome",
            )
        if len(labels) > self.MAX_CLASSES:
            raise TargetError(
                "several classes",
                f"'{cfg.target}' holds {len(labels)} distinct values ({labels[:10]}...): more "
                f"than {self.MAX_CLASSES} classes is a number or an identifier; set "
                "problem.type: regression for a number, or merge classes with "
                "problem.class_aliases",
            )
        return y

    def labels(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Each label's class index; -1 for a label the model never saw (:meth:`unseen`).
        Numbers are indices already (the prediction log's labels, :meth:`label_value`)."""
        values = pd.Series(values)
        if pd.api.types.is_numeric_dtype(values):
            return values.to_numpy(dtype=int)
        index = {c: k for k, c in enumerate(self.known)}
        text = values.astype("string")
        return text.map(index).fillna(-1).to_numpy(dtype=int)

    def unseen(self, values: pd.Series | np.ndarray) -> dict[str, int]:
        """The labels among ``values`` that are not a class of the model, with their rows."""
        text = pd.Series(values).dropna().astype(str)
        counts = text[~text.isin(self.known)].value_counts()
        return {str(k): int(v) for k, v in sorted(counts.items())}

    def per_class(self, y: np.ndarray, decision: np.ndarray) -> dict[str, dict[str, float]] | None:
        from sklearn.metrics import precision_recall_fscore_support

        k = range(len(self.known))
        p, r, f, n = precision_recall_fscore_support(y, decision, labels=list(k), zero_division=0)
        return {
            c: {
                "precision": round(float(p[i]), 6),
                "recall": round(float(r[i]), 6),
                "f1": round(float(f[i]), 6),
                "rows": int(n[i]),
            }
            for i, c in enumerate(self.known)
        }

    LOG_HOLDS_SCORES = False

    def score_columns(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        return {f"prediction_{c}": scores[:, k] for k, c in enumerate(self.known)}

    def window_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[[f"prediction_{c}" for c in self.known]].to_numpy(dtype=float)

    def window_predictions(self, frame: pd.DataFrame) -> pd.Series:
        names = np.asarray(self.known, dtype=object)
        return pd.Series(names[frame["decision"].to_numpy(dtype=int)], index=frame.index)

    def reference_columns(self, scores: np.ndarray, threshold: Any) -> dict[str, np.ndarray]:
        names = np.asarray(self.known, dtype=object)
        return {
            "prediction": names[self.decide(scores, threshold)],
            **self.score_columns(scores),
        }

    def oracle(self, frame: pd.DataFrame) -> np.ndarray | None:
        columns = [f"{self.ORACLE_COLUMN}{c}" for c in self.known]
        if any(c not in frame for c in columns) or frame[columns].isna().any().any():
            return None
        return frame[columns].to_numpy()

    def label_error(self, value: Any) -> str | None:
        if isinstance(value, str) and value in self.known:
            return None
        return f"a label is one of the classes {list(self.known)}, not {value!r}"

    def label_value(self, value: Any) -> float:
        return float(self.known.index(value))

    def stored(self, y: pd.Series) -> pd.Series:
        return y.astype("string")

    def clean_facts(self, y: pd.Series) -> dict[str, float]:
        shares = y.value_counts(normalize=True)
        return {
            "classes": int(len(shares)),
            "rarest_class_share": round(float(shares.min()), 6) if len(shares) else float("nan"),
        }

    def target_facts(self, y: pd.Series) -> dict[str, Any]:
        counts = y.dropna().value_counts()
        return {"class_rows": {str(k): int(counts[k]) for k in sorted(counts.index)}}

    def describe_target(self) -> str:
        return "(one of several classes)"

    def describe_facts(self, facts: dict[str, Any]) -> str:
        rows = facts["class_rows"]
        total = sum(rows.values()) or 1
        return f"{len(rows)} classes: " + ", ".join(
            f"`{c}` {n / total:.1%}" for c, n in rows.items()
        )

    # -- feasibility
    def label_checks(self, y: pd.Series, cfg: FeasibilityParams) -> list[dict[str, Any]]:
        """Every class with at least ``feasibility.min_minority_rows`` labelled rows; the
        rarest is named, with the two ways out."""
        counts = y.dropna().value_counts()
        rare = counts[counts < cfg.min_minority_rows]
        rarest = str(counts.idxmin()) if len(counts) else "?"
        check: dict[str, Any] = {
            "check": f"rows of the rarest class ({rarest})",
            "value": int(counts.min()) if len(counts) else 0,
            "threshold": cfg.min_minority_rows,
            "passed": rare.empty,
            "rule": ">=",
        }
        if not rare.empty:
            named = ", ".join(f"'{c}' ({n} rows)" for c, n in rare.items())
            common = str(counts.idxmax())
            check["advice"] = (
                f"too few rows of {named}: merge a rare class into another with "
                f"problem.class_aliases (as in {{'{rare.index[0]}': '{common}'}}), or lower "
                "feasibility.min_minority_rows"
            )
        return [check]

    def feasibility_facts(self, y: pd.Series) -> dict[str, float]:
        shares = y.dropna().value_counts(normalize=True)
        return {"classes": float(len(shares)), "rarest_class_share": float(shares.min())}

    def target_risks(self, facts: dict[str, float]) -> list[str]:
        share = facts["rarest_class_share"]
        if share < 0.05:
            return [f"a rare class ({share:.1%} of the rows): watch its recall and macro-F1"]
        return []

    # -- the model
    def linear_terms(self, model: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """A multinomial model's weights (a row per class) and intercepts."""
        coef = getattr(model, "coef_", None)
        if coef is None or np.ndim(coef) != 2 or len(coef) != len(self.known):
            return None
        return np.asarray(coef, dtype=float), np.asarray(model.intercept_, dtype=float)

    def scores(self, model: Any, X: Any) -> np.ndarray:
        """The probability of each class, a column each (:attr:`classes`' order)."""
        return np.asarray(model.predict_proba(X), dtype=float)

    def link(self, margin: np.ndarray) -> np.ndarray:
        """The soft-max of each row's margins."""
        z = np.asarray(margin, dtype=float)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def decide(self, scores: np.ndarray, threshold: Any) -> np.ndarray:
        """The index of the most probable class; with a cost table (``threshold``, true
        class by row), of the class whose expected cost is least."""
        scores = np.asarray(scores, dtype=float)
        if threshold is None:
            return np.argmax(scores, axis=-1)
        return np.argmin(scores @ np.asarray(threshold, dtype=float), axis=-1)

    def answer(self, score: Any, threshold: Any) -> dict[str, Any]:
        p = np.asarray(score, dtype=float)
        return {
            "label": self.known[int(self.decide(p, threshold))],
            "probabilities": {c: round(float(v), 6) for c, v in zip(self.known, p, strict=True)},
        }

    def output_columns(self, scores: np.ndarray, threshold: float | None) -> dict[str, np.ndarray]:
        names = np.asarray(self.known, dtype=object)
        return {
            "label": names[self.decide(scores, threshold)],
            **{f"probability_{c}": scores[:, k] for k, c in enumerate(self.known)},
        }

    def logged_decisions(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        return self.decide(np.asarray(scores), threshold)

    def logged_scores(self, scores: Any) -> Any:
        return np.asarray(scores, dtype=float).max(axis=-1).tolist()

    def cost_table(self, cfg: EvaluateParams) -> list[list[float]] | None:
        """``evaluate.cost_matrix`` as a table in the classes' order (true class by row,
        predicted class by column); None when not set.

        Raises
        ------
        ValueError
            Naming the classes the matrix leaves out or does not know.
        """
        given = cfg.cost_matrix
        if given is None:
            return None
        wanted = set(self.known)
        rows_missing = sorted(wanted - set(given))
        cells_missing = sorted(
            {c for row in given.values() for c in wanted - set(row)} if given else wanted
        )
        unknown = sorted(
            (set(given) | {c for row in given.values() for c in row}) - wanted, key=str
        )
        if rows_missing or cells_missing or unknown:
            raise ValueError(
                "evaluate.cost_matrix needs a cost for every true class (a key) and every "
                f"predicted class (a key of each row) among {list(self.known)}"
                + (f"; true classes missing: {rows_missing}" if rows_missing else "")
                + (f"; predicted classes missing: {cells_missing}" if cells_missing else "")
                + (f"; not classes of the training split: {unknown}" if unknown else "")
            )
        return [[float(given[t][p]) for p in self.known] for t in self.known]

    def decision_rule(
        self, y_valid: np.ndarray, scores: np.ndarray, cfg: EvaluateParams
    ) -> tuple[list[list[float]] | None, float | None]:
        """``evaluate.cost_matrix`` in the classes' order (the decision: least expected
        cost), and its expected cost on validation; without it, the most probable class."""
        table = self.cost_table(cfg)
        if table is None:
            return None, None
        return table, self.expected_cost(y_valid, scores, table, cfg)

    def expected_cost(
        self, y: np.ndarray, scores: np.ndarray, threshold: Any, cfg: EvaluateParams
    ) -> float | None:
        if threshold is None:
            return None
        y, known = np.asarray(y), np.asarray(y) >= 0  # -1: a label the model never saw
        decided = self.decide(np.asarray(scores)[known], threshold)
        return float(np.mean(np.asarray(threshold)[y[known], decided]))

    def rule_fields(self, threshold: Any) -> dict[str, Any]:
        return {}  # the answer's label is the decision, whichever rule made it

    def describe_rule(self, threshold: Any) -> tuple[str, str] | None:
        if threshold is None:
            return "Decision", "the most probable class"
        return "Decision", "the class of least expected cost under evaluate.cost_matrix"

    def strata(self, y: np.ndarray) -> np.ndarray:
        """The class (a missing label is a stratum of its own)."""
        return pd.Series(y).astype("string").fillna("").to_numpy(dtype=object)

    def judgeable(self, y: np.ndarray) -> bool:
        """Two classes or more among ``y``."""
        return len(np.unique(y)) >= 2

    def baseline_scores(
        self, frame: pd.DataFrame, train: pd.DataFrame | None = None
    ) -> dict[str, np.ndarray]:
        """The class prior: each class's share of ``train``'s labelled rows (``frame``'s own
        when not given), the same for every row; and the rule: the class shares within each
        value of its column (numbers: within five quantile ranges), smoothed toward the
        prior (a value ``train`` lacks gets the prior)."""
        fit_on = frame if train is None else train
        y = self.labels(fit_on[self.problem.target])
        known = y >= 0
        k = len(self.known)
        counts = np.bincount(y[known], minlength=k).astype(float)
        prior = (counts + 1e-9) / (counts + 1e-9).sum()
        out = {"class_prior": np.tile(prior, (len(frame), 1))}
        rule = self.problem.baseline.rule
        if rule is not None and rule.column in frame and rule.column in fit_on:
            seen, new = rule_groups(fit_on[rule.column], frame[rule.column])
            table = pd.crosstab(seen[known], y[known]).reindex(columns=range(k), fill_value=0)
            smoothed = (table.to_numpy() + RULE_PRIOR_ROWS * prior) / (
                table.to_numpy().sum(axis=1, keepdims=True) + RULE_PRIOR_ROWS
            )
            shares = dict(zip(table.index, smoothed, strict=True))
            out[f"rule:{rule.column}"] = np.array([shares.get(g, prior) for g in new])
        return out

    # -- slices and fairness
    def slice_facts(self, y: np.ndarray) -> dict[str, float]:
        y = np.asarray(y)
        return {"classes": int(len(np.unique(y)))}

    GROUP_CLASS_ROWS = 50
    """A class's recall in a group is judged from this many of its rows in the group (fewer:
    too noisy to compare, left out of the gap: with 50 rows each, two groups' recalls of 0.5
    differ by 0.1 by chance alone about one time in three)."""

    def group_figures(self, y: np.ndarray, decision: np.ndarray) -> dict[str, float]:
        """Each class's recall in the group (nan for a class with too few rows in it)."""
        y, decision = np.asarray(y), np.asarray(decision)
        return {
            f"recall_{c}": float(np.mean(decision[y == k] == k))
            if (y == k).sum() >= self.GROUP_CLASS_ROWS
            else math.nan
            for k, c in enumerate(self.known)
        }

    def fairness_gaps(self, groups: list[dict[str, Any]]) -> dict[str, float]:
        """The largest gap in a class's recall between groups (classes every group has)."""
        gaps = {}
        for c in self.known:
            found = [g[f"recall_{c}"] for g in groups if not math.isnan(g[f"recall_{c}"])]
            if len(found) >= 2:
                gaps[c] = max(found) - min(found)
        worst = max(gaps, key=gaps.__getitem__) if gaps else None
        return {"recall_gap": gaps[worst] if worst else 0.0, "recall_gap_class": worst}

    def fairness_checks(
        self, judged: dict[str, Any], limits: FairnessLimits
    ) -> list[tuple[bool, str]]:
        f, lim = judged, limits
        return [
            (
                f["recall_gap"] <= lim.max_tpr_gap,
                f"{f['column']}: recall gap {f['recall_gap']:.4f} (class "
                f"{f['recall_gap_class']}) vs limit {lim.max_tpr_gap}",
            )
        ]


OBJECTIVES: dict[str, type[Objective]] = {
    "binary": Binary,
    "regression": Regression,
    "multiclass": Multiclass,
}
"""Each ``problem.type``'s objective."""


def objective_for(problem: ProblemParams | None, classes: list[str] | None = None) -> Objective:
    """The objective of ``problem``'s type (``problem.type``); a multiclass one with the
    ``classes`` recorded with its model (``models/model_meta.json``, the card), or bound
    later (:meth:`Objective.for_labels`).

    ``None``: a model built outside a project (a test, a benchmark) is binary, with the
    default KPI options."""
    if problem is None:
        return Binary(ProblemParams(target="label", positive_label=1))
    return OBJECTIVES[problem.type](problem, classes)
