"""A regression's error estimated before the labels arrive: direct loss estimation (DLE).

The method is NannyML's DLE ("Direct Loss Estimation", NannyML's documentation, *How it
works: performance estimation*, https://nannyml.readthedocs.io/en/stable/how_it_works/
performance_estimation.html#direct-loss-estimation-dle), implemented here for the reason
:mod:`tasks.monitor.estimate` gives:

1. On the champion's reference sample (labelled rows it was not trained on), a gradient-boosted
   model learns the absolute error ``|y - prediction|`` from the model's inputs and its
   prediction; a second one learns the squared error.
2. In a window, the mean of the first model's answers is the estimated MAE; the root of the
   second's mean is the estimated RMSE. The band is the spread the realised figure would have
   on a window of this size (the reference's errors' standard deviation over the root of the
   window's rows), like NannyML's sampling error; the loss model's own error is not in it.

What it can see: rows moving to where the model errs more (covariate shift: a region of the
inputs with more noise, or one the model fits worse, seen on the reference). What it cannot:
a change of the relationship between the inputs and the target (concept drift) leaves the
inputs, and so the estimate, where they were; only the labels show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import EvaluateParams, MonitorParams
from tasks.core.ml.objective import Objective
from tasks.monitor.drift import sample_rows
from tasks.monitor.estimate import opened

METHOD = "DLE (NannyML): gradient-boosted models of the absolute and squared error"
ESTIMATED = ("mae", "rmse")
"""The figures estimated; the alert judges the primary metric if it is one, else MAE."""
MIN_REFERENCE_ROWS = 200


@dataclass(frozen=True)
class LossModel:
    """Models of a row's absolute and squared error, and the reference's spread of each."""

    absolute: Any
    squared: Any
    numeric: list[str]
    categorical: list[str]
    spread: dict[str, float]
    rows: int

    def inputs(self, frame: pd.DataFrame, score: str) -> pd.DataFrame:
        numbers = frame.reindex(columns=self.numeric).apply(pd.to_numeric, errors="coerce")
        categories = frame.reindex(columns=self.categorical).astype("string").fillna("")
        categories = categories.astype(object)
        return pd.concat(
            [numbers, categories, frame[score].astype(float).rename("_prediction")], axis=1
        )

    def errors(self, frame: pd.DataFrame, score: str = "score") -> dict[str, np.ndarray]:
        """Each row's estimated absolute and squared error."""
        X = self.inputs(frame, score)
        return {
            "mae": np.clip(self.absolute.predict(X), 0.0, None),
            "rmse": np.clip(self.squared.predict(X), 0.0, None),
        }


def fit_loss_model(
    reference: pd.DataFrame,
    target: str,
    numeric: list[str],
    categorical: list[str],
    random_state: int = 0,
    score: str = "prediction",
) -> LossModel:
    """Fit the loss models on the reference sample's labels and predictions.

    Raises
    ------
    ValueError
        If the reference has no labelled predictions to learn the error from.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if target not in reference or score not in reference:
        raise ValueError(f"the reference sample has no {target!r} and {score!r} columns")
    rows = reference[pd.to_numeric(reference[target], errors="coerce").notna()]
    if len(rows) < MIN_REFERENCE_ROWS:
        raise ValueError(
            f"the reference sample holds {len(rows)} labelled rows (needs {MIN_REFERENCE_ROWS})"
        )
    numeric = [c for c in numeric if c in rows]
    categorical = [c for c in categorical if c in rows]
    error = (rows[target].astype(float) - rows[score].astype(float)).to_numpy()
    model = LossModel(None, None, numeric, categorical, {}, int(len(rows)))
    X = model.inputs(rows, score)

    def learner() -> Any:
        encode = ColumnTransformer(
            [
                (
                    "categories",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                    ),
                    categorical,
                )
            ],
            remainder="passthrough",
        )
        boost = HistGradientBoostingRegressor(
            max_iter=150, learning_rate=0.05, min_samples_leaf=40, random_state=random_state
        )
        return make_pipeline(encode, boost)

    absolute, squared = np.abs(error), error**2
    return LossModel(
        learner().fit(X, absolute),
        learner().fit(X, squared),
        numeric,
        categorical,
        {"mae": float(absolute.std()), "rmse": float(squared.std())},
        int(len(rows)),
    )


def estimate(frame: pd.DataFrame, loss: LossModel, confidence: float = 0.95) -> dict[str, Any]:
    """Estimated MAE and RMSE of a window's predictions (``score``), with their bands."""
    errors = loss.errors(frame)
    n = max(len(frame), 1)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mae = float(errors["mae"].mean())
    mse = float(errors["rmse"].mean())
    half = {name: z * spread / float(np.sqrt(n)) for name, spread in loss.spread.items()}
    return {
        "rows": int(len(frame)),
        "mae": round(mae, 4),
        "mae_band": [round(max(mae - half["mae"], 0.0), 4), round(mae + half["mae"], 4)],
        "rmse": round(float(np.sqrt(mse)), 4),
        "rmse_band": [
            round(float(np.sqrt(max(mse - half["rmse"], 0.0))), 4),
            round(float(np.sqrt(mse + half["rmse"])), 4),
        ],
        "confidence": confidence,
    }


def judged_metric(primary: str) -> str:
    """The estimated figure the alert judges: the primary metric if estimated, else MAE."""
    return primary if primary in ESTIMATED else "mae"


def estimate_reasons(
    found: dict[str, Any], tested: float | None, max_rise: float | None
) -> list[str]:
    """Why the estimate alone calls for attention (empty: it does not)."""
    name = found["metric"]
    value = found.get(name)
    if max_rise is None or not tested or value is None:
        return []
    rise = value / tested - 1.0
    if rise < max_rise:
        return []
    return [
        f"estimated {name} {value:.4g} (DLE, band {found[f'{name}_band']}) is {rise:.0%} above "
        f"the champion's test {name} {tested:.4g} (alert at a rise of {max_rise:.0%})"
    ]


def window_estimate(
    window: pd.DataFrame,
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    card: dict[str, Any],
    objective: Objective,
    cfg: MonitorParams,
    evaluate: EvaluateParams,
) -> dict[str, Any]:
    """The monitoring flow's estimate for a regression: the window's MAE and RMSE from its
    inputs and predictions, and, for the predictions whose labels arrived, the estimate
    they had beside their realised MAE."""
    target = objective.problem.target
    name = judged_metric(objective.problem.primary_metric)
    out = opened(METHOD, name, list(ESTIMATED), len(window), cfg)
    if "note" in out:
        return out
    try:
        loss = fit_loss_model(
            reference,
            target,
            card.get("numeric_features", []),
            card.get("categorical_features", []),
            cfg.random_state,
        )
    except ValueError as exc:
        out["note"] = f"no estimate: {exc}"
        return out
    tested = ((card.get("metrics") or {}).get("test") or {}).get(name)
    rows = sample_rows(window, cfg.max_window_rows, cfg.random_state)
    out.update(estimate(rows, loss), evaluated=True, reference_rows=loss.rows)
    out[f"test_{name}"] = tested
    out["reasons"] = estimate_reasons(out, tested, cfg.max_error_rise)
    known = labelled[labelled["label"].notna()] if len(labelled) else labelled
    if len(known) >= cfg.min_labelled_rows:
        then = estimate(known, loss)
        realised = float(np.mean(np.abs(known["label"].astype(float) - known["score"])))
        out["labelled"] = {
            "metric": "mae",
            "rows": int(len(known)),
            "estimated_mae": then["mae"],
            "mae_band": then["mae_band"],
            "realised_mae": round(realised, 4),
            "absolute_error": round(abs(then["mae"] - realised), 4),
        }
    return out
