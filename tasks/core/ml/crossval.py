"""Cross-validation of the candidate models: the folds that follow the split, and every
(candidate, fold) fit, in parallel on the Dask engine. What :mod:`tasks.choose_model`
chooses from.

Each candidate is a full pipeline, so its preprocessing is fitted inside each fold on that
fold's training rows only. The folds follow the split (``data/04_splits/manifest.json``):
after a time split each fold is validated on rows later than those it was fitted on, after
a group split no group is in two folds, else the folds are stratified by the target. Each
fit logs a progress line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, TimeSeriesSplit

from tasks.core.config import ChooseParams, ComputeParams, ProblemParams
from tasks.core.errors import StepError
from tasks.core.ml.models import COMPLEXITY, build_pipeline, model_inputs
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.runtime.compute import Engine

log = logging.getLogger("churn.choose")  # the choose step's log: its folds are its story
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
    max_categories: int = 50,
    total: int = 0,
) -> tuple[float, float]:
    """Fit candidate ``job[0]`` on fold ``job[1]``'s training rows: ``(validation score,
    seconds)``. Logs one progress line per fit (``total`` fits in all)."""
    kind, k = job
    fit_idx, val_idx = folds[k]
    started = time.perf_counter()
    objective = objective_for(problem)
    params = cfg.params.get(kind, {})
    pipeline = build_pipeline(
        kind, numeric, categorical, params, cfg.random_state, max_categories, objective
    )
    pipeline.fit(X.iloc[fit_idx], y[fit_idx])
    scores = objective.scores(pipeline, X.iloc[val_idx])
    value = objective.score(problem.primary_metric, y[val_idx], scores)
    seconds = time.perf_counter() - started
    log.info(
        "%s fold %d/%d: %s = %.4f on %d rows (%.1f s)%s",
        kind,
        k + 1,
        len(folds),
        problem.primary_metric,
        value,
        len(val_idx),
        seconds,
        f" [fit {job_number(job, cfg, len(folds))} of {total}]" if total else "",
    )
    return value, seconds


def job_number(job: tuple[str, int], cfg: ChooseParams, n_folds: int) -> int:
    """The 1-based place of ``job`` among all (candidate, fold) fits."""
    return cfg.candidates.index(job[0]) * n_folds + job[1] + 1


def cv_folds(
    X: pd.DataFrame,
    y: np.ndarray,
    cfg: ChooseParams,
    strategy: str = "stratified",
    order: pd.Series | None = None,
    groups: pd.Series | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation folds, following the split's ``strategy``.

    ``time``: rows ordered by ``order`` (the time column), each fold validated on the block
    after the rows it is fitted on (``TimeSeriesSplit``), as the split validates on later
    rows; ``group``: no value of ``groups`` in two folds (``StratifiedGroupKFold``);
    otherwise stratified by the target.
    """
    if strategy == "time" and order is not None:
        ranked = np.argsort(order.to_numpy(), kind="stable")
        return [
            (ranked[fit], ranked[val]) for fit, val in TimeSeriesSplit(cfg.cv_folds).split(ranked)
        ]
    if strategy == "group" and groups is not None:
        splitter = StratifiedGroupKFold(cfg.cv_folds, shuffle=True, random_state=cfg.random_state)
        return list(splitter.split(X, y, groups=groups.astype(str).to_numpy()))
    return list(
        StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.random_state).split(X, y)
    )


def usable_folds(
    folds: list[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    objective: Objective,
    sampled: bool,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds whose training rows hold every class: a model fitted without a class
    cannot score it (XGBoost refuses the labels). A class that appears late in a
    time-ordered training split is missing from the earliest folds; each left out is logged.

    Raises
    ------
    StepError
        When fewer than two folds are left, naming the classes and the ways out.
    """
    usable, lacking = [], {}
    for k, (fit, val) in enumerate(folds):
        missing = objective.missing_classes(y[fit])
        if missing:
            lacking[k + 1] = missing
            log.warning(
                "fold %d/%d left out: its %d training rows hold no row of class %s",
                k + 1,
                len(folds),
                len(fit),
                ", ".join(missing),
            )
        else:
            usable.append((fit, val))
    if len(usable) < 2:
        named = "; ".join(f"fold {k}: {', '.join(c)}" for k, c in lacking.items())
        raise StepError(
            STEP,
            "every class in the folds",
            f"only {len(usable)} of {len(folds)} cross-validation folds hold every class in "
            f"their training rows (missing: {named}), and the candidates are compared on two "
            "or more: merge a rare or late class into another with problem.class_aliases, "
            "use fewer choose.cv_folds, or split.strategy: stratified"
            + (
                ", or raise choose.sample_rows (the comparison samples the training split)"
                if sampled
                else ""
            ),
        )
    return usable


def cross_validate(
    train: pd.DataFrame,
    problem: ProblemParams,
    cfg: ChooseParams,
    eng: Engine | None = None,
    strategy: str = "stratified",
    group_column: str | None = None,
    max_categories: int = 50,
    objective: Objective | None = None,
) -> list[dict[str, Any]]:
    """Mean, standard deviation and standard error of the primary metric for each candidate.

    Every (candidate, fold) fit is independent: on the Dask engine they run in parallel.
    The folds follow the split's ``strategy`` (:func:`cv_folds`).
    """
    sampled = len(train) > cfg.sample_rows
    if sampled:
        train = train.sample(cfg.sample_rows, random_state=cfg.random_state)
    objective = objective or objective_for(problem)
    X, y, numeric, categorical = model_inputs(train, problem, objective)
    folds = cv_folds(
        X,
        objective.strata(y),
        cfg,
        strategy,
        order=train[problem.time_column] if problem.time_column in train else None,
        groups=train[group_column] if group_column in train else None,
    )
    folds = usable_folds(folds, y, objective, sampled)
    jobs = [(kind, k) for kind in cfg.candidates for k in range(len(folds))]
    log.info(
        "%d candidates x %d %s folds on %d rows: %d fits",
        len(cfg.candidates),
        len(folds),
        strategy if strategy in ("time", "group") else "stratified",
        len(X),
        len(jobs),
    )
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
                max_categories=max_categories,
                total=len(jobs),
            ),
            strict=True,
        )
    )
    rows = []
    for kind in cfg.candidates:
        # each fold's score to 6 digits, and the summary from those: a random forest adds its
        # trees' votes across threads in no fixed order, which moves the last bits of a score
        values = np.array([round(done[(kind, k)][0], 6) for k in range(len(folds))])
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
