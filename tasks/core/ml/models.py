"""Model definitions: candidate pipelines, search spaces and safe persistence.

Every candidate is one scikit-learn ``Pipeline``: preprocessing (imputation, one-hot
encoding or, for a wide text column, target encoding; scaling) and the classifier, fitted
together on the training split only, so no statistic of validation or test data leaks
into the model. The same pipeline serves predictions. Models are stored with skops and
loaded only with the fixed list of trusted types below; no pickle is ever loaded.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tasks.core.config import ProblemParams
from tasks.core.io import atomic_path
from tasks.core.ml.encoders import CategoryEncoder
from tasks.core.ml.objective import Objective, objective_for

COMPLEXITY = {"logistic_regression": 1, "ridge": 1, "random_forest": 2, "xgboost": 3}
"""Simplest first: model selection prefers the lowest rank within one standard error."""


# ----------------------------------------------------------------------------- data
def feature_columns(frame: pd.DataFrame, exclude: set[str]) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` model inputs: every column not excluded, by dtype."""
    cols = [c for c in frame.columns if c not in exclude]
    numeric = [
        c
        for c in cols
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    return numeric, [c for c in cols if c not in numeric]


def model_matrix(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The frame the pipeline takes: known columns only (absent ones missing), NaN for missing."""
    out = {}
    for column in numeric:
        out[column] = (
            pd.to_numeric(frame[column], errors="coerce").astype(float)
            if column in frame
            else np.nan
        )
    for column in categorical:
        if column in frame:
            values = frame[column].astype(object)
            out[column] = values.where(frame[column].notna(), np.nan)
        else:
            out[column] = np.nan
    return pd.DataFrame(out, index=frame.index)


# ----------------------------------------------------------------------------- models
def is_xgboost(model: Any) -> bool:
    """Whether ``model`` is one of XGBoost's scikit-learn estimators (of any problem type)."""
    from xgboost import XGBModel

    return isinstance(model, XGBModel)


# ----------------------------------------------------------------------------- models
def _preprocessor(
    numeric: list[str], categorical: list[str], scale: bool, max_categories: int, random_state: int
) -> ColumnTransformer:
    num_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True))
    ]
    if scale:
        num_steps.append(("scale", StandardScaler()))
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", CategoryEncoder(max_categories, 5, random_state, sparse=scale)),
        ]
    )
    # a linear model (scaled) takes the one-hot block sparse where most of it is zeros;
    # trees keep dense inputs (XGBoost reads absent sparse entries as missing, not zero)
    return ColumnTransformer(
        [("num", Pipeline(num_steps), numeric), ("cat", cat, categorical)],
        verbose_feature_names_out=False,
        sparse_threshold=0.3 if scale else 0.0,
    )


def build_pipeline(
    kind: str,
    numeric: list[str],
    categorical: list[str],
    params: dict[str, Any],
    random_state: int,
    max_categories: int = 50,
    objective: Objective | None = None,
) -> Pipeline:
    """Preprocessing and the problem type's model of ``kind`` as one unfitted pipeline.

    A categorical input with more than ``max_categories`` distinct values in the fitting
    rows is target encoded, the others one-hot encoded
    (:class:`tasks.core.ml.encoders.CategoryEncoder`). ``objective`` gives the model
    (:meth:`tasks.core.ml.objective.Objective.estimator`); binary when not given.
    """
    objective = objective or objective_for(None)
    scale = kind in ("logistic_regression", "ridge")  # the linear models
    return Pipeline(
        [
            ("prep", _preprocessor(numeric, categorical, scale, max_categories, random_state)),
            ("model", objective.estimator(kind, params, random_state)),
        ]
    )


def sample_params(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """One random draw from the tuning search space of ``kind``."""

    def loguniform(low: float, high: float) -> float:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    if kind == "logistic_regression":
        return {"C": round(loguniform(0.005, 20.0), 5)}
    if kind == "ridge":
        return {"alpha": round(loguniform(0.01, 100.0), 5)}
    if kind == "random_forest":
        return {
            "n_estimators": int(rng.integers(100, 401)),
            "max_depth": int(rng.choice([6, 8, 12, 16, 24])),
            "min_samples_leaf": int(rng.integers(1, 30)),
            "max_features": str(rng.choice(["sqrt", "log2"])),
        }
    return {
        "n_estimators": 2000,
        "max_depth": int(rng.integers(2, 7)),
        "learning_rate": round(loguniform(0.02, 0.2), 5),
        "subsample": round(float(rng.uniform(0.6, 1.0)), 3),
        "colsample_bytree": round(float(rng.uniform(0.5, 1.0)), 3),
        "min_child_weight": round(loguniform(1.0, 20.0), 3),
        "reg_lambda": round(loguniform(0.1, 20.0), 4),
    }


# ----------------------------------------------------------------------------- persistence
TRUSTED_TYPES = frozenset(
    {
        "builtins.bytearray",
        "builtins.dict",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "collections.OrderedDict",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.impute._base.MissingIndicator",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.model_selection._split.KFold",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
        "tasks.core.ml.encoders.CategoryEncoder",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
    }
)
"""The only types a stored model may contain; anything else is refused at load."""


_VOLATILE = re.compile(
    r"\b\d{12,}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)


def canonical_skops(data: bytes) -> bytes:
    """Make a skops archive byte-reproducible.

    skops names array files and object references after ``id()`` values and UUIDs, and
    zip entries carry the time of writing; the same model would get a new hash on every
    run, and ``dvc repro`` could never reproduce it. Here every such token is renumbered
    in order of first use, entries are sorted and their timestamps fixed.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    mapping: dict[str, str] = {}

    def canonical(match: re.Match[str]) -> str:
        token = match.group(0)
        if token not in mapping:
            k = len(mapping) + 1
            mapping[token] = (
                f"{10**12 + k}" if token.isdigit() else f"00000000-0000-0000-0000-{k:012d}"
            )
        return mapping[token]

    schema = _VOLATILE.sub(canonical, source.read("schema.json").decode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        entries = {"schema.json": schema.encode()}
        for name in source.namelist():
            if name != "schema.json":
                entries[_VOLATILE.sub(canonical, name)] = source.read(name)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, entries[name])
    return out.getvalue()


def save_model(pipeline: Pipeline, path: Path) -> None:
    """Store a fitted pipeline with skops, byte-reproducibly and atomically."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        tmp.write_bytes(canonical_skops(sio.dumps(pipeline)))


class UntrustedModel(ValueError):
    """A stored model holds a type outside :data:`TRUSTED_TYPES`."""


def stored_types(path: Path) -> set[str]:
    """Every ``module.Class`` (or function) a skops archive's schema names."""
    try:
        schema = json.loads(zipfile.ZipFile(path).read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise UntrustedModel(f"{path} is not a skops model archive: {exc}") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_model(path: Path) -> Pipeline:
    """Load a pipeline stored by :func:`save_model`, refusing any type not in the trusted list.

    The check covers every type the archive names, including those skops itself would
    trust by default, so a model can only ever contain what :data:`TRUSTED_TYPES` lists.
    """
    import skops.io as sio

    found = stored_types(path)
    unknown = sorted(found - TRUSTED_TYPES)
    if unknown:
        raise UntrustedModel(
            f"{path} holds types outside the trusted list: {unknown}; refusing to load it"
        )
    return sio.load(path, trusted=sorted(found))


def model_inputs(
    frame: pd.DataFrame, problem: ProblemParams, objective: Objective | None = None
) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    """``(X, y, numeric, categorical)`` from a split file (``y`` read by ``objective``, bound
    to the training split's classes for a multiclass problem)."""
    numeric, categorical = feature_columns(
        frame, {problem.id_column, problem.target, problem.time_column}
    )
    return (
        model_matrix(frame, numeric, categorical),
        (objective or objective_for(problem)).labels(frame[problem.target]),
        numeric,
        categorical,
    )
