"""Behaviour of the champion the pipeline trained: minimum quality, direction, invariance.

The model is the one the shared trained project registered and serves (loaded from its
registry after the hash check), scored on the sealed test split the pipeline wrote, so a
regression in choose or train shows here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import load_params
from tasks.core.ml.models import model_inputs
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS
from tasks.core.serving.registry import open_registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(trained_project):
    """``(fitted pipeline, its card, the project's params, the test split's model inputs)``."""
    params = load_params(trained_project / PATHS.params)
    registry = open_registry(trained_project, params)
    version = registry.champion()
    test = pd.read_parquet(trained_project / PATHS.test)
    X, y, _, _ = model_inputs(test, params.problem)
    return registry.load(version), version.card, params, X, y


def scores(champion, X):
    model, _, params, _, _ = champion
    return objective_for(params.problem).scores(model, X)


def test_minimum_quality_the_champion_meets_every_kpi_floor_on_the_test_split(champion):
    _, card, params, X, y = champion
    objective = objective_for(params.problem)
    found = objective.headline(y, scores(champion, X))
    for floor in objective.floors():
        assert floor.met(found[floor.metric.name]), (floor.key, found[floor.metric.name])
    recorded = card["metrics"]["test"]
    assert found["roc_auc"] == pytest.approx(recorded["roc_auc"], abs=1e-6), "as evaluated"


def test_direction_longer_inactivity_means_more_risk(champion):
    X = champion[3]
    idle = X.assign(days_since_last_activity=60.0)
    active = X.assign(days_since_last_activity=0.0)
    assert scores(champion, idle).mean() > scores(champion, active).mean() + 0.05


def test_invariance_gender_barely_moves_predictions(champion):
    X = champion[3]
    assert "gender" in X, "the simulator's gender column reaches the model"
    flipped = X.assign(gender=np.where(X["gender"] == "male", "female", "male"))
    assert np.abs(scores(champion, X) - scores(champion, flipped)).mean() < 0.03


def test_unseen_categories_and_missing_values_still_score(champion):
    X = champion[3].head(20)
    assert {"payment_method", "age"} <= set(X.columns)
    odd = X.assign(payment_method="crypto-wallet", age=np.nan)
    proba = scores(champion, odd)
    assert np.isfinite(proba).all() and ((0 <= proba) & (proba <= 1)).all()
