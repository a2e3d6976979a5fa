"""Typed view of ``params.yaml``: one Pydantic model per workflow step.

``load_params`` reads the file once; each step receives only its own section. Unknown keys
and values of the wrong type fail with the dotted name of the key, so a typo in
``params.yaml`` is caught before any work starts.
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.core.metrics import metric, metrics_for


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # (section, step) when tasks.core.declare narrowed this copy to the keys a step declares
    _declared: tuple[str, str] | None = PrivateAttr(default=None)

    def __getattr__(self, name: str) -> Any:
        if name in type(self).model_fields and self._declared is not None:
            where, step = self._declared
            raise UndeclaredKey(
                f"step '{step}' read {where}.{name}, which its main() does not declare: add it "
                f"to the Keys of its '{where}' parameter, and to the stage's params in dvc.yaml"
            )
        return super().__getattr__(name)  # type: ignore[misc]


# --------------------------------------------------------------------------- step 1
class Kpis(Section):
    """Thresholds the model must meet to be useful (checked at evaluation and in monitoring)."""

    # the lowest test (and live) ROC-AUC that is useful
    roc_auc_min: float = Field(0.75, ge=0, le=1)
    # the lowest test (and live) PR-AUC that is useful
    pr_auc_min: float = Field(0.4, ge=0, le=1)
    # the precision the retention list must keep
    target_precision: float = Field(0.5, gt=0, le=1)
    # the recall needed at that precision
    recall_at_target_precision_min: float = Field(0.3, ge=0, le=1)


class Bounds(Section):
    """``problem.kpis`` of a regression problem: a bound per metric, ``<metric>_max`` for a
    metric where lower is better (``rmse_max``), ``<metric>_min`` where higher is better
    (``r2_min``). ``{}``: no floors."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def of(cls, problem_type: str, raw: dict[str, Any]) -> "Bounds":
        """The bounds in ``raw``, each key checked against the metrics of ``problem_type``."""
        table = metrics_for(problem_type)
        errors, unknown = [], []
        for key, value in raw.items():
            name, _, side = str(key).rpartition("_")
            found = table.get(name)
            if found is None or side not in ("min", "max"):
                unknown.append(f"problem.kpis.{key}")
            elif (side == "min") != found.higher_is_better:
                better = "higher" if found.higher_is_better else "lower"
                right = f"{name}_{'min' if found.higher_is_better else 'max'}"
                errors.append(
                    f"problem.kpis.{key}: {name} is {better}-is-better, so its bound is {right}"
                )
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(f"problem.kpis.{key}: a number is needed (got {value!r})")
        if unknown:
            known = ", ".join(
                f"{m.name}_{'min' if m.higher_is_better else 'max'}" for m in table.values()
            )
            errors.insert(
                0, f"{', '.join(unknown)}: not a bound of a {problem_type} problem; known: {known}"
            )
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**{str(k): float(v) for k, v in raw.items()})

    def bounds(self) -> dict[str, float]:
        """``{"rmse_max": 4.0, ...}``."""
        return dict(self.model_extra or {})


class RuleBaseline(Section):
    """A one-column rule: rank rows by ``column`` (reversed if ``higher_is_positive`` is false);
    for a regression problem, a straight-line fit of the target on ``column``; for a
    multiclass one, the class shares within each of its values (or ranges)."""

    # the column the rule ranks by (regression: the one column the fit uses)
    column: str
    # true: higher values mean the positive class; false: lower ones (binary only)
    higher_is_positive: bool = True


class Baseline(Section):
    """The baselines a model has to beat: the majority class (regression: the training mean
    and median) and a simple rule."""

    # score the majority-class baseline (binary only; regression always scores the mean and
    # the median of the training target, multiclass the class prior)
    majority_class: bool = True
    rule: RuleBaseline | None = None


MODEL_KINDS = {
    "binary": ("logistic_regression", "random_forest", "xgboost"),
    "regression": ("ridge", "random_forest", "xgboost"),
    "multiclass": ("logistic_regression", "random_forest", "xgboost"),
}
"""The candidate model kinds of each problem type, simplest first (``choose.candidates``)."""
DEFAULT_METRIC = {"binary": "roc_auc", "regression": "rmse", "multiclass": "log_loss"}


class ProblemParams(Section):
    """Step 1: what is predicted, for whom, and how success is measured."""

    # a short name for the problem (model cards, experiment names)
    name: str = "prediction-problem"
    # the question the model answers, in words (problem brief, model card)
    question: str = ""
    # binary: a yes/no outcome; multiclass: one of several classes; regression: a number
    type: Literal["binary", "multiclass", "regression"] = "binary"
    # the label column
    target: str
    # binary only (null otherwise); YAML 1.1 reads an unquoted Yes/No as a boolean: step 1
    # matches it to the label it means
    positive_label: str | int | bool | None = None
    # null: the data has no id column (rows are keyed by position; docs/own-data.md)
    id_column: str | None = None
    time_column: str | None = None
    post_outcome_columns: list[str] = Field(default_factory=list)
    # the metric model selection, tuning and the gate's lift judge by (tasks/core/metrics.py)
    primary_metric: str = "roc_auc"
    # why the primary metric was chosen, in words (problem brief)
    metric_reason: str = ""
    # how far ahead the label looks (churn within this many days); null: not a question of time
    horizon_days: int | None = Field(30, gt=0)
    # how long after a prediction its label is known (monitoring waits for it); null: not
    # known, taken as 0 (labels judged as soon as they are recorded)
    label_delay_days: int | None = Field(30, ge=0)
    # binary: the floors below; regression and multiclass: <metric>_max / <metric>_min
    # bounds ({}: none)
    kpis: Kpis | Bounds = Field(Kpis(), union_mode="left_to_right")
    baseline: Baseline = Baseline()
    # read as the class each maps to before anything is learnt (a rare class into another)
    class_aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _by_type(cls, data: Any) -> Any:
        """A regression or multiclass problem's default metric, and its ``kpis`` read as
        bounds."""
        if not isinstance(data, dict) or data.get("type") not in ("regression", "multiclass"):
            return data
        data = dict(data)
        data.setdefault("primary_metric", DEFAULT_METRIC[data["type"]])
        kpis = data.get("kpis")
        if kpis is None or isinstance(kpis, dict):
            data["kpis"] = Bounds.of(data["type"], kpis or {})
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "ProblemParams":
        """The keys that depend on the type agree with it, each error naming its key."""
        if self.class_aliases and self.type != "multiclass":
            raise ValueError(
                "problem.class_aliases: applies to a multiclass problem only; remove it for "
                f"a {self.type} problem"
            )
        if self.type == "binary":
            if self.positive_label is None:
                raise ValueError(
                    "problem.positive_label: a binary problem needs the label that counts as "
                    "positive (the outcome the model predicts)"
                )
            if not isinstance(self.kpis, Kpis):
                extra = ", ".join(self.kpis.bounds()) or "?"
                raise ValueError(
                    f"problem.kpis: {extra} is not a key of a binary problem's kpis; known: "
                    + ", ".join(Kpis.model_fields)
                )
        elif self.positive_label is not None:
            raise ValueError(
                f"problem.positive_label: applies to a binary problem only; set it to null "
                f"for a {self.type} problem (got {self.positive_label!r})"
            )
        try:
            found = metric(self.primary_metric, self.type)
        except ValueError as exc:  # names the metrics there are
            raise ValueError(f"problem.primary_metric: {exc}") from None
        if not found.selectable:
            raise ValueError(
                f"problem.primary_metric: {found.name} {found.not_selectable}; choose one of "
                + ", ".join(m.name for m in metrics_for(self.type).values() if m.selectable)
            )
        return self


# --------------------------------------------------------------------------- step 2
class FeasibilityParams(Section):
    """Step 2: go/no-go thresholds."""

    # fewer labelled rows is a no-go
    min_labelled_rows: int = Field(500, ge=1)
    # fewer rows of the rarer class (multiclass: of any class) is a no-go
    min_minority_rows: int = Field(50, ge=1)
    # a larger share of rows without a label is a no-go
    max_missing_label_share: float = Field(0.2, ge=0, le=1)
    # folds of the quick cross-validated signal check
    cv_folds: int = Field(3, ge=2)
    # the signal check runs on at most this many rows
    sample_rows: int = Field(20000, ge=100)
    # label permutations of the signal check's permutation test
    n_permutations: int = Field(19, ge=1)
    # the permutation test's p-value must be below this
    max_permutation_p_value: float = Field(0.05, gt=0, le=1)
    # cross-validated ROC-AUC needed above the dummy baseline (regression: R²; multiclass:
    # the primary metric, log loss negated, above the class prior's)
    min_auc_lift: float = Field(0.02, ge=0, le=0.5)
    # seed of the sampling, folds and permutations
    random_state: int = 42


# --------------------------------------------------------------------------- step 3
class Window(Section):
    """A closed date window ``[start, end]``."""

    # first day collected (inclusive)
    start: dt.date
    # last day collected (inclusive)
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class Drift(Section):
    """Drift the simulator injects from ``start`` on (``kind: none`` for none)."""

    kind: Literal["none", "covariate", "new_category", "concept", "uncertain"] = "none"
    # first drifted day (needed unless kind is none)
    start: dt.date | None = None
    # size of the drift (1: the documented default)
    strength: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _start_needed(self) -> "Drift":
        if self.kind != "none" and self.start is None:
            raise ValueError(f"drift kind '{self.kind}' needs a start date")
        return self


class SimulatorParams(Section):
    """The built-in data source."""

    # same seed, same data
    seed: int = 7
    # rows a simulated day
    customers_per_day: int = Field(100, ge=1)
    # the outcome simulated: churned_30d (yes/no, a binary problem), spend_next_30d (the
    # next 30 days' spend in dollars, a regression problem) or next_move_30d (cancel,
    # downgrade, stay or upgrade: a multiclass problem)
    target: Literal["churned_30d", "spend_next_30d", "next_move_30d"] = "churned_30d"
    drift: Drift = Drift()


class CsvParams(Section):
    """How to read a CSV source."""

    # the field separator (make init detects it)
    sep: str = ","
    # the file's text encoding (make init detects it)
    encoding: str = "utf-8"
    decimal: Literal[".", ","] = "."  # ",": numbers written 1.234,5 (thousands with dots)


class SqlParams(Section):
    """A SQL source: the URL comes from an environment variable, never from this file."""

    url_env: str = "CHURN_SQL_URL"
    # the SELECT to run; :start and :end take collect.window
    query: str = ""


class CollectParams(Section):
    """Step 3: where the data comes from."""

    source: Literal["simulator", "csv", "parquet", "sql"] = "simulator"
    path: str | None = None
    data_dir: str = "data"
    allow_outside_data_dir: bool = False
    # a larger source file is refused (raise it for big exports)
    max_file_mb: float = Field(2048, gt=0)
    max_field_chars: int = Field(10_000, gt=0)
    window: Window | None = None
    # personal columns: drop, or pseudonymise with a keyed hash (key from pii_key_env)
    pii: dict[str, Literal["drop", "pseudonymise"]] = Field(default_factory=dict)
    pii_key_env: str = "CHURN_PII_KEY"
    csv: CsvParams = CsvParams()
    sql: SqlParams = SqlParams()
    simulator: SimulatorParams = SimulatorParams()

    @model_validator(mode="after")
    def _source_needs(self) -> "CollectParams":
        if self.source in ("csv", "parquet") and not self.path:
            raise ValueError(f"source '{self.source}' needs collect.path (a file under data/)")
        if self.source == "simulator" and self.window is None:
            raise ValueError("source 'simulator' needs collect.window with start and end dates")
        if self.source == "sql" and not self.sql.query.strip():
            raise ValueError("source 'sql' needs collect.sql.query")
        return self


# --------------------------------------------------------------------------- step 4
class UnitFix(Section):
    """A declared unit bug: values of ``column`` above ``above`` are divided by ``divide_by``."""

    # the column with the unit bug
    column: str
    # values above this are in the wrong unit
    above: float
    # what those values are divided by
    divide_by: float = Field(gt=0)


class SuiteProposal(Section):
    """How a suite is proposed from the first snapshot of a new source."""

    # a proposed null ceiling is the share seen plus this margin
    null_margin: float = Field(0.05, ge=0, le=1)
    # share of rows a proposed range or allowed-set check must pass
    mostly: float = Field(0.99, gt=0, le=1)


class CleanParams(Section):
    """Step 4: data-quality suite, type coercion, standardisation, EDA."""

    suite: str | None = None
    min_parse_share: float = Field(0.9, gt=0, le=1)
    max_categories: int = Field(50, ge=2)
    # formats dates are parsed in, tried in order (strptime patterns, or ISO8601 for any
    # ISO 8601 date or time stamp such as 2017-01-01T06:00:42Z, zones turned to UTC)
    date_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%b %d, %Y", "ISO8601"]
    )
    category_aliases: dict[str, dict[str, str]] = Field(default_factory=dict)
    unit_fixes: list[UnitFix] = Field(default_factory=list)
    proposal: SuiteProposal = SuiteProposal()
    # Data Docs keep the validations of this many runs per check (raw suite, leakage audit)
    data_docs_runs: int = Field(20, ge=1)


# --------------------------------------------------------------------------- step 5
class FeaturesParams(Section):
    """Step 5: row-wise engineered features."""

    drop_columns: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- step 6
class SplitParams(Section):
    """Step 6: split and leakage audit."""

    strategy: Literal["auto", "stratified", "time", "group"] = "auto"
    group_column: str | None = None
    # share of rows (or of time) in the validation split
    valid_size: float = Field(0.15, gt=0, lt=0.5)
    # share of rows (or of time) in the sealed test split
    test_size: float = Field(0.15, gt=0, lt=0.5)
    # seed of the stratified or grouped split
    random_state: int = 42
    # a feature whose ROC-AUC alone reaches this is a leak (binary)
    max_single_feature_auc: float = Field(0.9, gt=0.5, le=1)
    # a feature whose one-feature model's out-of-fold R² reaches this is a leak (regression)
    max_single_feature_r2: float = Field(0.95, gt=0, le=1)
    max_cross_split_duplicate_share: float = Field(0.002, ge=0, lt=1)
    # the audit's single-feature and duplicate checks sample at most this many rows
    audit_sample_rows: int = Field(50000, ge=100)
    # the leakage audit's Great Expectations suite
    suite: str = "expectations/leakage.json"

    @model_validator(mode="after")
    def _group_needs_column(self) -> "SplitParams":
        if self.strategy == "group" and not self.group_column:
            raise ValueError("strategy 'group' needs split.group_column")
        return self


# --------------------------------------------------------------------------- step 7
ModelKind = Literal["logistic_regression", "ridge", "random_forest", "xgboost"]


class ChooseParams(Section):
    """Step 7: candidates compared by cross-validation on the training split."""

    # simplest first; binary: logistic_regression, random_forest, xgboost; regression:
    # ridge, random_forest, xgboost
    candidates: list[ModelKind] = Field(
        default_factory=lambda: ["logistic_regression", "random_forest", "xgboost"]
    )
    # folds of the candidates' cross-validation
    cv_folds: int = Field(5, ge=2)
    sample_rows: int = Field(30000, ge=100)
    # seed of the sampling and folds
    random_state: int = 42
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some(self) -> "ChooseParams":
        if not self.candidates:
            raise ValueError("choose.candidates needs at least one model")
        unknown = set(self.params) - set(self.candidates)
        if unknown:
            raise ValueError(
                f"choose.params names models that are not candidates: {sorted(unknown)}"
            )
        return self


# --------------------------------------------------------------------------- step 8
class TrainParams(Section):
    """Step 8: random search on the validation split, with a fixed trial budget."""

    n_trials: int = Field(20, ge=1)
    early_stopping_rounds: int = Field(50, ge=0)
    # train reads the splits part by part: XGBoost learns from every training row through a
    # histogram matrix; the preprocessing, and other models, are fitted on the whole
    # training split up to this many rows, and on a seeded sample of this many above it
    in_memory_rows: int = Field(500_000, ge=1000)
    # seed of the search and the model
    random_state: int = 42


# --------------------------------------------------------------------------- step 9
class CostMatrix(Section):
    """Cost of each kind of decision error (and of a correct retention offer)."""

    # cost of an offer to a customer who would have stayed
    false_positive: float = Field(1.0, ge=0)
    # cost of a churner who got no offer
    false_negative: float = Field(5.0, ge=0)
    # cost of an offer to a churner
    true_positive: float = Field(1.0, ge=0)
    # cost of no offer to a customer who stays
    true_negative: float = Field(0.0, ge=0)


class FairnessLimits(Section):
    """Largest acceptable gaps across groups of a sensitive column."""

    # largest gap in true-positive rate between groups
    max_tpr_gap: float = Field(0.1, ge=0, le=1)
    # largest gap in false-positive rate between groups
    max_fpr_gap: float = Field(0.1, ge=0, le=1)
    # lowest ratio of selection rates (the four-fifths rule)
    min_selection_rate_ratio: float = Field(0.8, ge=0, le=1)
    # regression: largest ratio of the groups' mean absolute errors (worst / best)
    max_mae_ratio: float = Field(1.5, ge=1)
    # regression: largest gap between the groups' mean errors (bias), in units of their MAE
    max_bias_gap: float = Field(0.5, ge=0)
    # smaller groups are reported, not judged
    min_group_rows: int = Field(100, ge=1)
    # a sensitive column that cannot be judged (not in the data, or fewer than two groups of
    # min_group_rows) blocks the blessing: a fairness check that did not run is not a pass
    block_when_skipped: bool = True


class EvaluateParams(Section):
    """Step 9: the sealed test set and the blessing gate."""

    cost: CostMatrix = CostMatrix()
    # the decision is then the class of least expected cost on the model's probabilities
    cost_matrix: dict[str, dict[str, float]] | None = None
    # resamples of the paired bootstrap of the lift over the best baseline
    bootstrap_samples: int = Field(500, ge=50)
    # level of that bootstrap interval; its lower bound must clear min_lift_over_baseline
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_lift_over_baseline: float = Field(0.02, ge=0)
    # categorical columns whose groups are scored one by one
    slices: list[str] = Field(default_factory=list)
    # smaller groups are reported, not judged
    slice_min_rows: int = Field(200, ge=1)
    # a group scoring below this fails the gate (binary)
    slice_roc_auc_floor: float = Field(0.6, ge=0, le=1)
    # a group whose RMSE is above this many times the whole test set's fails the gate
    # (regression)
    slice_max_error_ratio: float = Field(2.0, ge=1)
    # columns whose groups the fairness gaps are measured across
    sensitive: list[str] = Field(default_factory=list)
    fairness: FairnessLimits = FairnessLimits()
    # features listed in the model card by permutation importance
    top_features: int = Field(10, ge=1)
    # test rows the permutation importance uses at most
    importance_rows: int = Field(5000, ge=100)
    # seed of the bootstrap and the importance
    random_state: int = 42


# --------------------------------------------------------------------------- step 10
class PromoteParams(Section):
    """Step 10: the registry and the champion/challenger promotion gate."""

    registry_dir: str = "registry"
    # the challenger's gain's lower bound must clear this (in the primary metric's units)
    promotion_margin: float = Field(0.0, ge=0)
    # a slice the challenger does this much worse on blocks it (binary: metric points;
    # regression: the error's relative rise, 0.03 = 3%)
    slice_tolerance: float = Field(0.03, ge=0, le=1)
    # resamples of the paired bootstrap of challenger against champion
    bootstrap_samples: int = Field(500, ge=50)
    # level of that interval; its lower bound must clear promotion_margin
    confidence: float = Field(0.95, gt=0.5, lt=1)
    reference_rows: int = Field(5000, ge=100)
    reference_split: Literal["holdout", "valid", "train"] = "holdout"
    # seed of the bootstrap and the reference sample
    random_state: int = 42


class RetrainParams(Section):
    """The training deployment (``make deploy``): its schedule, and what a run may override.

    A run started from the UI, a schedule or the monitoring flow's event may change only the
    keys that match ``allowed_overrides`` (``fnmatch`` patterns on dotted keys). The list is
    read from the served checkout's ``params.yaml``: reviewed like code, never overridable.
    """

    cron: str | None = "0 3 * * 1"
    schedule_active: bool = False
    # time zone of the cron schedule
    timezone: str = "UTC"
    allowed_overrides: list[str] = Field(
        default_factory=lambda: [
            "collect.window",
            "collect.window.*",
            "choose.candidates",
            "choose.cv_folds",
            "choose.sample_rows",
            "choose.random_state",
            "train.*",
            "evaluate.bootstrap_samples",
            "evaluate.importance_rows",
            "evaluate.top_features",
        ]
    )
    # the largest number a run may set for each allowed key (fnmatch patterns): a number
    # for an allowed key without a bound here is refused, so no run holds the retraining
    # slot for as long as its caller likes
    override_limits: dict[str, float] = Field(
        default_factory=lambda: {
            "choose.cv_folds": 10,
            "choose.sample_rows": 1_000_000,
            "choose.random_state": 2**31 - 1,
            "train.n_trials": 200,
            "train.early_stopping_rounds": 1000,
            "train.in_memory_rows": 5_000_000,
            "train.random_state": 2**31 - 1,
            "evaluate.bootstrap_samples": 5000,
            "evaluate.importance_rows": 100_000,
            "evaluate.top_features": 100,
        }
    )

    @field_validator("cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(
                f"'{value}' is not a cron expression of five fields (minute hour day month weekday)"
            )
        return value


# --------------------------------------------------------------------------- step 10: monitoring
class MonitorParams(Section):
    """Step 10: drift and live-performance checks of the serving model, and when to alert."""

    window_hours: float = Field(24.0, gt=0)
    min_window_rows: int = Field(500, ge=1)
    # windows above this many rows are sampled: distance-based drift needs no more, and
    # p-value tests are not used because on big samples they flag tiny, harmless shifts
    max_window_rows: int = Field(50000, ge=1000)
    num_method: Literal["wasserstein", "psi", "hellinger", "kl_div", "jensenshannon"] = (
        "wasserstein"
    )
    # distance for categorical drift
    cat_method: Literal["jensenshannon", "psi", "hellinger", "kl_div"] = "jensenshannon"
    drift_threshold: float = Field(0.1, gt=0)
    drift_share_alert: float = Field(0.3, gt=0, le=1)
    # a larger distance of the score's distribution is prediction drift (raised to the noise floor
    # of small windows)
    prediction_drift_threshold: float = Field(0.1, gt=0)
    # a category the serving model never saw (even one the data-quality suite now accepts)
    unseen_share_alert: float = Field(0.02, gt=0, le=1)
    min_labelled_rows: int = Field(200, ge=1)
    # live ROC-AUC this far below the champion's sealed-test ROC-AUC alerts (concept drift)
    max_roc_auc_drop: float = Field(0.05, gt=0)
    # regression: a live RMSE this share above the champion's sealed-test RMSE alerts; so
    # does the error estimated before the labels (DLE, tasks.monitor.loss_estimate)
    max_error_rise: float = Field(0.2, gt=0)
    # the same drop on the ROC-AUC estimated from the scores before the labels arrive (CBPE,
    # tasks.monitor.estimate); null: the estimate is reported, never alerts
    max_estimated_roc_auc_drop: float | None = Field(0.05, gt=0)
    estimate_draws: int = Field(200, ge=20)
    cooldown_hours: float = Field(24.0, ge=0)
    # labels come problem.label_delay_days late: a retraining can only learn a drifted period
    # once its labels have arrived, so it is requested when this many days of them exist
    # (and again each time as many more have arrived while the alerts go on)
    min_drifted_label_days: float = Field(7.0, ge=0)
    retrain_window_days: int = Field(90, ge=1)
    # the champion scoring this much worse than the previous one on the same labelled
    # requests rolls it back (binary: ROC-AUC points; regression: the RMSE's relative rise)
    rollback_margin: float = Field(0.02, ge=0)
    min_window_requests: int = Field(100, ge=1)
    max_p99_latency_ms: float = Field(100.0, gt=0)
    max_4xx_share: float = Field(0.05, ge=0, le=1)
    max_5xx_share: float = Field(0.01, ge=0, le=1)
    log_retention_days: int = Field(90, ge=1)
    """Predictions (rows, input segments, label events) older than this are removed by the
    monitoring flow (at 1,500 requests a second, a day is 130M rows)."""
    cron: str = "0 * * * *"
    workspace_dir: str = "monitoring"
    # seed of the window sampling and the estimate's label draws
    random_state: int = 42


# --------------------------------------------------------------------------- all
class ComputeParams(Section):
    """Where the heavy work inside a stage runs (docs/scale-out.md).

    ``local``: in the stage's own process. ``dask``: on a Dask cluster, the one at
    ``address`` or, when it is null, a local cluster of ``n_workers`` processes started
    for the stage. Data reaches the workers as Parquet partitions in ``shared_dir``.
    """

    engine: Literal["local", "dask"] = "local"
    address: str | None = None
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    partition_rows: int = Field(250_000, ge=1000)
    shared_dir: str | None = None

    @field_validator("address")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"'{value}' is not a scheduler address; write it as tcp://host:8786")
        return value

    @model_validator(mode="after")
    def _remote_needs_storage(self) -> "ComputeParams":
        if self.engine == "dask" and self.address and not self.shared_dir:
            raise ValueError(
                "a remote Dask cluster (compute.address) needs compute.shared_dir: storage every "
                "worker can read, such as s3://bucket/prefix"
            )
        return self


class Params(Section):
    """All of ``params.yaml``, one typed section per step."""

    problem: ProblemParams
    feasibility: FeasibilityParams = FeasibilityParams()
    collect: CollectParams
    clean: CleanParams = CleanParams()
    features: FeaturesParams = FeaturesParams()
    split: SplitParams = SplitParams()
    choose: ChooseParams = ChooseParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    promote: PromoteParams = PromoteParams()
    retrain: RetrainParams = RetrainParams()
    monitor: MonitorParams = MonitorParams()
    compute: ComputeParams = ComputeParams()

    @model_validator(mode="after")
    def _models_of_the_type(self) -> "Params":
        """choose.candidates (and choose.params) name models of the problem's type."""
        kinds = MODEL_KINDS.get(self.problem.type, ())
        wrong = [k for k in self.choose.candidates if k not in kinds]
        if wrong:
            raise ValueError(
                f"choose.candidates: {', '.join(dict.fromkeys(wrong))} is not a model of a "
                f"{self.problem.type} problem; its models are {', '.join(kinds)} (set "
                "choose.candidates and the keys of choose.params to those)"
            )
        return self

    @model_validator(mode="after")
    def _no_role_for_a_dropped_column(self) -> "Params":
        """A column collect.pii drops cannot be the target, id, time or any named column."""
        dropped = {c for c, action in self.collect.pii.items() if action == "drop"}
        if not dropped:
            return self
        problem, rule = self.problem, self.problem.baseline.rule
        named = {
            "problem.target": [problem.target],
            "problem.id_column": [problem.id_column],
            "problem.time_column": [problem.time_column],
            "problem.post_outcome_columns": problem.post_outcome_columns,
            "problem.baseline.rule.column": [rule.column if rule else None],
            "split.group_column": [self.split.group_column],
            "evaluate.slices": self.evaluate.slices,
            "evaluate.sensitive": self.evaluate.sensitive,
        }
        clashes = [
            f"{key} names '{column}', which collect.pii drops before any step sees it: "
            f"remove it from collect.pii (or set it to pseudonymise), or from {key}"
            for key, columns in named.items()
            for column in columns
            if column in dropped
        ]
        if clashes:
            raise ValueError("; ".join(clashes))
        return self


class ParamsError(ValueError):
    """``params.yaml`` is missing, unreadable or does not match the typed models."""


class UndeclaredKey(ParamsError):
    """A step read a params key its signature does not declare (a bug in the step)."""


def _describe(err: dict[str, Any], known: dict[str, list[str]]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    if err["type"] == "value_error":
        text = str(err.get("ctx", {}).get("error", err["msg"]))
        if not loc or text.startswith(f"{loc}."):  # a check across keys names its keys
            return text
    if err["type"] == "extra_forbidden":
        parent, _, key = loc.rpartition(".")
        hint = difflib.get_close_matches(key, known.get(parent, []), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"{loc}: unknown key{suggestion}"
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    if isinstance(value, bool):
        shown += (
            ": YAML reads unquoted yes/no/on/off/true/false as a boolean; "
            "quote the value, as in 'Yes'"
        )
    return f"{loc}: {err['msg']}{shown}"


def known_keys(model: type[BaseModel], prefix: str = "") -> dict[str, list[str]]:
    """Each section's dotted name (``""`` for the top) to the keys it may hold."""
    out: dict[str, list[str]] = {prefix: list(model.model_fields)}
    for name, field in model.model_fields.items():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out.update(known_keys(arg, f"{prefix}.{name}" if prefix else name))
    return out


# Renamed sections: the old name's keys, and where each now lives (an old section is
# refused with this map in the message; it is not read any more).
RENAMED = {
    "deploy": {
        **{k: f"promote.{k}" for k in PromoteParams.model_fields},
        "retrain_cron": "retrain.cron",
        "retrain_schedule_active": "retrain.schedule_active",
        "timezone": "retrain.timezone",
    }
}


def refuse_renamed(raw: dict[str, Any], source: str = "params.yaml") -> None:
    """Refuse a section that was renamed, saying where each of its keys lives now.

    Raises
    ------
    ParamsError
    """
    for old, moves in RENAMED.items():
        if old not in raw:
            continue
        section = raw[old] if isinstance(raw[old], dict) else {}
        given = [f"{old}.{k} -> {moves[k]}" for k in section if k in moves]
        raise ParamsError(
            f"{source}: the '{old}' section was split into "
            + " and ".join(sorted({f"'{m.split('.')[0]}'" for m in moves.values()}))
            + ": move "
            + (", ".join(given) if given else "its keys")
            + " (docs/reference/params.md lists every key)"
        )


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping.

    Parameters
    ----------
    raw : dict
        The parsed YAML.
    source : str
        Name used in error messages.

    Returns
    -------
    Params

    Raises
    ------
    ParamsError
        Listing every bad key by its dotted name.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    refuse_renamed(raw, source)
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        known = known_keys(Params)
        lines = [_describe(e, known) for e in exc.errors()]
        raise ParamsError(f"{source} is invalid:\n  " + "\n  ".join(lines)) from None
    return params


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml`` once."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project folder, or copy params.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
