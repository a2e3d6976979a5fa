from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.project import deep_merge
from flows.runtime.pipeline import load_stages
from tasks.core.config import parse_params
from tasks.core.errors import StepError
from tasks.core.metrics import metric as metric_named
from tasks.core.ml.evaluation import paired_bootstrap_lift
from tasks.core.ml.gate import fairness, gate, skipped_columns, slice_metrics, unjudged_slices
from tasks.core.ml.models import (
    UntrustedModel,
    build_pipeline,
    load_model,
    model_inputs,
    save_model,
)
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS
from tasks.evaluate import headline, read_sealed_test
from tests.conftest import REPO, default_params_dict


def good_and_weak(splits, params):
    X_train, y_train, numeric, categorical = model_inputs(splits["train"], params.problem)
    X_test, y_test, _, _ = model_inputs(splits["test"], params.problem)
    model = build_pipeline(
        "xgboost", numeric, categorical, {"n_estimators": 150, "max_depth": 3}, 0
    )
    good = model.fit(X_train, y_train).predict_proba(X_test)[:, 1]
    weak = np.random.default_rng(0).random(len(y_test))
    return y_test, good, weak


def decide(splits, params, proba, y):
    test = splits["test"]
    rule = -pd.to_numeric(test["tenure_months"]).to_numpy(float)
    lift = {
        "baseline": "rule",
        "metric": "roc_auc",
        **paired_bootstrap_lift(y, proba, rule, metric_named("roc_auc"), 200, 0.95, 0),
    }
    metrics = headline(y, proba, 0.3, objective_for(params.problem), params.evaluate)
    slices = slice_metrics(test, y, proba, params.evaluate, params.problem)
    fair, unfair = fairness(test, y, (proba >= 0.3).astype(int), params.evaluate)
    skipped = skipped_columns(test, params.evaluate) + unjudged_slices(
        slices, params.evaluate, objective_for(params.problem)
    )
    return gate(metrics, lift, slices, fair, params.problem, params.evaluate, skipped + unfair)


def test_a_good_model_is_blessed_and_says_why(splits, params):
    y, good, _ = good_and_weak(splits, params)
    lenient = parse_params(
        deep_merge(
            default_params_dict(),
            {"problem": {"kpis": {"pr_auc_min": 0.3}}, "evaluate": {"slices": [], "sensitive": []}},
        )
    )
    decision = decide(splits, lenient, good, y)
    assert decision.blessed and not decision.failed, decision.reasons
    assert decision.reasons[0].startswith("PASS beats rule on roc_auc")


def test_a_deliberately_weak_model_is_refused_with_reasons(splits, params):
    y, _, weak = good_and_weak(splits, params)
    decision = decide(splits, params, weak, y)
    assert not decision.blessed
    failed = decision.failed
    assert any("beats rule" in r and "lower bound" in r for r in failed)
    assert any(r.startswith("FAIL ROC-AUC") for r in failed)


def test_a_slice_below_its_floor_or_a_fairness_gap_refuses(splits, params):
    y, good, _ = good_and_weak(splits, params)
    test = splits["test"]
    hurt = good.copy()
    mask = (test["plan"] == "premium").to_numpy()
    hurt[mask] = np.random.default_rng(1).random(mask.sum())
    strict = parse_params(
        deep_merge(
            default_params_dict(),
            {"evaluate": {"slices": ["plan"], "slice_min_rows": 30, "slice_roc_auc_floor": 0.65}},
        )
    )
    decision = decide(splits, strict, hurt, y)
    assert not decision.blessed
    assert any(r.startswith("FAIL slice plan=premium") for r in decision.failed)
    unfair = good.copy()
    unfair[(test["gender"] == "female").to_numpy()] *= 0.2
    decision = decide(splits, params, unfair, y)
    assert not decision.blessed and any("FAIL gender: " in r for r in decision.failed)


def test_bootstrap_interval_brackets_the_lift(splits, params):
    y, good, _ = good_and_weak(splits, params)
    rule = -pd.to_numeric(splits["test"]["tenure_months"]).to_numpy(float)
    lift = paired_bootstrap_lift(y, good, rule, metric_named("roc_auc"), 200, 0.95, 0)
    assert lift["lower"] < lift["lift"] < lift["upper"] and lift["lower"] > 0


def test_only_the_evaluate_stage_depends_on_the_test_split():
    readers = [
        s.name
        for s in load_stages(REPO / "dvc.yaml")
        if any(d == PATHS.test or PATHS.test.startswith(d.rstrip("/") + "/") for d in s.deps)
    ]
    assert readers == ["evaluate"]


def test_a_changed_test_file_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "data/05_model_input").mkdir(parents=True)
    (tmp_path / "data/04_splits").mkdir(parents=True)
    (tmp_path / PATHS.test).write_bytes(b"not the recorded test set")
    (tmp_path / PATHS.split_manifest).write_text('{"test": {"sha256": "' + "0" * 64 + '"}}')
    with pytest.raises(StepError, match="sealed test"):
        read_sealed_test(tmp_path)


def test_a_model_file_holding_an_extra_type_is_refused(tmp_path, splits, params):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y, numeric, categorical = model_inputs(splits["train"], params.problem)
    good = build_pipeline("logistic_regression", numeric, categorical, {}, 0).fit(X, y)
    save_model(good, tmp_path / "ok.skops")
    assert load_model(tmp_path / "ok.skops") is not None
    sneaky = Pipeline([("f", FunctionTransformer(np.log1p)), ("m", good)])
    save_model(sneaky, tmp_path / "extra.skops")
    with pytest.raises(UntrustedModel, match="FunctionTransformer|log1p"):
        load_model(tmp_path / "extra.skops")


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_the_bootstrap_from_sorted_scores_equals_scikit_learn_on_each_resample(metric):
    """The lift's interval is linear in the rows (scores sorted once), with the values a
    plain loop over resamples gives, ties included."""
    from tasks.core.metrics import metric as metric_named
    from tasks.core.ml.evaluation import Ranked

    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(n) < 0.2).astype(int)
    model = np.round(rng.random(n) * 0.6 + 0.4 * y, 2)  # rounded: many tied scores
    baseline = rng.integers(0, 5, n).astype(float)  # a rule column: few values
    score = metric_named(metric)
    draws = np.random.default_rng(1)
    for _ in range(20):
        idx = draws.integers(0, n, n)
        counts = np.bincount(idx, minlength=n)
        for s in (model, baseline):
            assert Ranked(y, s).score(metric, counts) == pytest.approx(
                score(y[idx], s[idx]), abs=1e-12
            )
    plain, draws = [], np.random.default_rng(0)  # the loop it replaces
    for _ in range(200):
        idx = draws.integers(0, n, n)
        plain.append(score(y[idx], model[idx]) - score(y[idx], baseline[idx]))
    lift = paired_bootstrap_lift(y, model, baseline, score, 200, 0.95, 0)
    assert lift["lower"] == pytest.approx(np.quantile(plain, 0.025), abs=1e-12)
    assert lift["upper"] == pytest.approx(np.quantile(plain, 0.975), abs=1e-12)


def test_a_skipped_check_is_reported_and_a_skipped_fairness_check_blocks(splits, params):
    y, good, _ = good_and_weak(splits, params)
    # every group of the slice and of the sensitive column is under its minimum
    tiny = {
        "problem": {"kpis": {"pr_auc_min": 0.3}},
        "evaluate": {
            "slices": ["plan"],
            "slice_min_rows": 100_000,
            "sensitive": ["gender"],
            "fairness": {"min_group_rows": 100_000},
        },
    }
    decision = decide(splits, parse_params(deep_merge(default_params_dict(), tiny)), good, y)
    assert not decision.blessed
    assert any(r.startswith("SKIP evaluate.slices 'plan'") for r in decision.reasons)
    assert any("fairness on 'gender' could not be judged" in r for r in decision.failed)
    tiny["evaluate"]["fairness"]["block_when_skipped"] = False
    decision = decide(splits, parse_params(deep_merge(default_params_dict(), tiny)), good, y)
    assert decision.blessed, decision.reasons
    assert any(r.startswith("SKIP evaluate.sensitive 'gender'") for r in decision.reasons)


def test_a_numeric_sensitive_column_is_judged_in_ranges(splits, params):
    from tasks.core.ml.evaluation import slice_groups

    y, good, _ = good_and_weak(splits, params)
    test = splits["test"].assign(age=np.random.default_rng(0).integers(18, 90, len(y)))
    groups = slice_groups(test["age"].reset_index(drop=True))
    assert len(groups) == 4 and sum(len(v) for v in groups.values()) == len(y)
    cfg = parse_params(
        deep_merge(default_params_dict(), {"evaluate": {"sensitive": ["age"]}})
    ).evaluate
    fair, skipped = fairness(test, y, (good >= 0.3).astype(int), cfg)
    assert not skipped and fair[0]["column"] == "age" and len(fair[0]["groups"]) >= 2
