"""The regression objective: a number."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import EvaluateParams, FairnessLimits, FeasibilityParams, MonitorParams
from tasks.core.data.labels import observed_labels
from tasks.core.data.schema import parse_numbers
from tasks.core.ml.objectives.base import (
    Kind,
    Objective,
    SignalSpec,
    TargetError,
)


def number_error(value: Any) -> str | None:
    """Why ``value`` is not a finite number (a regression's label), or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return None
    return f"a label is a finite number, not {value!r}"


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

    XGBOOST = {"eval_metric": "rmse"}
    DASK_XGBOOST = "DaskXGBRegressor"
    ESTIMATORS = {
        "ridge": Kind("sklearn.linear_model.Ridge", seeded=False),
        "random_forest": Kind("sklearn.ensemble.RandomForestRegressor", {"n_jobs": 2}),
        "xgboost": Kind("xgboost.XGBRegressor", {"tree_method": "hist", "n_jobs": 2, **XGBOOST}),
    }

    STRATA = 5
    """A split and the folds stratify on this many quantile bins of the target."""

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
