"""Fitting and scoring a pipeline on a split file too large to load, one part at a time.

XGBoost learns from a ``QuantileDMatrix`` built from an iterator over the file's parts
(row groups): each part is read, turned into model inputs and passed through the fitted
preprocessing, and only the matrix's compact histogram index stays in memory. The
preprocessing (median imputation, category lists, target encodings) is fitted on
:class:`FitRows`: the whole training split, or a seeded sample of it when it is larger than
``train.in_memory_rows``. Scores are computed part by part the same way. The fitted booster becomes
the type's plain XGBoost estimator in the usual pipeline, so it is stored and served like any other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from tasks.core.config import ProblemParams
from tasks.core.io import iter_parts, parquet_rows, sample_positions, take_rows
from tasks.core.ml.models import model_inputs, model_matrix
from tasks.core.ml.objective import Objective, objective_for


@dataclass(frozen=True)
class FitRows:
    """The training rows the preprocessing (and any model but XGBoost) is fitted on: every
    row of the training split, or, over ``train.in_memory_rows``, a seeded sample of that
    many."""

    X: pd.DataFrame
    y: np.ndarray
    numeric: list[str]
    categorical: list[str]
    positions: np.ndarray | None
    """Their positions in the split file; None: all its rows, in order."""

    @classmethod
    def read(cls, path: Path, objective: Objective, limit: int, random_state: int) -> FitRows:
        """All rows of the split file at ``path`` when there are at most ``limit``, else a
        seeded sample of ``limit`` (the rows ``DataFrame.sample`` would draw)."""
        n_rows = parquet_rows(path)
        positions = None if n_rows <= limit else sample_positions(n_rows, limit, random_state)
        frame = pd.read_parquet(path) if positions is None else take_rows(path, positions)
        return cls(*model_inputs(frame, objective.problem, objective), positions)


def prepared_parts(
    path: Path,
    prep: Any,
    numeric: list[str],
    categorical: list[str],
    objective: Objective,
    fitted: tuple[FitRows, np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The split file's rows part by part through the fitted preprocessing, as float32
    matrices with their labels.

    ``fitted``: the rows the preprocessing was fitted on and its ``fit_transform`` of them.
    Those rows keep that matrix (a target encoding cross-fitted on them, so no row's own
    label sets its encoding), as a model fitted in memory sees them; the others are
    transformed.
    """
    if fitted is None:
        Z_fit, positions = None, np.array([], dtype=np.int64)
    else:
        rows, Z_fit = fitted
        positions = np.arange(len(rows.y)) if rows.positions is None else rows.positions
    order = np.argsort(positions, kind="stable")
    ordered = positions[order]
    start = 0
    for part in iter_parts(path):
        n = len(part)
        labels = objective.labels(part[objective.problem.target])
        lo, hi = np.searchsorted(ordered, [start, start + n])
        if n and hi - lo == n:  # every row of the part was fitted on: the fit's own matrix
            Z = np.asarray(Z_fit[order[lo:hi]], dtype=np.float32)
        else:
            Z = np.asarray(
                prep.transform(model_matrix(part, numeric, categorical)), dtype=np.float32
            )
            if hi > lo:
                Z[ordered[lo:hi] - start] = Z_fit[order[lo:hi]]
        yield Z, labels
        start += n


class _Batches(xgb.DataIter):
    """Matrices with their labels, one at a time, from a function that starts them over."""

    def __init__(self, batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> None:
        super().__init__(release_data=True)
        self.batches = batches
        self._it: Iterator[tuple[np.ndarray, np.ndarray]] | None = None

    def next(self, input_data: Any) -> bool:
        if self._it is None:
            self._it = self.batches()
        batch = next(self._it, None)
        if batch is None:
            return False
        input_data(data=batch[0], label=batch[1])
        return True

    def reset(self) -> None:
        self._it = None


def quantile_matrix(
    batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    ref: xgb.QuantileDMatrix | None = None,
) -> xgb.QuantileDMatrix:
    """XGBoost's histogram matrix of the ``batches`` (:func:`prepared_parts`), built one at
    a time; only its compact index stays in memory.

    ``ref``: the training matrix, whose bin edges a validation matrix must share.
    """
    return xgb.QuantileDMatrix(_Batches(batches), ref=ref, nthread=2)


def as_estimator(model: Any, objective: Objective) -> Any:
    """A trained booster (or a dask XGBoost model) as the plain XGBoost estimator of the
    problem type (``XGBClassifier`` for binary)."""
    local = type(objective.estimator("xgboost", {}, 0))()
    with tempfile.TemporaryDirectory() as folder:
        model.save_model(Path(folder) / "model.json")
        local.load_model(Path(folder) / "model.json")
    return local


def train_xgboost(
    config: dict[str, Any],
    random_state: int,
    dtrain: xgb.QuantileDMatrix,
    dvalid: xgb.QuantileDMatrix,
    early_stopping_rounds: int,
    objective: Objective,
) -> Any:
    """One XGBoost configuration trained on ``dtrain``, stopping early on ``dvalid``.

    The booster parameters are the ones ``XGBClassifier(**config)`` would pass, so the
    model is the one the in-memory pipeline trains, up to the histogram bins, which come
    from the parts' merged sketches.
    """
    booster = xgb.train(
        objective.booster_params(config, random_state),
        dtrain,
        num_boost_round=int(config.get("n_estimators", 100)),
        evals=[(dvalid, "valid")],
        early_stopping_rounds=early_stopping_rounds or None,
        verbose_eval=False,
    )
    return as_estimator(booster, objective)


def predict_parts(
    pipeline: Pipeline,
    path: Path,
    numeric: list[str],
    categorical: list[str],
    objective: Objective,
) -> np.ndarray:
    """The objective's scores of every row of ``path``, scored part by part."""
    return np.concatenate(
        [
            objective.scores(pipeline, model_matrix(part, numeric, categorical))
            for part in iter_parts(path)
        ]
    )


def training_objective(path: Path, problem: ProblemParams) -> Objective:
    """``problem``'s objective, its classes (multiclass) the sorted labels of the training
    split at ``path`` (its target column only is read)."""
    objective = objective_for(problem)
    if not objective.HAS_CLASSES:
        return objective
    return objective.for_labels(pd.read_parquet(path, columns=[problem.target])[problem.target])


def target_column(path: Path, objective: Objective) -> np.ndarray:
    """The labels of a split file (one column read), as the objective's metrics take them."""
    target = objective.problem.target
    return objective.labels(pd.read_parquet(path, columns=[target])[target])
