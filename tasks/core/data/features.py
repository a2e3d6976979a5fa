"""Row-wise feature definitions, shared by the features step and record scoring.

Every feature is computed from one row's values only, so it works on any partition of the
data and on a single record at serving time. Features whose input columns are absent are
skipped, so the same code serves any dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import ProblemParams


@dataclass(frozen=True)
class Feature:
    """A row-wise feature: its name, what it means, the columns it needs, how to compute it."""

    name: str
    description: str
    requires: tuple[str, ...]
    compute: Callable[[pd.DataFrame], pd.Series]
    scalar: Callable[[Mapping[str, Any]], float]
    """The same feature for one record's standardised values (the compiled scoring path;
    a parity test holds it to ``compute``)."""
    vector: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    """The same feature for a batch's columns as NumPy arrays (numbers float64 with NaN
    missing, dates datetime64[us] with NaT): the compiled batch path, equal to ``scalar``
    row by row."""


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 86400.0


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


NAN = float("nan")


def days(later: Any, earlier: Any) -> float:
    """Days between two datetimes of one record (NaN when either is missing)."""
    if later is None or earlier is None:
        return NAN
    return (later - earlier).total_seconds() / 86400.0


def ratio(num: float, den: float) -> float:
    """``num / den`` for one record; NaN unless ``den`` is positive."""
    return num / den if den > 0 else NAN


def _clip1(value: float) -> float:
    return value if math.isnan(value) or value >= 1 else 1.0


_SECOND = np.timedelta64(1, "s")


def days_of(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """:func:`days` of two datetime64 columns (NaN where either is NaT)."""
    return (later - earlier) / _SECOND / 86400.0


def ratio_of(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """:func:`ratio` of two number columns."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, NAN)


def _clip1_of(values: np.ndarray) -> np.ndarray:
    return np.where(values < 1, 1.0, values)  # NaN stays NaN


FEATURES: tuple[Feature, ...] = (
    Feature(
        "days_since_last_activity",
        "days between the last activity and the snapshot date",
        ("snapshot_date", "last_activity_date"),
        lambda d: _days(d["snapshot_date"], d["last_activity_date"]),
        lambda r: days(r["snapshot_date"], r["last_activity_date"]),
        lambda c: days_of(c["snapshot_date"], c["last_activity_date"]),
    ),
    Feature(
        "account_age_days",
        "days between sign-up and the snapshot date",
        ("snapshot_date", "signup_date"),
        lambda d: _days(d["snapshot_date"], d["signup_date"]),
        lambda r: days(r["snapshot_date"], r["signup_date"]),
        lambda c: days_of(c["snapshot_date"], c["signup_date"]),
    ),
    Feature(
        "charges_per_tenure_month",
        "total charges divided by months of tenure (at least 1)",
        ("total_charges", "tenure_months"),
        lambda d: d["total_charges"] / d["tenure_months"].clip(lower=1),
        lambda r: r["total_charges"] / _clip1(r["tenure_months"]),
        lambda c: c["total_charges"] / _clip1_of(c["tenure_months"]),
    ),
    Feature(
        "tickets_per_month",
        "support tickets in the last 90 days, per month",
        ("support_tickets_90d",),
        lambda d: d["support_tickets_90d"] / 3.0,
        lambda r: r["support_tickets_90d"] / 3.0,
        lambda c: c["support_tickets_90d"] / 3.0,
    ),
    Feature(
        "usage_per_device",
        "hours of use in the last 30 days per device",
        ("usage_hours_30d", "num_devices"),
        lambda d: _ratio(d["usage_hours_30d"], d["num_devices"]),
        lambda r: ratio(r["usage_hours_30d"], r["num_devices"]),
        lambda c: ratio_of(c["usage_hours_30d"], c["num_devices"]),
    ),
    Feature(
        "charge_per_device",
        "monthly charge per device",
        ("monthly_charges", "num_devices"),
        lambda d: _ratio(d["monthly_charges"], d["num_devices"]),
        lambda r: ratio(r["monthly_charges"], r["num_devices"]),
        lambda c: ratio_of(c["monthly_charges"], c["num_devices"]),
    ),
    Feature(
        "expected_vs_billed",
        "total charges over tenure x monthly charge (1 = billed as expected)",
        ("total_charges", "tenure_months", "monthly_charges"),
        lambda d: _ratio(d["total_charges"], d["tenure_months"] * d["monthly_charges"]),
        lambda r: ratio(r["total_charges"], r["tenure_months"] * r["monthly_charges"]),
        lambda c: ratio_of(c["total_charges"], c["tenure_months"] * c["monthly_charges"]),
    ),
)


def applicable(frame: pd.DataFrame, features: tuple[Feature, ...] = FEATURES) -> list[Feature]:
    """The features whose input columns are all in ``frame``."""
    return [f for f in features if all(c in frame.columns for c in f.requires)]


def date_features(frame: pd.DataFrame, problem: ProblemParams, used: set[str]) -> list[Feature]:
    """``days_before_<col>`` for date columns not already used, when there is a time column."""
    time = problem.time_column
    if not time or time not in frame:
        return []
    out = []
    for column in frame.columns:
        if (
            column != time
            and column not in used
            and pd.api.types.is_datetime64_any_dtype(frame[column])
        ):
            out.append(
                Feature(
                    f"days_before_{column}",
                    f"days between {column} and {time}",
                    (time, column),
                    lambda d, c=column: _days(d[time], d[c]),
                    lambda r, c=column: days(r[time], r[c]),
                    lambda v, c=column: days_of(v[time], v[c]),
                )
            )
    return out


def feature_list(frame: pd.DataFrame, problem: ProblemParams) -> list[Feature]:
    """The features ``frame``'s columns allow: the applicable ones, then day counts of other
    dates."""
    features = applicable(frame)
    used = {c for f in features for c in f.requires}
    return features + date_features(frame, problem, used)


def build_features(
    frame: pd.DataFrame, problem: ProblemParams, drop: list[str]
) -> tuple[pd.DataFrame, list[Feature]]:
    """Add engineered features and drop what must never be a feature (a new frame).

    Drops post-outcome columns, ``features.drop_columns`` and raw date columns (their
    information is kept as day counts); keeps the id, the target and the time column,
    which later steps need and the model pipeline leaves out.

    Returns
    -------
    (DataFrame, list of Feature)
    """
    features = feature_list(frame, problem)
    added = {
        f.name: f.compute(frame).astype(float).replace([np.inf, -np.inf], np.nan) for f in features
    }
    out = frame.assign(**added)
    dates = [
        c
        for c in out.columns
        if c != problem.time_column and pd.api.types.is_datetime64_any_dtype(out[c])
    ]
    never = [c for c in (*problem.post_outcome_columns, *drop, *dates) if c in out.columns]
    return out.drop(columns=never), features


def features_only(frame: pd.DataFrame, problem: ProblemParams, drop: list[str]) -> pd.DataFrame:
    """:func:`build_features` without the feature list (what a Dask worker returns per
    partition)."""
    return build_features(frame, problem, drop)[0]
