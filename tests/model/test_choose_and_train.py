from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.choose_model import pick_simplest
from tasks.core.config import CostMatrix
from tasks.core.metrics import metric
from tasks.core.ml.costs import best_threshold, expected_cost
from tasks.core.ml.crossval import cross_validate
from tasks.core.ml.models import build_pipeline, load_model, model_inputs, save_model
from tasks.core.ml.tuning import Tuning, tune
from tests.conftest import fit_in_memory


def test_the_simplest_candidate_within_one_standard_error_wins():
    rows = [
        {"model": "logistic_regression", "complexity": 1, "mean": 0.830, "se": 0.002},
        {"model": "random_forest", "complexity": 2, "mean": 0.829, "se": 0.002},
        {"model": "xgboost", "complexity": 3, "mean": 0.831, "se": 0.002},
    ]
    chosen, reason = pick_simplest(rows, metric("roc_auc"))
    assert chosen == "logistic_regression" and "within one standard error" in reason
    rows[2]["mean"] = 0.850
    assert pick_simplest(rows, metric("roc_auc"))[0] == "xgboost"
    brier = [
        {"model": "logistic_regression", "complexity": 1, "mean": 0.20, "se": 0.001},
        {"model": "xgboost", "complexity": 3, "mean": 0.10, "se": 0.001},
    ]
    assert pick_simplest(brier, metric("brier"))[0] == "xgboost", "lower Brier is better"


def test_cross_validation_scores_every_candidate(splits, params):
    rows = cross_validate(splits["train"], params.problem, params.choose)
    assert [r["model"] for r in rows] == ["logistic_regression", "random_forest", "xgboost"]
    for r in rows:
        assert 0.6 < r["mean"] < 1 and len(r["folds"]) == 3 and r["se"] > 0


def test_preprocessing_is_fitted_on_the_training_split_only(splits, params):
    X_train, y_train, numeric, categorical = model_inputs(splits["train"], params.problem)
    pipeline = build_pipeline("logistic_regression", numeric, categorical, {}, 0).fit(
        X_train, y_train
    )
    imputer = pipeline.named_steps["prep"].named_transformers_["num"].named_steps["impute"]
    np.testing.assert_allclose(imputer.statistics_, X_train[numeric].median().to_numpy())
    both = pd.concat([X_train, model_inputs(splits["test"], params.problem)[0]])
    assert not np.allclose(imputer.statistics_, both[numeric].median().to_numpy())


def test_an_early_stopped_xgboost_round_trips_through_the_safe_format(
    tmp_path, splits, split_files, params
):
    hashes = {"train": "a" * 64, "valid": "b" * 64}
    files = split_files["train"], split_files["valid"]
    _, (_, pipeline, proba) = tune(
        "xgboost", {"n_estimators": 50}, *files, Tuning.of(params), hashes
    )
    save_model(pipeline, tmp_path / "m.skops")
    X_valid = model_inputs(splits["valid"], params.problem)[0]
    np.testing.assert_array_equal(
        load_model(tmp_path / "m.skops").predict_proba(X_valid)[:, 1], proba
    )


def test_tuning_is_reproducible_and_logs_every_trial(split_files, params):
    hashes = {"train": "a" * 64, "valid": "b" * 64}
    files = split_files["train"], split_files["valid"]
    first, (config, _, proba) = tune(
        "xgboost", {"n_estimators": 50}, *files, Tuning.of(params), hashes
    )
    second, _ = tune("xgboost", {"n_estimators": 50}, *files, Tuning.of(params), hashes)
    strip = [{k: v for k, v in t.items() if k != "seconds"} for t in first]
    assert strip == [{k: v for k, v in t.items() if k != "seconds"} for t in second]
    assert len(first) == params.train.n_trials
    assert {
        "config",
        "roc_auc",
        "seconds",
        "train_sha256",
        "valid_sha256",
        "best_iteration",
    } <= set(first[0])
    assert all(t["seconds"] > 0 for t in first), "runtime of every trial"
    assert any(t["best_iteration"] is not None and t["best_iteration"] < 1999 for t in first[1:]), (
        "early stopping"
    )


def test_threshold_minimises_the_expected_cost():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.55, 0.9])
    cost = CostMatrix(false_positive=1, false_negative=5, true_positive=1, true_negative=0)
    threshold, best = best_threshold(y, p, cost)
    assert best == min(expected_cost(y, p, t, cost) for t in np.arange(0.01, 1, 0.01))
    assert expected_cost(y, p, 0.5, cost) == (1 + 1 + 1) / 5
    assert threshold <= 0.55


def test_folds_follow_the_split_strategy():
    from tasks.core.config import ChooseParams
    from tasks.core.ml.crossval import cv_folds

    rng = np.random.default_rng(0)
    n = 600
    times = pd.Series(pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.permutation(n), "h"))
    X = pd.DataFrame({"x": rng.normal(size=n)})
    y = rng.integers(0, 2, n)
    groups = pd.Series(rng.integers(0, 40, n))
    cfg = ChooseParams(cv_folds=4)
    for fit, val in cv_folds(X, y, cfg, "time", order=times):
        assert times.iloc[fit].max() < times.iloc[val].min()  # validated on later rows only
    for fit, val in cv_folds(X, y, cfg, "group", groups=groups):
        assert not set(groups.iloc[fit]) & set(groups.iloc[val])
    stratified = cv_folds(X, y, cfg)
    assert sorted(np.concatenate([val for _, val in stratified])) == list(range(n))


def test_a_wide_text_column_is_target_encoded_not_one_hot_encoded():
    rng = np.random.default_rng(1)
    n = 4000
    codes = rng.integers(0, 900, n)
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "plan": rng.choice(["a", "b", "c"], n).astype(object),
            "tailnum": pd.Series([f"N{c:04d}" for c in codes], dtype=object),
        }
    )
    y = ((codes % 7 == 0) | (rng.random(n) < 0.1)).astype(int)  # the wide column matters
    pipeline = build_pipeline("logistic_regression", ["x"], ["plan", "tailnum"], {}, 0).fit(X, y)
    names = list(pipeline.named_steps["prep"].get_feature_names_out())
    assert len(names) == 1 + 3 + 1  # x, its missing flag is absent, 3 plans, one tailnum column
    assert "tailnum" in names and not any(n.startswith("tailnum_") for n in names)
    narrow = build_pipeline("logistic_regression", ["x"], ["plan", "tailnum"], {}, 0, 1000)
    assert len(narrow.fit(X, y).named_steps["prep"].get_feature_names_out()) > 100


def test_a_linear_model_takes_its_one_hot_block_sparse_with_the_same_answers():
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    n = 3000
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "city": pd.Series([f"c{k}" for k in rng.integers(0, 40, n)], dtype=object),
        }
    )
    y = (rng.random(n) < 0.3).astype(int)
    sparse = build_pipeline("logistic_regression", ["x"], ["city"], {}, 0).fit(X, y)
    assert sp.issparse(sparse.named_steps["prep"].transform(X))  # 40 one-hot columns
    dense = build_pipeline("logistic_regression", ["x"], ["city"], {}, 0)
    dense.set_params(prep__sparse_threshold=0.0, prep__cat__encode__sparse=False).fit(X, y)
    assert not sp.issparse(dense.named_steps["prep"].transform(X))
    np.testing.assert_allclose(
        sparse.predict_proba(X)[:, 1], dense.predict_proba(X)[:, 1], atol=1e-6
    )
    trees = build_pipeline("xgboost", ["x"], ["city"], {"n_estimators": 5}, 0).fit(X, y)
    assert not sp.issparse(trees.named_steps["prep"].transform(X))  # absent != missing


def test_a_split_of_one_part_gives_the_model_an_in_memory_fit_gives(split_files, splits, params):
    """One data path (issue 41): XGBoost learns from the histogram matrix built part by
    part, and the rows the preprocessing was fitted on keep their cross-fitted target
    encoding; on a split of one part that is the in-memory fit, score for score. A
    category cap of 3 target-encodes every wider column."""
    tuning = Tuning(params.problem, params.train.model_copy(update={"n_trials": 2}), 3)
    hashes = {"train": "a" * 64, "valid": "b" * 64}
    files = split_files["train"], split_files["valid"]
    _, (config, pipeline, proba) = tune("xgboost", {"n_estimators": 60}, *files, tuning, hashes)
    X_train, y_train, numeric, categorical = model_inputs(splits["train"], params.problem)
    X_valid, y_valid, _, _ = model_inputs(splits["valid"], params.problem)
    encoder = pipeline.named_steps["prep"].named_transformers_["cat"].named_steps["encode"]
    assert encoder.wide_, "some column is target encoded"
    random_state, stop = params.train.random_state, params.train.early_stopping_rounds
    in_memory = build_pipeline("xgboost", numeric, categorical, config, random_state, 3)
    fit_in_memory(in_memory, X_train, y_train, X_valid, y_valid, stop)
    np.testing.assert_array_equal(in_memory.predict_proba(X_valid)[:, 1], proba)
