"""Tuning: the seeded random search of one model kind, each trial scored on validation.

One data path (:func:`tune`): the split files read part by part, the preprocessing fitted
on the training rows that fit in memory (all of them, or a seeded sample), XGBoost learning
from every row through a histogram matrix. The compute engine only decides where the trials
run: here one at a time, in parallel on Dask workers, or XGBoost across them with
``xgboost.dask``. Every finished trial goes through :func:`record_trials`, which scores it
with the objective's primary metric and keeps the best pipeline only.
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
from tasks.core.io import parquet_rows
from tasks.core.ml.models import (
    build_pipeline,
    model_inputs,
    sample_params,
)
from tasks.core.ml.objective import TRIALS_Y, Objective, objective_for
from tasks.core.ml.parts import (
    FitRows,
    as_estimator,
    predict_parts,
    prepared_parts,
    quantile_matrix,
    target_column,
    train_xgboost,
)
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
    job: tuple[int, dict[str, Any]], kind: str, data: dict[str, Any], tuning: Tuning
) -> dict[str, Any]:
    """Fit one trial's configuration on the fitted rows and score it on validation: a task
    of its own on a Dask worker, from which only the validation scores travel back."""
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
    ).fit(data["X_train"], data["y_train"])
    scores = objective.scores(pipeline, data["X_valid"])
    return finished(number, config, pipeline, scores, started, keep=False)


def as_xy(staged: Any) -> tuple[Any, Any]:
    """A staged dask frame of preprocessed rows (features, then ``label``) as ``(X, y)``: one
    array, so rows and labels share chunks."""
    values = staged.to_dask_array(lengths=True)
    return values[:, :-1], values[:, -1]


def labelled(Z: Any, y: np.ndarray) -> pd.DataFrame:
    """A preprocessed matrix as a frame with its labels (the Dask engine's partitions)."""
    return pd.DataFrame(Z).rename(columns=str).assign(label=y)


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


@dataclass
class Search:
    """One kind's trials over the split files at ``train`` and ``valid``, the preprocessing
    and any model but XGBoost fitted on ``rows``; each way to run them yields the finished
    trials."""

    kind: str
    configs: list[dict[str, Any]]
    train: Path
    valid: Path
    rows: FitRows
    tuning: Tuning

    def pipeline(self, config: dict[str, Any]) -> Pipeline:
        """The kind's unfitted pipeline with ``config``."""
        t, rows = self.tuning, self.rows
        return build_pipeline(
            self.kind,
            rows.numeric,
            rows.categorical,
            config,
            t.cfg.random_state,
            t.max_categories,
            t.objective,
        )

    def score_valid(self, pipeline: Pipeline) -> np.ndarray:
        """The pipeline's scores of the validation rows, part by part."""
        rows = self.rows
        return predict_parts(
            pipeline, self.valid, rows.numeric, rows.categorical, self.tuning.objective
        )

    def fitted_here(self) -> Iterator[dict[str, Any]]:
        """Each trial fitted on the rows, one at a time."""
        for number, config in enumerate(self.configs):
            started = time.perf_counter()
            pipeline = self.pipeline(config).fit(self.rows.X, self.rows.y)
            yield finished(number, config, pipeline, self.score_valid(pipeline), started)

    def fitted_on_workers(self, eng: Engine) -> list[dict[str, Any]]:
        """The trials in parallel on the Dask workers, the validation rows sent along."""
        t, rows = self.tuning, self.rows
        X_valid = model_inputs(pd.read_parquet(self.valid), t.problem, t.objective)[0]
        data = {
            "X_train": rows.X,
            "y_train": rows.y,
            "X_valid": X_valid,
            "numeric": rows.numeric,
            "categorical": rows.categorical,
        }
        jobs = list(enumerate(self.configs))
        return eng.map(trial_score, jobs, kind=self.kind, data=data, tuning=t)

    def preprocessed(self) -> tuple[Any, Callable[..., Iterator[tuple[np.ndarray, np.ndarray]]]]:
        """XGBoost's preprocessing fitted on the rows, and the split files through it, part
        by part (the training split's fitted rows keeping their cross-fitted encoding)."""
        rows, objective = self.rows, self.tuning.objective
        prep = self.pipeline({}).named_steps["prep"]
        fitted = (rows, prep.fit_transform(rows.X, rows.y))

        def parts(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            own = fitted if path == self.train else None
            return prepared_parts(path, prep, rows.numeric, rows.categorical, objective, own)

        return prep, parts

    def xgboost_here(self) -> Iterator[dict[str, Any]]:
        """XGBoost's trials from histogram matrices built part by part, one at a time."""
        cfg, objective = self.tuning.cfg, self.tuning.objective
        prep, parts = self.preprocessed()
        dtrain = quantile_matrix(lambda: parts(self.train))
        dvalid = quantile_matrix(lambda: parts(self.valid), ref=dtrain)
        for number, config in enumerate(self.configs):
            started = time.perf_counter()
            model = train_xgboost(
                config, cfg.random_state, dtrain, dvalid, cfg.early_stopping_rounds, objective
            )
            pipeline = self.pipeline(config).set_params(prep=prep, model=model)
            yield finished(number, config, pipeline, self.score_valid(pipeline), started)

    def xgboost_on_workers(self, eng: Engine) -> Iterator[dict[str, Any]]:
        """XGBoost's trials with ``xgboost.dask`` from the preprocessed parts, staged on the
        shared storage in partitions of at most ``compute.partition_rows`` rows."""
        prep, parts = self.preprocessed()
        chunk = eng.cfg.partition_rows

        def staged(path: Path) -> tuple[Any, Any]:
            frames = (
                labelled(Z[at : at + chunk], y[at : at + chunk])
                for Z, y in parts(path)
                for at in range(0, len(y), chunk)
            )
            return as_xy(eng.partitions_from(frames, path.stem))

        matrices = {"train": staged(self.train), "valid": staged(self.valid)}
        log.info(
            "xgboost.dask on %d + %d staged partitions",
            matrices["train"][0].numblocks[0],
            matrices["valid"][0].numblocks[0],
        )
        features = (self.rows.numeric, self.rows.categorical)
        return dask_xgboost_trials(
            eng, self.configs, prep, matrices, features, self.score_valid, self.tuning
        )


def tune(
    kind: str,
    base: dict[str, Any],
    train_path: Path,
    valid_path: Path,
    tuning: Tuning,
    data_hashes: dict[str, str],
    eng: Engine | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Run the trials: the trial log, and the best ``(config, fitted pipeline, validation
    scores)``.

    One data path, whatever the size: the preprocessing, and any model but XGBoost, is
    fitted on :class:`~tasks.core.ml.parts.FitRows` (the whole training split, or a seeded
    sample of ``train.in_memory_rows`` rows when it is larger). XGBoost learns from every
    training row through a histogram matrix built part by part, the fitted rows keeping
    their cross-fitted encoding, and stops early on validation. Validation is scored part
    by part. A single part is the whole split: the model an in-memory fit gives.

    The engine decides only where the trials run: here one at a time; on Dask, XGBoost
    trains each trial across the workers (``xgboost.dask``), and the other kinds' trials
    run in parallel when the validation split fits in memory (only their validation scores
    travel back; the best configuration is fitted once more here: the same model).
    """
    cfg, objective = tuning.cfg, tuning.objective
    eng = eng or Engine(ComputeParams())
    rows = FitRows.read(train_path, objective, cfg.in_memory_rows, cfg.random_state)
    if rows.positions is not None:
        log.info(
            "training split of %d rows, over train.in_memory_rows (%d): %s",
            parquet_rows(train_path),
            cfg.in_memory_rows,
            "XGBoost reads it part by part; preprocessing fitted on a sample of that many"
            if kind == "xgboost"
            else f"{kind} is fitted on a sample of that many rows",
        )
    search = Search(kind, trial_configs(kind, base, cfg), train_path, valid_path, rows, tuning)
    done: Iterable[dict[str, Any]]
    if kind == "xgboost":
        done = search.xgboost_on_workers(eng) if eng.is_dask else search.xgboost_here()
    elif eng.is_dask and parquet_rows(valid_path) <= cfg.in_memory_rows:
        done = search.fitted_on_workers(eng)
    else:
        done = search.fitted_here()
    y_valid = target_column(valid_path, objective)
    trials, best = record_trials(done, kind, len(search.configs), y_valid, objective, data_hashes)
    pipeline = best["pipeline"]
    if pipeline is None:  # trained on a worker: fit the best configuration again here
        pipeline = search.pipeline(best["config"]).fit(rows.X, rows.y)
    return trials, (best["config"], pipeline, best["proba"])
