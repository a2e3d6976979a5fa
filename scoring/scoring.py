"""Scoring raw records with a registered model, through the very same code as training.

A record goes through the clean step's standardisation (with the column kinds and clean
params recorded on the model's card), the features step, and the model's own input
columns; there is no second implementation to drift from training.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scoring.compiled import CompiledModel
from scoring.fields import (
    LARGEST,
    RecordError,
    finite,
    id_problem,
    plain,
    too_large,
    value_problem,
)
from tasks.core.config import CleanParams, ProblemParams
from tasks.core.data.features import build_features
from tasks.core.data.pii import key_from_env, protect_record, pseudonym
from tasks.core.data.schema import parse_dates, parse_numbers, standardise
from tasks.core.ml.models import is_xgboost, model_matrix
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.serving.registry import ModelVersion, Registry


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, ready to score."""

    version: ModelVersion
    model: Any
    problem: ProblemParams
    clean: CleanParams
    kinds: dict[str, str]
    compiled: CompiledModel | None = dataclasses.field(default=None, compare=False, repr=False)

    @functools.cached_property
    def objective(self) -> Objective:
        """The problem type's objective (made once per loaded model, not per request), with
        the classes recorded with the model (multiclass)."""
        return objective_for(self.problem, self.version.card.get("classes"))

    @classmethod
    def load(cls, registry: Registry, version: ModelVersion) -> "LoadedModel":
        """Load after the hash check; read the params the model was trained with from its card.

        The per-record path is compiled here (:mod:`scoring.compiled`), so the
        first request pays nothing for it.
        """
        params = version.card["params"]
        loaded = cls(
            version,
            registry.load(version),
            ProblemParams.model_validate(params["problem"]),
            CleanParams.model_validate(params["clean"]),
            dict(version.card.get("column_kinds") or {}),
        )
        object.__setattr__(loaded, "compiled", CompiledModel(loaded))
        return loaded

    def score_many(self, records: list[Any]) -> tuple[list[float], Sequence[dict[str, Any]]]:
        """Probabilities and model inputs of a batch on the compiled path: a column at a
        time, or record by record when a record may be refused or holds an unusual cell (the
        pandas path's answers and 422s: the parity test holds the paths together)."""
        compiled = self.compiled
        if compiled is None:
            proba, X = self.score(records)
            return proba.tolist(), X.to_dict(orient="records")
        records = self.protect(records)
        inputs = compiled.read_batch(records)
        if inputs is not None:
            return compiled.score_rows(inputs), inputs
        problem = compiled.first_problem(records)
        if problem is not None:
            raise RecordError(*problem)
        return compiled.score_records(records)

    def warm(self) -> None:
        """Run both paths once (imports, caches, XGBoost's first call) before serving."""
        record = {} if self.problem.id_column is None else {self.problem.id_column: "warm-up"}
        self.score_one(record)
        self.score([record, record])

    def score_one(self, record: Any) -> tuple[float, dict[str, Any]]:
        """(probability, model inputs) of one raw record through the compiled path.

        Raises
        ------
        RecordError
            The same (record 0, field, reason) :meth:`score` gives for the record.
        """
        compiled = self.compiled
        if compiled is None:  # built by hand, not loaded: the definition
            proba, X = self.score([record])
            return float(proba[0]), X.iloc[0].to_dict()
        if isinstance(record, dict):
            record = self.protect([record])[0]
        problem = compiled.check(record)
        if problem is not None:
            raise RecordError(0, *problem)
        return compiled.score_one(record)

    @property
    def threshold(self) -> float | None:
        """Decision threshold chosen on validation (None: a type without one, regression)."""
        found = self.version.card.get("threshold")
        return None if found is None else float(found)

    def validate(self, records: list[dict[str, Any]]) -> None:
        """Refuse fields the training schema cannot read (numbers that are not numbers...).

        The first bad field (in record order, then field order) is reported. Text cells are
        parsed a column at a time with the training code's parsers, so a batch of records
        costs a few vectorised calls, not one per cell.
        """
        problems: list[
            tuple[int, int, str, str]
        ] = []  # (record, position of the field, field, reason)
        texts: dict[str, list[tuple[int, int, Any]]] = {}
        id_column = self.problem.id_column
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RecordError(i, "*", "a record must be a JSON object")
            if id_column is not None:
                reason = id_problem(plain(record.get(id_column)))
                if reason:
                    raise RecordError(i, id_column, reason)
            for position, (field, value) in enumerate(record.items()):
                value = plain(value)
                reason = value_problem(value)
                if reason:
                    problems.append((i, position, str(field), reason))
                    continue
                kind = self.kinds.get(field)
                if value is None or kind is None or (isinstance(value, str) and not value.strip()):
                    continue
                if kind == "numeric" and isinstance(value, bool):
                    problems.append((i, position, field, f"expected a number, got {value!r}"))
                elif kind == "numeric" and isinstance(value, (int, float)):
                    if not finite(value):
                        problems.append(
                            (i, position, field, f"expected a finite number, got {value!r}")
                        )
                    elif abs(float(value)) > LARGEST:
                        problems.append((i, position, field, too_large(value)))
                elif kind in ("numeric", "datetime"):
                    texts.setdefault(field, []).append((i, position, value))
        for field, cells in texts.items():
            values = pd.Series(
                [v if isinstance(v, str) else str(v) for _, _, v in cells], dtype=object
            )
            if self.kinds[field] == "numeric":
                numbers = parse_numbers(values)[0].to_numpy(float)
                for (i, position, value), number in zip(cells, numbers):
                    if np.isnan(number):
                        problems.append((i, position, field, f"expected a number, got {value!r}"))
                    elif not np.isfinite(number):
                        problems.append(
                            (i, position, field, f"expected a finite number, got {value!r}")
                        )
                    elif abs(number) > LARGEST:
                        problems.append((i, position, field, too_large(value)))
            else:
                dates = parse_dates(values, self.clean.date_formats)[0]
                for (i, position, value), bad in zip(cells, dates.isna().to_numpy()):
                    if bad:
                        problems.append(
                            (
                                i,
                                position,
                                field,
                                f"expected a date in one of {self.clean.date_formats}, got "
                                f"{value!r}",
                            )
                        )
        if problems:
            i, _, field, reason = min(problems)
            raise RecordError(i, field, reason)

    def prepare(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Raw records to the model's input rows, with the training code (standardise, features)."""
        columns = [c for c in self.kinds if c != self.problem.target]
        # only the columns the model was trained on: other fields are never read (nor logged)
        raw = pd.DataFrame(
            [[plain(r.get(c)) for c in columns] for r in records], columns=columns, dtype=object
        )
        kinds = {c: k for c, k in self.kinds.items() if c != self.problem.target}
        std = standardise(
            raw,
            kinds,
            self.objective.read_target,
            self.clean.date_formats,
            self.clean.category_aliases,
            [f.model_dump() for f in self.clean.unit_fixes],
        ).frame
        features, _ = build_features(std, self.problem, [])
        card = self.version.card
        return model_matrix(features, card["numeric_features"], card["categorical_features"])

    @property
    def pii(self) -> dict[str, str]:
        """The personal columns of the training data, and what collect did to each."""
        return dict(self.version.card["params"]["collect"].get("pii") or {})

    def protect(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records with personal fields dropped or pseudonymised as at collection."""
        rules = self.pii
        if not rules:
            return records
        env = self.version.card["params"]["collect"].get("pii_key_env") or "CHURN_PII_KEY"
        key = key_from_env(env)
        return [protect_record(r, rules, key) if isinstance(r, dict) else r for r in records]

    def logged_ids(self, ids: list[str | None]) -> list[str | None]:
        """The ids as the prediction log keeps them (pseudonymised when the id column is)."""
        column = self.problem.id_column
        if column is None or self.pii.get(column) is None:
            return ids
        env = self.version.card["params"]["collect"].get("pii_key_env") or "CHURN_PII_KEY"
        key = key_from_env(env)
        return [None if i is None or key is None else pseudonym(i, key) for i in ids]

    def record_ids(self, records: list[dict[str, Any]]) -> list[str | None]:
        """Each record's id as text (None for all when the data has no id column)."""
        column = self.problem.id_column
        return [None if column is None else str(r.get(column)) for r in records]

    def score(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, pd.DataFrame]:
        """Probabilities for raw records, and the model inputs they were computed from."""
        records = self.protect(records)
        self.validate(records)
        X = self.prepare(records)
        return self.objective.scores(self.model, X), X

    def contributions(self, X: pd.DataFrame, top: int) -> list[list[dict[str, float]]]:
        """Top feature contributions per row (XGBoost SHAP values; else |coef x value| for a
        linear model); a multiclass model's to the margin of the class it predicts."""
        prep, model = self.model.named_steps["prep"], self.model.named_steps["model"]
        Z = prep.transform(X)
        Z = Z.toarray() if hasattr(Z, "toarray") else Z  # a linear model's sparse one-hot block
        names = list(prep.get_feature_names_out())
        terms = self.objective.linear_terms(model)
        if is_xgboost(model):
            import xgboost as xgb

            values = model.get_booster().predict(
                xgb.DMatrix(np.asarray(Z, dtype=float)), pred_contribs=True
            )[..., :-1]
        elif terms is not None:
            weights = terms[0]
            values = (
                np.asarray(Z, dtype=float)[:, None, :] * weights
                if weights.ndim == 2
                else (np.asarray(Z, dtype=float) * weights)
            )
        else:
            return [[] for _ in range(len(X))]
        if values.ndim == 3:  # (rows, classes, features): the predicted class's
            predicted = self.objective.decide(self.objective.scores(self.model, X), None)
            values = values[np.arange(len(values)), predicted]
        out = []
        for row in values:
            order = np.argsort(-np.abs(row))[:top]
            out.append(
                [{"feature": names[k], "contribution": round(float(row[k]), 6)} for k in order]
            )
        return out
