"""Step 7, choose model: cross-validate the candidates on the training split, pick the simplest.

Each candidate (``choose.candidates``, at least logistic regression, random forest and
XGBoost) is a full pipeline, so its preprocessing is fitted inside each fold on that
fold's training rows only. The folds follow the split (``data/04_splits/manifest.json``):
after a time split each fold is validated on rows later than those it was fitted on, after
a group split no group is in two folds, else the folds are stratified by the target. The
pick is the simplest candidate whose mean score is within one standard error of the best
(the one-standard-error rule). Each fit logs a progress line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from tasks.core.config import (
    ChooseParams,
    CleanParams,
    ComputeParams,
    ProblemParams,
    SplitParams,
)
from tasks.core.declare import Keys
from tasks.core.io import (
    parquet_rows,
    read_json,
    sample_positions,
    take_rows,
    write_json,
    write_text,
)
from tasks.core.metrics import Metric
from tasks.core.ml.crossval import cross_validate
from tasks.core.ml.objective import objective_for
from tasks.core.ml.parts import training_objective
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import engine
from tasks.core.step import run_step

log = logging.getLogger("churn.choose")
STEP = "choose"


def pick_simplest(rows: list[dict[str, Any]], metric: Metric) -> tuple[str, str]:
    """The simplest candidate within one standard error of the best, and why."""
    best = max(rows, key=lambda r: metric.oriented(r["mean"]))
    floor = metric.oriented(best["mean"]) - best["se"]
    eligible = [r for r in rows if metric.oriented(r["mean"]) >= floor]
    chosen = min(eligible, key=lambda r: (r["complexity"], -metric.oriented(r["mean"])))
    metric_name = metric.name
    if chosen["model"] == best["model"]:
        reason = f"{chosen['model']} has the best mean {metric_name} ({best['mean']:.4f})"
        others = [r["model"] for r in eligible if r is not chosen]
        if others:
            reason += f"; {', '.join(others)} within one SE are not simpler"
        else:
            reason += "; no simpler candidate is within one standard error of it"
    else:
        reason = (
            f"{chosen['model']} ({chosen['mean']:.4f}) is within one standard error "
            f"({best['se']:.4f}) of the "
            f"best, {best['model']} ({best['mean']:.4f}), and simpler"
        )
    return chosen["model"], reason


FOLD_KINDS = {
    "time": "time-ordered (each fold validated on later rows)",
    "group": "grouped (no group in two folds)",
}


def selection_markdown(
    rows: list[dict[str, Any]],
    chosen: str,
    reason: str,
    metric: str,
    folds: int,
    strategy: str = "stratified",
    of: int | None = None,
) -> str:
    """``reports/model_selection.md``: ``folds`` of the ``of`` folds cross-validated on."""
    table = "\n".join(
        f"| {'**' + r['model'] + '**' if r['model'] == chosen else r['model']} | {r['complexity']} "
        "| "
        f"{r['mean']:.4f} | {r['std']:.4f} | {r['se']:.4f} |"
        for r in rows
    )
    kind = FOLD_KINDS.get(strategy, "stratified")
    left_out = (
        ""
        if of is None or of == folds
        else f" ({of - folds} of {of} folds left out: their training rows lack a class)"
    )
    return (
        f"# Model selection\n\n{folds}-fold {kind} cross-validation on the training split"
        f"{left_out}, metric **{metric}**.\n\n"
        f"| model | complexity | mean | std | SE |\n|---|---|---|---|---|\n{table}\n\n"
        f"**Chosen: {chosen}.** {reason}.\n"
    )


def main(
    root: Path,
    cfg: ChooseParams,
    problem: Annotated[
        ProblemParams,
        Keys("type", "target", "id_column", "time_column", "primary_metric"),
    ],
    clean: Annotated[CleanParams, Keys("max_categories")],
    split: Annotated[SplitParams, Keys("group_column")],
    compute: ComputeParams,
) -> None:
    """Compare the candidates and record the choice."""
    # Only the cross-validation sample is read (the rows DataFrame.sample would draw).
    path = root / PATHS.train
    n_rows = parquet_rows(path)
    if n_rows > cfg.sample_rows:
        train = take_rows(path, sample_positions(n_rows, cfg.sample_rows, cfg.random_state))
    else:
        train = pd.read_parquet(path)
    strategy = read_json(root / PATHS.split_manifest).get("strategy", "stratified")
    with engine(compute, root, STEP) as eng:
        rows = cross_validate(
            train,
            problem,
            cfg,
            eng,
            strategy,
            split.group_column,
            clean.max_categories,
            training_objective(path, problem),
        )
    chosen, reason = pick_simplest(rows, objective_for(problem).primary)
    timings = {r["model"]: r.pop("seconds") for r in rows}  # runtimes vary: kept out of DVC outputs
    write_json(root / PATHS.timings_dir / "choose.json", timings)
    write_json(
        root / PATHS.selection_json,
        {
            "chosen": chosen,
            "reason": reason,
            "metric": problem.primary_metric,
            "folds": strategy if strategy in FOLD_KINDS else "stratified",
            "candidates": rows,
        },
    )
    write_text(
        root / PATHS.selection_md,
        selection_markdown(
            rows,
            chosen,
            reason,
            problem.primary_metric,
            len(rows[0]["folds"]),
            strategy,
            cfg.cv_folds,
        ),
    )
    log.info("chosen: %s (%s)", chosen, reason)


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
