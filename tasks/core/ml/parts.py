"""Fitting and scoring a pipeline on a split file too large to load, one part at a time.

XGBoost learns from a ``QuantileDMatrix`` built from an iterator over the file's parts
(row groups): each part is read, turned into model inputs and passed through the fitted
preprocessing, and only the matrix's compact histogram index stays in memory. The
preprocessing (median imputation, category lists) is fitted on a seeded sample of the
training rows. Scores are computed part by part the same way. The fitted booster becomes
the type's plain XGBoost estimator in the usual pipeline, so it is stored and served like any other.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from tasks.core.config import ProblemParams
from tasks.core.io import iter_parts
from tasks.core.ml.models import model_matrix
from tasks.core.ml.objective import Objective, objective_for


class _Parts(xgb.DataIter):
    """The rows of a split file, part by part, as preprocessed float32 matrices."""

    def __init__(
        self,
        path: Path,
        prep: Any,
        numeric: list[str],
        categorical: list[str],
        objective: Objective,
    ) -> None:
        super().__init__(release_data=True)
        self.path, self.prep, self.objective = path, prep, objective
        self.numeric, self.categorical = numeric, categorical
        self._parts: Any = None

    def next(self, input_data: Any) -> bool:
        if self._parts is None:
            self._parts = iter_parts(self.path)
        part = next(self._parts, None)
        if part is None:
            return False
        X = self.prep.transform(model_matrix(part, self.numeric, self.categorical))
        labels = self.objective.labels(part[self.objective.problem.target])
        input_data(data=np.asarray(X, dtype=np.float32), label=labels)
        return True

    def reset(self) -> None:
        self._parts = None


def quantile_matrix(
    path: Path,
    prep: Any,
    numeric: list[str],
    categorical: list[str],
    objective: Objective,
    ref: xgb.QuantileDMatrix | None = None,
) -> xgb.QuantileDMatrix:
    """The split file at ``path`` as XGBoost's histogram matrix, built part by part.

    ``ref``: the training matrix, whose bin edges a validation matrix must share.
    """
    parts = _Parts(path, prep, numeric, categorical, objective)
    return xgb.QuantileDMatrix(parts, ref=ref, nthread=2)


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
    params = objective.estimator("xgboost", config, random_state).get_xgb_params()
    booster = xgb.train(
        {k: v for k, v in params.items() if v is not None},
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
