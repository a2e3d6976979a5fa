"""Tuning: the seeded random search of one model kind, each trial scored on validation.

Five ways to run the same search, chosen by :mod:`tasks.train` from the data's size and the
compute engine: in memory one trial at a time (:func:`tune`), in memory with the trials in
parallel on Dask, XGBoost across the Dask workers with ``xgboost.dask``, and, for a
training split over ``train.in_memory_rows``, part by part (:func:`tune_in_parts`; XGBoost
from a histogram matrix built per part, with or without ``xgboost.dask``). Every finished
trial goes through :func:`record_trials`, which scores it with the objective's primary
metric and keeps the best pipeline only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tasks.core.config import ComputeParams, Params, ProblemParams, TrainParams
from tasks.core.io import iter_parts, parquet_rows, sample_positions, take_rows
from tasks.core.ml.models import (
    build_pipeline,
    fit_pipeline,
    model_inputs,
    model_matrix,
    sample_params,
)
from tasks.core.ml.objective import TRIALS_Y, Objective, objective_for
from tasks.core.ml.parts import (
    as_estimator,
    predict_parts,
    quantile_matrix,
    target_column,
    train_xgboost,
)
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import Engine

log = logging.getLogger("churn.train")  # the train step's log: tuning is its story


@dataclass(frozen=True)
class Tuning:
    """What the search reads from params: the problem, train's section, and the category
    cap the preprocessing shares with choose (``clean.max_categories``)."""

    problem: ProblemParams
    cfg: TrainParams
    max_categories: int
    classes: tuple[str, ...] | None = None
    """The training split's classes (multiclass), recorded with the model."""

    @property
    def objective(self) -> Objective:
        """The problem's objective, with the training split's classes."""
        return objective_for(self.problem, self.classes)

    @classmethod
    def of(cls, params: Params) -> "Tuning":
        """From the whole of params (tests and tools; the train step passes its sections)."""
        return cls(params.problem, params.train, params.clean.max_categories)


def finished(
    number: int,
    config: dict[str, Any],
    pipeline: Pipeline,
    proba: np.ndarray,
    started: float,
    keep: bool = True,
) -> dict[str, Any]:
    """One trial's result, as :func:`record_trials` reads it (the pipeline only with ``keep``)."""
    return {
        "number": number,
        "config": config,
        "proba": proba,
        "seconds": time.perf_counter() - started,
        "best_iteration": getattr(pipeline.named_steps["model"], "best_iteration", None),
        "pipeline": pipeline if keep else None,
    }


def trial_score(
    job: tuple[int, dict[str, Any]],
    kind: str,
    data: dict[str, Any],
    tuning: Tuning,
    keep: bool = False,
) -> dict[str, Any]:
    """Fit one trial's configuration and score it on validation (a task of its own on Dask).

    The fitted pipeline is returned only with ``keep`` (in-process); from a worker only
    the validation probabilities travel back.
    """
    number, config = job
    started = time.perf_counter()
    objective = tuning.objective
    pipeline = build_pipeline(
        kind,
        data["numeric"],
        data["categorical"],
        config,
        tuning.cfg.random_state,
        tuning.max_categories,
        objective,
    )
    fit_pipeline(
        pipeline,
        data["X_train"],
        data["y_train"],
        data["X_valid"],
        data["y_valid"],
        tuning.cfg.early_stopping_rounds,
    )
    proba = objective.scores(pipeline, data["X_valid"])
    return finished(number, config, pipeline, proba, started, keep)


def as_xy(staged: Any) -> tuple[Any, Any]:
    """A staged dask frame of preprocessed rows (features, then ``label``) as ``(X, y)``: one
    array, so rows and labels share chunks."""
    values = staged.to_dask_array(lengths=True)
    return values[:, :-1], values[:, -1]


def labelled(Z: Any, y: np.ndarray) -> pd.DataFrame:
    """A preprocessed matrix as a frame with its labels (the Dask engine's partitions)."""
    return pd.DataFrame(Z).rename(columns=str).assign(label=y)


def prepared(prep: Any, X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """``X`` through the fitted preprocessing, with the labels as a last column."""
    return labelled(prep.transform(X), y)


def dask_xgboost_trials(
    eng: Engine,
    configs: list[dict[str, Any]],
    prep: Any,
    matrices: dict[str, tuple[Any, Any]],
    features: tuple[list[str], list[str]],
    score_valid: Callable[[Pipeline], np.ndarray],
    tuning: Tuning,
) -> Iterator[dict[str, Any]]:
    """XGBoost trials trained with ``xgboost.dask`` over the workers' training partitions.

    The preprocessing has no hyperparameters: it is fitted once, and the transformed splits
    are on the shared storage as partitions (``matrices``, from :func:`as_xy`). Each
    trial trains across all workers, stops early on validation, and becomes the problem
    type's plain XGBoost estimator in the usual pipeline, stored and served like any other.
    """
    objective = tuning.objective
    for number, config in enumerate(configs):
        started = time.perf_counter()
        model = objective.dask_xgboost(
            config, tuning.cfg.random_state, tuning.cfg.early_stopping_rounds
        )
        model.client = eng.client
        model.fit(*matrices["train"], eval_set=[matrices["valid"]], verbose=False)
        local = as_estimator(model, objective)  # the same booster, as a local estimator
        pipeline = build_pipeline(
            "xgboost",
            *features,
            config,
            tuning.cfg.random_state,
            tuning.max_categories,
            objective,
        )
        pipeline.set_params(prep=prep, model=local)
        yield finished(number, config, pipeline, score_valid(pipeline), started)


def record_trials(
    done: Iterable[dict[str, Any]],
    kind: str,
    n_trials: int,
    y_valid: np.ndarray,
    objective: Objective,
    data_hashes: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score and log each finished trial; keep the fitted pipeline of the best one only.

    A trial's row holds its primary metric on validation as :data:`TRIALS_Y` (the column
    the ``dvc.yaml`` plot draws, whatever the metric), named in ``metric``, and the
    objective's summary metrics by name."""
    primary = objective.primary
    trials, best, best_value = [], None, -np.inf
    for result in done:
        value = objective.score(primary.name, y_valid, result["proba"])
        trial = {
            "trial": result["number"],
            "model": kind,
            "config": json.dumps(result["config"], sort_keys=True),
            "metric": primary.name,
            TRIALS_Y: round(value, 6),
            **{
                name: round(objective.score(name, y_valid, result["proba"]), 6)
                for name in objective.SUMMARY
            },
            "best_iteration": result["best_iteration"],
            "seconds": round(result["seconds"], 3),
            "train_sha256": data_hashes["train"][:16],
            "valid_sha256": data_hashes["valid"][:16],
        }
        trials.append(trial)
        log.info(
            "trial %2d/%d %s=%.4f %.1fs %s",
            result["number"] + 1,
            n_trials,
            primary.name,
            value,
            trial["seconds"],
            trial["config"],
        )
        if primary.oriented(value) > best_value:
            if best is not None:
                best["pipeline"] = None
            best_value, best = primary.oriented(value), result
        else:
            result["pipeline"] = None
    return trials, best


def trial_configs(kind: str, base: dict[str, Any], cfg: TrainParams) -> list[dict[str, Any]]:
    """The search: the starting parameters, then ``n_trials - 1`` seeded random draws."""
    rng = np.random.default_rng(cfg.random_state)
    return [dict(base)] + [sample_params(kind, rng) for _ in range(cfg.n_trials - 1)]


def tune_in_parts(
    kind: str,
    base: dict[str, Any],
    root: Path,
    tuning: Tuning,
    data_hashes: dict[str, str],
    eng: Engine,
) -> tuple[list[dict[str, Any]], Any]:
    """:func:`tune` for a training split larger than ``train.in_memory_rows``, read in parts.

    XGBoost learns from all training rows through a histogram matrix built part by part
    (:mod:`tasks.core.ml.parts`); its preprocessing, and any other model kind, is fitted on
    a seeded sample of ``in_memory_rows`` training rows. Validation is scored part by part.
    On the Dask engine, XGBoost trains with ``xgboost.dask`` on the parts, each staged on
    the shared storage as one partition once preprocessed; other kinds run here.
    """
    problem, cfg = tuning.problem, tuning.cfg
    objective = tuning.objective
    max_categories = tuning.max_categories
    train_path, valid_path = root / PATHS.train, root / PATHS.valid
    n_rows = parquet_rows(train_path)
    sample = take_rows(train_path, sample_positions(n_rows, cfg.in_memory_rows, cfg.random_state))
    X_sample, y_sample, numeric, categorical = model_inputs(sample, problem, objective)
    del sample
    log.info(
        "training split of %d rows, over train.in_memory_rows (%d): %s",
        n_rows,
        cfg.in_memory_rows,
        "XGBoost reads it part by part; preprocessing fitted on a sample of that many"
        if kind == "xgboost"
        else f"{kind} is fitted on a sample of that many rows",
    )
    y_valid = target_column(valid_path, objective)
    configs = trial_configs(kind, base, cfg)

    def score_valid(pipeline: Pipeline) -> np.ndarray:
        return predict_parts(pipeline, valid_path, numeric, categorical, objective)

    if kind == "xgboost":
        prep = build_pipeline(
            kind, numeric, categorical, {}, cfg.random_state, max_categories, objective
        ).named_steps["prep"]
        prep.fit(X_sample, y_sample)

    def staged(path: Path) -> tuple[Any, Any]:
        frames = (
            prepared(
                prep,
                model_matrix(part, numeric, categorical),
                objective.labels(part[problem.target]),
            )
            for part in iter_parts(path)
        )
        return as_xy(eng.partitions_from(frames, path.stem))

    def trials() -> Iterator[dict[str, Any]]:
        if kind == "xgboost":
            dtrain = quantile_matrix(train_path, prep, numeric, categorical, objective)
            dvalid = quantile_matrix(valid_path, prep, numeric, categorical, objective, ref=dtrain)
        for number, config in enumerate(configs):
            started = time.perf_counter()
            pipeline = build_pipeline(
                kind, numeric, categorical, config, cfg.random_state, max_categories, objective
            )
            if kind == "xgboost":
                model = train_xgboost(
                    config, cfg.random_state, dtrain, dvalid, cfg.early_stopping_rounds, objective
                )
                pipeline.set_params(prep=prep, model=model)
            else:
                pipeline.fit(X_sample, y_sample)
            yield finished(number, config, pipeline, score_valid(pipeline), started)

    if eng.is_dask and kind == "xgboost":
        matrices = {"train": staged(train_path), "valid": staged(valid_path)}
        log.info(
            "xgboost.dask on %d + %d staged partitions",
            matrices["train"][0].numblocks[0],
            matrices["valid"][0].numblocks[0],
        )
        done = dask_xgboost_trials(
            eng, configs, prep, matrices, (numeric, categorical), score_valid, tuning
        )
    else:
        done = trials()
    log_, best = record_trials(done, kind, len(configs), y_valid, objective, data_hashes)
    return log_, (best["config"], best["pipeline"], best["proba"])


def tune(
    kind: str,
    base: dict[str, Any],
    train: pd.DataFrame,
    valid: pd.DataFrame,
    tuning: Tuning,
    data_hashes: dict[str, str],
    eng: Engine | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Run the trials: the trial log, and the best ``(config, fitted pipeline, validation proba)``.

    Trials are independent: on the Dask engine they run in parallel (XGBoost instead
    trains each one across the workers with ``xgboost.dask``). From parallel trials only
    validation probabilities travel back; the best configuration is then fitted once more
    here, which gives the same model.
    """
    problem, cfg = tuning.problem, tuning.cfg
    objective = tuning.objective
    max_categories = tuning.max_categories
    eng = eng or Engine(ComputeParams())
    X_train, y_train, numeric, categorical = model_inputs(train, problem, objective)
    X_valid, y_valid, _, _ = model_inputs(valid, problem, objective)
    data = {
        "X_train": X_train,
        "y_train": y_train,
        "X_valid": X_valid,
        "y_valid": y_valid,
        "numeric": numeric,
        "categorical": categorical,
    }
    configs = trial_configs(kind, base, cfg)
    jobs = list(enumerate(configs))
    if eng.is_dask and kind == "xgboost":
        prep = build_pipeline(
            kind, numeric, categorical, {}, cfg.random_state, max_categories, objective
        ).named_steps["prep"]
        # the training rows as the fit sees them (a target encoding is cross-fitted on them)
        Z_train = prep.fit_transform(X_train, y_train)
        matrices = {
            "train": as_xy(eng.partitions(labelled(Z_train, y_train), "train")),
            "valid": as_xy(eng.partitions(prepared(prep, X_valid, y_valid), "valid")),
        }
        done: Iterable[dict[str, Any]] = dask_xgboost_trials(
            eng,
            configs,
            prep,
            matrices,
            (numeric, categorical),
            lambda pipeline: objective.scores(pipeline, X_valid),
            tuning,
        )
    elif eng.is_dask:
        done = eng.map(trial_score, jobs, kind=kind, data=data, tuning=tuning)
    else:  # one at a time, keeping only the best fitted pipeline in memory
        done = (trial_score(job, kind, data, tuning, keep=True) for job in jobs)
    trials, best = record_trials(done, kind, len(configs), y_valid, objective, data_hashes)
    pipeline = best["pipeline"]
    if pipeline is None:  # trained on a worker: fit the best configuration again here
        pipeline = build_pipeline(
            kind, numeric, categorical, best["config"], cfg.random_state, max_categories, objective
        )
        fit_pipeline(pipeline, X_train, y_train, X_valid, y_valid, cfg.early_stopping_rounds)
    return trials, (best["config"], pipeline, best["proba"])
