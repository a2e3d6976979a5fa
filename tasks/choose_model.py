"""Step 7, choose model: cross-validate the candidates on the training split, pick the simplest.

Each candidate (``choose.candidates``, at least logistic regression, random forest and
XGBoost) is a full pipeline, so its preprocessing is fitted inside each fold on that
fold's training rows only. The pick is the simplest candidate whose mean score is within
one standard error of the best (the one-standard-error rule).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from tasks.core.config import ChooseParams, ComputeParams, Params, ProblemParams
from tasks.core.io import parquet_rows, sample_positions, take_rows, write_json, write_text
from tasks.core.ml.models import COMPLEXITY, build_pipeline, metric_fn, model_inputs, oriented
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import Engine, engine
from tasks.core.step import run_step

log = logging.getLogger("churn.choose")
STEP = "choose"


def fold_score(
    job: tuple[str, int],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    problem: ProblemParams,
    cfg: ChooseParams,
    numeric: list[str],
    categorical: list[str],
) -> tuple[float, float]:
    """Fit candidate ``job[0]`` on fold ``job[1]``'s training rows: ``(validation score,
    seconds)``."""
    kind, k = job
    fit_idx, val_idx = folds[k]
    started = time.perf_counter()
    pipeline = build_pipeline(
        kind, numeric, categorical, cfg.params.get(kind, {}), cfg.random_state
    )
    pipeline.fit(X.iloc[fit_idx], y[fit_idx])
    score = metric_fn(problem.primary_metric, problem.kpis.target_precision)
    return score(
        y[val_idx], pipeline.predict_proba(X.iloc[val_idx])[:, 1]
    ), time.perf_counter() - started


def cross_validate(
    train: pd.DataFrame, problem: ProblemParams, cfg: ChooseParams, eng: Engine | None = None
) -> list[dict[str, Any]]:
    """Mean, standard deviation and standard error of the primary metric for each candidate.

    Every (candidate, fold) fit is independent: on the Dask engine they run in parallel.
    """
    if len(train) > cfg.sample_rows:
        train = train.sample(cfg.sample_rows, random_state=cfg.random_state)
    X, y, numeric, categorical = model_inputs(train, problem)
    folds = list(
        StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.random_state).split(X, y)
    )
    jobs = [(kind, k) for kind in cfg.candidates for k in range(len(folds))]
    done = dict(
        zip(
            jobs,
            (eng or Engine(ComputeParams())).map(
                fold_score,
                jobs,
                X=X,
                y=y,
                folds=folds,
                problem=problem,
                cfg=cfg,
                numeric=numeric,
                categorical=categorical,
            ),
            strict=True,
        )
    )
    rows = []
    for kind in cfg.candidates:
        values = np.array([done[(kind, k)][0] for k in range(len(folds))])
        rows.append(
            {
                "model": kind,
                "complexity": COMPLEXITY[kind],
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)),
                "se": float(values.std(ddof=1) / np.sqrt(len(values))),
                "folds": [round(v, 6) for v in values],
                "seconds": round(sum(done[(kind, k)][1] for k in range(len(folds))), 2),
            }
        )
        log.info(
            "%-20s %s = %.4f +/- %.4f (%d folds, %.1f s)",
            kind,
            problem.primary_metric,
            values.mean(),
            values.std(ddof=1),
            len(values),
            rows[-1]["seconds"],
        )
    return rows


def pick_simplest(rows: list[dict[str, Any]], metric: str) -> tuple[str, str]:
    """The simplest candidate within one standard error of the best, and why."""
    best = max(rows, key=lambda r: oriented(metric, r["mean"]))
    floor = oriented(metric, best["mean"]) - best["se"]
    eligible = [r for r in rows if oriented(metric, r["mean"]) >= floor]
    chosen = min(eligible, key=lambda r: (r["complexity"], -oriented(metric, r["mean"])))
    if chosen["model"] == best["model"]:
        reason = f"{chosen['model']} has the best mean {metric} ({best['mean']:.4f})"
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


def selection_markdown(
    rows: list[dict[str, Any]], chosen: str, reason: str, metric: str, folds: int
) -> str:
    """``reports/model_selection.md``."""
    table = "\n".join(
        f"| {'**' + r['model'] + '**' if r['model'] == chosen else r['model']} | {r['complexity']} "
        "| "
        f"{r['mean']:.4f} | {r['std']:.4f} | {r['se']:.4f} |"
        for r in rows
    )
    return (
        f"# Model selection\n\n{folds}-fold cross-validation on the training split, metric "
        f"**{metric}**.\n\n"
        f"| model | complexity | mean | std | SE |\n|---|---|---|---|---|\n{table}\n\n"
        f"**Chosen: {chosen}.** {reason}.\n"
    )


def main(root: Path, params: Params) -> None:
    """Compare the candidates and record the choice."""
    cfg, problem = params.choose, params.problem
    # Only the cross-validation sample is read (the rows DataFrame.sample would draw).
    path = root / PATHS.train
    n_rows = parquet_rows(path)
    if n_rows > cfg.sample_rows:
        train = take_rows(path, sample_positions(n_rows, cfg.sample_rows, cfg.random_state))
    else:
        train = pd.read_parquet(path)
    with engine(params.compute, root, STEP) as eng:
        rows = cross_validate(train, problem, cfg, eng)
    chosen, reason = pick_simplest(rows, problem.primary_metric)
    timings = {r["model"]: r.pop("seconds") for r in rows}  # runtimes vary: kept out of DVC outputs
    write_json(root / PATHS.timings_dir / "choose.json", timings)
    write_json(
        root / PATHS.selection_json,
        {"chosen": chosen, "reason": reason, "metric": problem.primary_metric, "candidates": rows},
    )
    write_text(
        root / PATHS.selection_md,
        selection_markdown(rows, chosen, reason, problem.primary_metric, cfg.cv_folds),
    )
    log.info("chosen: %s (%s)", chosen, reason)


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
