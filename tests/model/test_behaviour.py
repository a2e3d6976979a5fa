"""Behaviour of a trained model: minimum quality, direction, invariance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tasks.core.ml.models import build_pipeline, model_inputs


@pytest.fixture(scope="module")
def fitted(splits, params):
    X, y, numeric, categorical = model_inputs(splits["train"], params.problem)
    return build_pipeline(
        "xgboost",
        numeric,
        categorical,
        {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05},
        0,
    ).fit(X, y)


def test_minimum_quality_on_held_out_rows(fitted, splits, params):
    X, y, _, _ = model_inputs(splits["test"], params.problem)
    assert roc_auc_score(y, fitted.predict_proba(X)[:, 1]) > 0.75


def test_direction_longer_inactivity_means_more_risk(fitted, splits, params):
    X, _, _, _ = model_inputs(splits["test"], params.problem)
    idle = X.assign(days_since_last_activity=60.0)
    active = X.assign(days_since_last_activity=0.0)
    assert (
        fitted.predict_proba(idle)[:, 1].mean() > fitted.predict_proba(active)[:, 1].mean() + 0.05
    )


def test_invariance_gender_barely_moves_predictions(fitted, splits, params):
    X, _, _, _ = model_inputs(splits["test"], params.problem)
    flipped = X.assign(gender=np.where(X["gender"] == "male", "female", "male"))
    diff = np.abs(fitted.predict_proba(X)[:, 1] - fitted.predict_proba(flipped)[:, 1])
    assert diff.mean() < 0.03


def test_unseen_categories_and_missing_values_still_score(fitted, splits, params):
    X, _, _, _ = model_inputs(splits["test"].head(20), params.problem)
    odd = X.assign(payment_method="crypto-wallet", age=np.nan)
    proba = fitted.predict_proba(odd)[:, 1]
    assert np.isfinite(proba).all() and ((0 <= proba) & (proba <= 1)).all()
