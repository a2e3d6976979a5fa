"""Step 5, features: row-wise engineered features, each with a one-line description.

Every feature is computed from one row's values only, so the step works on any
partition of the data independently (the Dask engine runs it per partition). Features
whose input columns are absent are skipped, so the same code serves any dataset; for a
dataset with a time column, every other date column becomes "days before the snapshot".
Anything fitted (imputation, encodings, scaling) is left to the model pipeline, where it
is fitted on the training split only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.compute import engine
from tasks.core.config import Params, ProblemParams
from tasks.core.io import write_parquet, write_text
from tasks.core.paths import PATHS
from tasks.core.step import run_step

log = logging.getLogger("churn.features")
STEP = "features"


@dataclass(frozen=True)
class Feature:
    """A row-wise feature: its name, what it means, the columns it needs, how to compute it."""

    name: str
    description: str
    requires: tuple[str, ...]
    compute: Callable[[pd.DataFrame], pd.Series]


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 86400.0


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


FEATURES: tuple[Feature, ...] = (
    Feature("days_since_last_activity", "days between the last activity and the snapshot date",
            ("snapshot_date", "last_activity_date"), lambda d: _days(d["snapshot_date"], d["last_activity_date"])),
    Feature("account_age_days", "days between sign-up and the snapshot date",
            ("snapshot_date", "signup_date"), lambda d: _days(d["snapshot_date"], d["signup_date"])),
    Feature("charges_per_tenure_month", "total charges divided by months of tenure (at least 1)",
            ("total_charges", "tenure_months"), lambda d: d["total_charges"] / d["tenure_months"].clip(lower=1)),
    Feature("tickets_per_month", "support tickets in the last 90 days, per month",
            ("support_tickets_90d",), lambda d: d["support_tickets_90d"] / 3.0),
    Feature("usage_per_device", "hours of use in the last 30 days per device",
            ("usage_hours_30d", "num_devices"), lambda d: _ratio(d["usage_hours_30d"], d["num_devices"])),
    Feature("charge_per_device", "monthly charge per device",
            ("monthly_charges", "num_devices"), lambda d: _ratio(d["monthly_charges"], d["num_devices"])),
    Feature("expected_vs_billed", "total charges over tenure x monthly charge (1 = billed as expected)",
            ("total_charges", "tenure_months", "monthly_charges"),
            lambda d: _ratio(d["total_charges"], d["tenure_months"] * d["monthly_charges"])),
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
        if column != time and column not in used and pd.api.types.is_datetime64_any_dtype(frame[column]):
            out.append(Feature(f"days_before_{column}", f"days between {column} and {time}", (time, column),
                               lambda d, c=column: _days(d[time], d[c])))
    return out


def feature_list(frame: pd.DataFrame, problem: ProblemParams) -> list[Feature]:
    """The features ``frame``'s columns allow: the applicable ones, then day counts of other dates."""
    features = applicable(frame)
    used = {c for f in features for c in f.requires}
    return features + date_features(frame, problem, used)


def build_features(frame: pd.DataFrame, problem: ProblemParams, drop: list[str]) -> tuple[pd.DataFrame, list[Feature]]:
    """Add engineered features and drop what must never be a feature (a new frame).

    Drops post-outcome columns, ``features.drop_columns`` and raw date columns (their
    information is kept as day counts); keeps the id, the target and the time column,
    which later steps need and the model pipeline leaves out.

    Returns
    -------
    (DataFrame, list of Feature)
    """
    features = feature_list(frame, problem)
    added = {f.name: f.compute(frame).astype(float).replace([np.inf, -np.inf], np.nan) for f in features}
    out = frame.assign(**added)
    dates = [c for c in out.columns if c != problem.time_column and pd.api.types.is_datetime64_any_dtype(out[c])]
    never = [c for c in (*problem.post_outcome_columns, *drop, *dates) if c in out.columns]
    return out.drop(columns=never), features


def features_only(frame: pd.DataFrame, problem: ProblemParams, drop: list[str]) -> pd.DataFrame:
    """:func:`build_features` without the feature list (what a Dask worker returns per partition)."""
    return build_features(frame, problem, drop)[0]


def features_table(frame: pd.DataFrame, engineered: list[Feature], problem: ProblemParams) -> str:
    """``reports/features.md``: every model input with its kind and description."""
    made = {f.name: f for f in engineered}
    skip = {problem.id_column, problem.target, problem.time_column}
    rows = []
    for column in frame.columns:
        if column in skip:
            continue
        kind = "numeric" if pd.api.types.is_numeric_dtype(frame[column]) else "categorical"
        text = made[column].description if column in made else "as collected (cleaned)"
        origin = "engineered" if column in made else "input"
        rows.append(f"| `{column}` | {origin} | {kind} | {frame[column].isna().mean():.1%} | {text} |")
    return ("# Features\n\nModel inputs after step 5. Row-wise only: anything fitted happens in the model "
            "pipeline on the training split.\n\n| feature | origin | kind | missing | description |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main(root: Path, params: Params) -> None:
    """Engineer features on the cleaned data (per partition on the Dask engine)."""
    frame = pd.read_parquet(root / PATHS.interim_clean)
    with engine(params.compute, root, STEP) as eng:
        parts = eng.map_partitions(features_only, frame, "clean", problem=params.problem,
                                   drop=params.features.drop_columns)
    out = pd.concat(parts) if len(parts) > 1 else parts[0]
    engineered = feature_list(frame, params.problem)
    write_parquet(root / PATHS.features_table, out)
    write_text(root / PATHS.features_md, features_table(out, engineered, params.problem))
    log.info("%d engineered features (%s); %d columns in %s", len(engineered),
             ", ".join(f.name for f in engineered), out.shape[1], PATHS.features_table)


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
