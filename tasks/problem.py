"""Step 1, problem & KPIs: state what is predicted and how success is judged, and check it.

Reads the ``problem`` section, validates it against the current raw snapshot (target and
id present, the positive label seen, two classes, a known metric, baseline columns
present) and writes a one-page brief, ``reports/problem_brief.md``, with the baselines a
model has to beat scored on the data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import ProblemParams
from tasks.core.data.snapshots import current_snapshot
from tasks.core.errors import StepError
from tasks.core.io import column_names, write_json, write_text
from tasks.core.ml.objective import TargetError, objective_for
from tasks.core.paths import PATHS
from tasks.core.step import run_step

log = logging.getLogger("churn.problem")
STEP = "problem"


def validate_problem(
    data: pd.DataFrame, cfg: ProblemParams, columns: list[str] | None = None
) -> pd.Series:
    """Check the problem definition against the data and return the 0/1 target.

    Parameters
    ----------
    data : DataFrame
        The raw snapshot, or the columns of it this step reads (:func:`needed_columns`).
    cfg : ProblemParams
    columns : list of str, optional
        All the snapshot's columns, when ``data`` holds only some of them.

    Returns
    -------
    Series of float
        1.0 positive, 0.0 negative, NaN unlabelled.

    Raises
    ------
    StepError
        Naming the key in ``params.yaml`` to fix.
    """
    columns = list(map(str, data.columns)) if columns is None else columns
    for key, column in (("problem.target", cfg.target), ("problem.id_column", cfg.id_column)):
        if column is not None and column not in columns:
            raise StepError(
                STEP,
                "column exists",
                f"{key} '{column}' is not a column of the data; columns are: {columns}",
            )
    if cfg.time_column and cfg.time_column not in columns:
        raise StepError(
            STEP,
            "column exists",
            f"problem.time_column '{cfg.time_column}' is not a column; set it or null",
        )
    rule = cfg.baseline.rule
    if rule is not None and rule.column not in columns:
        raise StepError(
            STEP, "column exists", f"problem.baseline.rule.column '{rule.column}' is not a column"
        )
    try:
        return objective_for(cfg).check_target(data[cfg.target])
    except TargetError as exc:
        raise StepError(STEP, exc.check, str(exc)) from None


def needed_columns(columns: list[str], cfg: ProblemParams) -> list[str]:
    """The columns this step reads: the target and the rule baseline's (those present)."""
    rule = cfg.baseline.rule
    wanted = [cfg.target] + ([rule.column] if rule is not None else [])
    return [c for c in dict.fromkeys(wanted) if c in columns]


def baseline_scores(
    data: pd.DataFrame, y: pd.Series, cfg: ProblemParams
) -> dict[str, dict[str, float]]:
    """Score the configured baselines on the labelled rows (the objective's summary metrics)."""
    objective = objective_for(cfg).for_labels(y)
    labelled = y.notna().to_numpy()
    y_true = objective.labels(y[labelled])
    return {
        name: {m: objective.score(m, y_true, scores) for m in objective.SUMMARY}
        for name, scores in objective.baseline_scores(data[labelled]).items()
    }


def summarise(
    data: pd.DataFrame, y: pd.Series, cfg: ProblemParams, snapshot_id: str
) -> dict[str, Any]:
    """Facts about the problem on this snapshot, for the brief and later steps."""
    return {
        "name": cfg.name,
        "snapshot_id": snapshot_id,
        "rows": int(len(data)),
        "labelled_rows": int(y.notna().sum()),
        **objective_for(cfg).target_facts(y),
        "primary_metric": cfg.primary_metric,
        "kpis": cfg.kpis.model_dump(),
        "baselines": baseline_scores(data, y, cfg),
    }


def render_brief(cfg: ProblemParams, summary: dict[str, Any]) -> str:
    """The one-page problem brief (Markdown)."""
    objective, sm = objective_for(cfg), summary
    unit = (
        f"one row per `{cfg.id_column}`" if cfg.id_column else "one row per record (no id column)"
    )
    summary_metrics = [objective.metric(m) for m in objective.SUMMARY]
    rows = "\n".join(
        f"| {name} | " + " | ".join(f"{s[m.name]:.3f}" for m in summary_metrics) + " |"
        for name, s in summary["baselines"].items()
    )
    floors = "\n".join(
        f"| {f.label} | {'>=' if f.metric.higher_is_better else '<='} {f.value} |"
        for f in objective.floors()
    )
    header = " | ".join(m.label for m in summary_metrics)
    excluded = ", ".join(f"`{c}`" for c in cfg.post_outcome_columns) or "none declared"
    return f"""# Problem brief: {cfg.name}

**Question.** {cfg.question or "(set problem.question in params.yaml)"}

| | |
|---|---|
| Target | `{cfg.target}` {objective.describe_target()} |
| Unit | {unit} |
| Time column | {f"`{cfg.time_column}`" if cfg.time_column else "none (random or grouped split)"} |
| Horizon | {f"{cfg.horizon_days} days" if cfg.horizon_days else "not set"}; labels arrive after \
{f"about {cfg.label_delay_days} days" if cfg.label_delay_days is not None else "an unknown delay"} |
| Post-outcome columns (never features) | {excluded} |
| Data | snapshot `{sm["snapshot_id"]}`: {sm["rows"]:,} rows, {sm["labelled_rows"]:,} labelled, \
{objective.describe_facts(sm)} |

## How success is measured
Primary metric: **{cfg.primary_metric}**. {cfg.metric_reason}

KPI floors a model must meet on the sealed test set (and, live, in monitoring):

| KPI | floor |
|---|---|
{floors}

## Baselines to beat (scored on all labelled rows of this snapshot)

| baseline | {header} |
|---{"|---" * len(summary_metrics)}|
{rows}
"""


def main(root: Path, cfg: ProblemParams) -> None:
    """Validate the problem against the current snapshot and write the brief."""
    snapshot = current_snapshot(root / PATHS.raw_dir)
    columns = column_names(snapshot.data_path)
    # two columns, however many rows, their text as categorical codes
    data = snapshot.read_compact(needed_columns(columns, cfg))
    y = validate_problem(data, cfg, columns)
    summary = summarise(data, y, cfg, snapshot.snapshot_id)
    write_json(root / PATHS.problem_json, summary)
    write_text(root / PATHS.problem_brief, render_brief(cfg, summary))
    log.info(
        "target '%s': %d labelled rows, %s; brief at %s",
        cfg.target,
        summary["labelled_rows"],
        objective_for(cfg).describe_facts(summary),
        PATHS.problem_brief,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
