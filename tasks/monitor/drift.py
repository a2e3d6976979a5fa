"""Data and prediction drift, measured with Evidently as the *size* of a shift.

Normed Wasserstein distance for numbers, Jensen-Shannon distance for categories, thresholds
in ``params.yaml`` section ``monitor``; never p-value tests: on a window of a million rows a
p-value test flags shifts too small to matter. Windows above ``monitor.max_window_rows`` are
sampled, which keeps a check of any window size well under a minute and changes a distance
by sampling noise only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import MonitorParams

NOISE_ROUNDS, NOISE_MARGIN = 50, 1.25


PREDICTION = "prediction"


@dataclass
class DriftResult:
    """An Evidently snapshot (for HTML and the workspace) and its summary."""

    snapshot: Any
    summary: dict[str, Any]


def sample_rows(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    return frame.sample(limit, random_state=seed) if len(frame) > limit else frame


def _near_constant(values: np.ndarray) -> bool:
    """Non-empty and constant up to float noise."""
    return bool(values.size) and bool(
        np.ptp(values) <= 1e-9 * max(1.0, float(np.abs(values).max()))
    )


def prediction_noise_floor(reference: np.ndarray, n: int, cfg: MonitorParams) -> float | None:
    """The normed Wasserstein distance that sampling alone produces (a window of ``n`` rows).

    The prediction is the one column that alerts on its own, so it must not alert on noise:
    on a small window (the minimum is ``monitor.min_window_rows``) a distance of 0.1 is
    within chance. This draws ``NOISE_ROUNDS`` windows of ``n`` from the reference, takes
    the largest distance, scales it for the reference's own sampling error
    (``sqrt(1 + n/m)``) and adds a 25% margin. The prediction drifts only above both this
    floor and ``monitor.prediction_drift_threshold``. None for methods other than Wasserstein.
    """
    from scipy.stats import wasserstein_distance

    reference = reference[np.isfinite(reference)]
    spread = float(np.std(reference)) if reference.size else 0.0
    if cfg.num_method != "wasserstein" or n < 1 or spread == 0.0:
        return None
    rng = np.random.default_rng(cfg.random_state)
    largest = max(
        wasserstein_distance(reference, rng.choice(reference, n, replace=True)) / spread
        for _ in range(NOISE_ROUNDS)
    )
    return float(largest * NOISE_MARGIN * np.sqrt(1 + n / reference.size))


def class_noise_floor(reference: np.ndarray, n: int, cfg: MonitorParams) -> float | None:
    """:func:`prediction_noise_floor` for a predicted class (multiclass): the Jensen-Shannon
    distance of the class mix that sampling ``n`` rows alone produces. None for methods other
    than Jensen-Shannon."""
    from scipy.spatial.distance import jensenshannon

    if cfg.cat_method != "jensenshannon" or n < 1 or not reference.size:
        return None
    classes, counts = np.unique(reference.astype(str), return_counts=True)
    if len(classes) < 2:
        return None
    share = counts / counts.sum()
    rng = np.random.default_rng(cfg.random_state)
    largest = max(
        float(jensenshannon(share, rng.multinomial(n, share) / n)) for _ in range(NOISE_ROUNDS)
    )
    return float(largest * NOISE_MARGIN * np.sqrt(1 + n / reference.size))


def drift_check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    cfg: MonitorParams,
    timestamp: dt.datetime | None = None,
) -> DriftResult:
    """Per-feature and prediction drift of ``current`` against ``reference``.

    Both frames hold the model's input columns and a ``prediction`` column: the score, or
    the decided class of a multiclass model (its drift is the predicted class mix's, with
    ``monitor.cat_method``).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue, ValueDrift
    from evidently.presets import DataDriftPreset

    numeric = [c for c in numeric if c in reference and c in current]
    categorical = [c for c in categorical if c in reference and c in current]
    # a (near-)constant column has no distribution to compare (and breaks histograms):
    # it drifts only if its constant value moves
    constant: dict[str, float] = {}
    flat_now: list[str] = []  # constant in the window alone: compared, as exactly constant
    for c in list(numeric):
        ref_c = reference[c].dropna().to_numpy(dtype=float)
        cur_c = current[c].dropna().to_numpy(dtype=float)
        if _near_constant(np.concatenate([ref_c, cur_c])):
            numeric.remove(c)
            constant[c] = 0.0
        elif ref_c.size and cur_c.size and _near_constant(ref_c):
            numeric.remove(c)
            constant[c] = 1.0  # constant in training, varies now: a drift by definition
        elif _near_constant(cur_c):
            flat_now.append(c)
    columns = [*numeric, *categorical, PREDICTION]
    ref = sample_rows(reference[columns], cfg.max_window_rows, cfg.random_state)
    cur = sample_rows(current[columns], cfg.max_window_rows, cfg.random_state + 1)
    for c in flat_now:  # float noise of 1e-16 would make a 10-bin histogram fail
        cur[c] = cur[c].where(cur[c].isna(), float(cur[c].median()))
    classes = not pd.api.types.is_numeric_dtype(reference[PREDICTION])  # a predicted class
    for c in [*categorical, PREDICTION] if classes else categorical:
        # one category type on both sides, missing as its own value
        ref[c] = ref[c].astype("string").fillna("(missing)")
        cur[c] = cur[c].astype("string").fillna("(missing)")
    definition = DataDefinition(
        numerical_columns=numeric if classes else [*numeric, PREDICTION],
        categorical_columns=[*categorical, PREDICTION] if classes else categorical,
    )
    if classes:
        noise = class_noise_floor(ref[PREDICTION].to_numpy(), len(cur), cfg)
    else:
        noise = prediction_noise_floor(ref[PREDICTION].to_numpy(dtype=float), len(cur), cfg)
    thresholds = {
        **{c: cfg.drift_threshold for c in numeric + categorical},
        PREDICTION: max(cfg.prediction_drift_threshold, noise or 0.0),
    }
    # The report's configuration is the same in every run (the dashboard draws one line per
    # configuration): the features with the static threshold, and the prediction's own drift
    # with its static threshold; this run's noise floor is applied to the distance below.
    features_only = [*numeric, *categorical]
    report = Report(
        [
            DataDriftPreset(
                columns=features_only,
                num_method=cfg.num_method,
                cat_method=cfg.cat_method,
                per_column_threshold={c: cfg.drift_threshold for c in features_only},
                drift_share=cfg.drift_share_alert,
            ),
            ValueDrift(
                column=PREDICTION,
                method=cfg.cat_method if classes else cfg.num_method,
                threshold=cfg.prediction_drift_threshold,
            ),
            *([] if classes else [MeanValue(column=PREDICTION)]),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
        timestamp=timestamp,
        name="drift",
    )
    distances: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config") or {}
        if config.get("type", "").endswith("ValueDrift"):
            distances[config["column"]] = float(metric["value"])
    distances.update(constant)
    thresholds.update({c: cfg.drift_threshold for c in constant})
    features = [c for c in distances if c != PREDICTION]
    drifted = sorted(c for c in features if distances[c] >= thresholds[c])
    summary = {
        "rows_reference": int(len(reference)),
        "rows_current": int(len(current)),
        "rows_compared": {"reference": int(len(ref)), "current": int(len(cur))},
        "sampled": bool(len(current) > cfg.max_window_rows or len(reference) > cfg.max_window_rows),
        "methods": {"numeric": cfg.num_method, "categorical": cfg.cat_method},
        "drift_share": round(len(drifted) / max(len(features), 1), 4),
        "drifted_columns": drifted,
        "distances": {c: round(v, 5) for c, v in sorted(distances.items())},
        "prediction_drift": round(distances.get(PREDICTION, float("nan")), 5),
        "prediction_drifted": bool(distances.get(PREDICTION, 0.0) >= thresholds[PREDICTION]),
        "prediction_threshold": round(thresholds[PREDICTION], 5),
        "prediction_noise_floor": None if noise is None else round(noise, 5),
    }
    if classes:
        summary["prediction_mix"] = {
            side: {
                str(k): round(float(v), 4)
                for k, v in frame[PREDICTION].value_counts(normalize=True).sort_index().items()
            }
            for side, frame in (("reference", ref), ("current", cur))
        }
    else:
        summary["prediction_mean"] = {
            "reference": float(np.mean(ref[PREDICTION])),
            "current": float(np.mean(cur[PREDICTION])),
        }
    return DriftResult(snapshot, summary)
