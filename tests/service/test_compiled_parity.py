"""The compiled per-record path gives the pandas path's answers (issue 16, item 1).

100,000 raw simulator records (every messy variant it writes: blank cells, numbers as text,
the three date formats, spelling variants, cents, and a new payment method from the drift
scenario) and one record per tricky value of each field go through both paths for the
trained champion (a logistic regression), an XGBoost pipeline with early stopping, and a
random forest (the fallback that keeps scikit-learn's ``predict_proba``). The real datasets
get the same check in ``tests/flow/test_real_datasets.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from scoring.compiled import CompiledModel
from scoring.scoring import LoadedModel
from tasks.core.config import load_params
from tasks.core.data.simulator import simulate
from tasks.core.ml.models import build_pipeline, model_inputs
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import fit_in_memory
from tests.service.parity import assert_same_answers, json_records, tricky_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(trained_project) -> LoadedModel:
    registry = Registry(trained_project / "registry")
    return LoadedModel.load(registry, registry.champion())


@pytest.fixture(scope="module")
def simulated() -> list[dict]:
    data = simulate(
        dt.date(2024, 3, 1),
        dt.date(2024, 4, 9),
        2500,
        seed=11,
        drift_kind="new_category",
        drift_start=dt.date(2024, 4, 1),
    ).data
    records = json_records(data)
    assert len(records) >= 100_000
    return records


def refit(
    champion: LoadedModel, root, kind: str, params: dict, max_categories: int = 50
) -> LoadedModel:
    """The champion's card with another kind of model fitted on the same splits."""
    problem = load_params(root / PATHS.params).problem
    X_train, y_train, _, _ = model_inputs(pd.read_parquet(root / PATHS.train), problem)
    X_valid, y_valid, _, _ = model_inputs(pd.read_parquet(root / PATHS.valid), problem)
    card = champion.version.card
    pipeline = build_pipeline(
        kind, card["numeric_features"], card["categorical_features"], params, 0, max_categories
    )
    fit_in_memory(pipeline, X_train, y_train, X_valid, y_valid, early_stopping_rounds=20)
    model = dataclasses.replace(champion, model=pipeline)
    object.__setattr__(model, "compiled", CompiledModel(model))
    return model


def test_the_champion_gives_the_same_answers_on_100k_simulator_records(champion, simulated):
    assert champion.compiled.kind == "LogisticRegression"
    counts = assert_same_answers(champion, simulated)
    assert counts["scored"] == len(simulated)
    assert counts["columns"] == len(simulated)  # every batch of 5,000 read column-wise
    tricky = tricky_records(champion, simulated)
    counts = assert_same_answers(champion, tricky)
    assert counts["refused"] > 50 and counts["scored"] > 100, counts
    assert counts["alone"] > 0.9 * counts["scored"], counts


def test_xgboost_gives_the_same_answers(champion, simulated, trained_project):
    model = refit(
        champion,
        trained_project,
        "xgboost",
        {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.1},
    )
    assert model.compiled.kind == "XGBClassifier"
    assert model.compiled.iteration_range[1] > 0  # early stopping chose the trees used
    counts = assert_same_answers(model, simulated, singles_every=10)
    assert counts["scored"] == len(simulated) == counts["columns"]
    assert_same_answers(model, tricky_records(model, simulated))


def test_a_random_forest_falls_back_to_its_own_predict_proba_with_the_same_answers(
    champion, simulated, trained_project
):
    model = refit(champion, trained_project, "random_forest", {"n_estimators": 50})
    assert model.compiled.kind == "RandomForestClassifier"
    sample = simulated[:: len(simulated) // 3000]
    # its single-record fallback is predict_proba on one row, 5 ms: one record in ten singly
    assert_same_answers(model, sample, singles_every=10)
    assert_same_answers(model, tricky_records(model, sample)[::3])


def test_unseen_categories_get_the_same_answers(champion, simulated):
    # every unseen spelling maps to the infrequent bucket or to no column, as one-hot does
    unseen = [dict(r, plan="platinum-plus", region="mars") for r in simulated[:2000]]
    assert_same_answers(champion, unseen)
    probabilities = np.array([champion.score_one(r)[0] for r in unseen])
    assert np.isfinite(probabilities).all()


@pytest.mark.parametrize("kind", ["logistic_regression", "xgboost"])
def test_target_encoded_wide_columns_give_the_same_answers(
    champion, simulated, trained_project, kind
):
    # with a ceiling of 3 distinct values, the simulator's wider category columns are
    # target encoded (as a tail number or a product code is at the default of 50)
    params = {"n_estimators": 200, "max_depth": 3} if kind == "xgboost" else {}
    model = refit(champion, trained_project, kind, params, max_categories=3)
    encode = model.model.named_steps["prep"].named_transformers_["cat"].named_steps["encode"]
    assert encode.wide_ and encode.narrow_, "both encodings are exercised"
    assert len(model.compiled.cat_values) == len(encode.wide_)
    sample = simulated[:: len(simulated) // 20000]
    unseen = [dict(r, plan="platinum-plus", region="mars") for r in sample[:500]]
    assert_same_answers(model, sample + unseen, singles_every=10)
    assert_same_answers(model, tricky_records(model, sample))
