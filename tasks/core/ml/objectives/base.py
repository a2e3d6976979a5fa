"""The interface of the objective (:class:`Objective`): what each problem type answers.

Steps, serving and monitoring ask the problem's objective
(:func:`tasks.core.ml.objective.objective_for`) and
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
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
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
from tasks.core.metrics import Metric, metric, metrics_for

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


def threshold_check(
    check: str, value: float, threshold: float, rule: str, digits: int | None = None
) -> dict[str, Any]:
    """One row of feasibility's checks: ``value`` against ``threshold`` by ``rule`` (``">="``
    or ``"<="``), judged before it is rounded to ``digits`` for the report."""
    passed = value >= threshold if rule == ">=" else value <= threshold
    shown = value if digits is None else round(value, digits)
    return {"check": check, "value": shown, "threshold": threshold, "passed": passed, "rule": rule}


@dataclass(frozen=True)
class Kind:
    """A candidate model of a type: its class (``module.Name``, imported when first built)
    and what it is told beside the tuned parameters."""

    path: str
    fixed: dict[str, Any] = field(default_factory=dict)
    seeded: bool = True
    """Whether it takes the run's ``random_state``."""

    def build(self, params: dict[str, Any], random_state: int) -> Any:
        """The unfitted model with ``params``."""
        module, _, name = self.path.rpartition(".")
        made = getattr(importlib.import_module(module), name)
        seed = {"random_state": random_state} if self.seeded else {}
        return made(**self.fixed, **seed, **params)


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

    def floors(self) -> list[Floor]:
        """The KPI bounds of ``problem.kpis``: each ``<metric>_min`` / ``<metric>_max``."""
        kpis = self.problem.kpis
        bounds = kpis.bounds() if isinstance(kpis, Bounds) else {}
        out = []
        for key, value in bounds.items():
            found = self.metric(key.rpartition("_")[0])
            out.append(Floor(found, key, value, found.label))
        return out

    @property
    def lift_metric(self) -> Metric:
        """The metric the gate's lift over the baselines is judged on: the primary one (a
        baseline scores what the model scores: a value, a probability per class)."""
        return self.primary

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

    ESTIMATORS: ClassVar[dict[str, Kind]]
    """Each candidate model kind of the type (``config.MODEL_KINDS``) and how it is built."""
    XGBOOST: ClassVar[dict[str, str]]
    """What XGBoost is told beside its parameters (its objective, its metric), in this
    process and across a Dask cluster."""
    DASK_XGBOOST: ClassVar[str]
    """The type's estimator in ``xgboost.dask``."""

    def estimator(self, kind: str, params: dict[str, Any], random_state: int) -> Any:
        """The unfitted model of ``kind`` with ``params``."""
        if kind not in self.ESTIMATORS:
            known = ", ".join(MODEL_KINDS[self.type])
            raise ValueError(f"unknown model kind '{kind}'; known: {known}")
        return self.ESTIMATORS[kind].build(params, random_state)

    def booster_params(self, config: dict[str, Any], random_state: int) -> dict[str, Any]:
        """What ``xgboost.train`` is told for the type's XGBoost with ``config``: what its
        scikit-learn estimator would pass."""
        params = self.estimator("xgboost", config, random_state).get_xgb_params()
        return {k: v for k, v in params.items() if v is not None}

    def dask_xgboost(
        self, config: dict[str, Any], random_state: int, early_stopping_rounds: int
    ) -> Any:
        """The ``xgboost.dask`` model of this type, trained across the Dask workers."""
        from xgboost import dask as dxgb

        return getattr(dxgb, self.DASK_XGBOOST)(
            tree_method="hist",
            random_state=random_state,
            early_stopping_rounds=early_stopping_rounds or None,
            **self.XGBOOST,
            **config,
        )

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

    def missing_classes(self, y_fit: np.ndarray) -> list[str]:
        """The classes that none of ``y_fit``'s rows (a fold's training rows) holds: a model
        fitted on them cannot score those (none for a number)."""
        return []

    UNJUDGEABLE: ClassVar[str | None] = None
    """What makes labels unjudgeable, beside too few rows, as the gate names it (the labels
    :meth:`judgeable` refuses)."""

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
