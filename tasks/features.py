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
from pathlib import Path
from typing import Annotated

import pandas as pd

from tasks.core.config import CollectParams, ComputeParams, FeaturesParams, ProblemParams
from tasks.core.data.features import Feature, feature_list, features_only
from tasks.core.declare import Keys
from tasks.core.io import iter_parts, write_parts, write_text
from tasks.core.paths import PATHS
from tasks.core.quality.pages import md
from tasks.core.runtime.compute import engine
from tasks.core.step import run_step

log = logging.getLogger("churn.features")
STEP = "features"


def features_table(frame: pd.DataFrame, engineered: list[Feature], problem: ProblemParams) -> str:
    """``reports/features.md``: every model input with its kind and description."""
    missing = {c: float(frame[c].isna().mean()) for c in frame.columns}
    return features_table_of(frame.head(0), missing, engineered, problem)


def features_table_of(
    empty: pd.DataFrame,
    missing: dict[str, float],
    engineered: list[Feature],
    problem: ProblemParams,
) -> str:
    """:func:`features_table` from the columns (``empty``: no rows) and their missing shares."""
    made = {f.name: f for f in engineered}
    skip = {problem.id_column, problem.target, problem.time_column}
    rows = []
    for column in empty.columns:
        if column in skip:
            continue
        kind = "numeric" if pd.api.types.is_numeric_dtype(empty[column]) else "categorical"
        text = made[column].description if column in made else "as collected (cleaned)"
        origin = "engineered" if column in made else "input"
        rows.append(f"| {md(column)} | {origin} | {kind} | {missing[column]:.1%} | {md(text)} |")
    return (
        "# Features\n\nModel inputs after step 5. Row-wise only: anything fitted happens in the "
        "model "
        "pipeline on the training split.\n\n| feature | origin | kind | missing | description |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def never_features(problem: ProblemParams, collect: CollectParams) -> list[str]:
    """Pseudonymised personal columns: kept for joins (as the id), never a model input."""
    return [c for c in collect.pii if c not in (problem.id_column, problem.time_column)]


def main(
    root: Path,
    cfg: FeaturesParams,
    problem: Annotated[
        ProblemParams, Keys("target", "id_column", "time_column", "post_outcome_columns")
    ],
    collect: Annotated[CollectParams, Keys("pii")],
    compute: ComputeParams,
) -> None:
    """Engineer features on the cleaned data, part by part (on the Dask engine, each part
    spread over the workers)."""
    drop = [*cfg.drop_columns, *never_features(problem, collect)]
    engineered, empty, rows = None, None, 0
    nulls: pd.Series | None = None
    with engine(compute, root, STEP) as eng, write_parts(root / PATHS.features_table) as out:
        for k, frame in enumerate(iter_parts(root / PATHS.interim_clean)):
            if engineered is None:
                engineered = feature_list(frame, problem)
            for part in eng.map_partitions(
                features_only, frame, f"clean-{k}", problem=problem, drop=drop
            ):
                out.write(part)
                rows += len(part)
                counted = part.isna().sum()
                nulls = counted if nulls is None else nulls + counted
                if empty is None:
                    empty = part.head(0)
        out.close()
    missing = {c: float(nulls[c] / rows) if rows else float("nan") for c in empty.columns}
    write_text(root / PATHS.features_md, features_table_of(empty, missing, engineered, problem))
    log.info(
        "%d engineered features (%s); %d columns in %s",
        len(engineered),
        ", ".join(f.name for f in engineered),
        empty.shape[1],
        PATHS.features_table,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
