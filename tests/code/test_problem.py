from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.project import deep_merge
from tasks.core.config import parse_params
from tasks.core.data.labels import binarize_target
from tasks.core.errors import StepError
from tasks.problem import render_brief, summarise, validate_problem
from tests.conftest import default_params_dict


def problem(**changes):
    return parse_params(deep_merge(default_params_dict(), {"problem": changes})).problem


def frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 60, n)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp((tenure - 20) / 8)), "Yes ", "no")
    return pd.DataFrame(
        {
            "customer_id": np.arange(n).astype(str),
            "snapshot_date": "2024-01-01",
            "tenure_months": tenure.astype(str),
            "churned_30d": churn,
        }
    )


def test_labels_normalise_case_space_and_numbers():
    y = binarize_target(pd.Series(["Yes", " yes", "NO", None, "", "1"]), "yes")
    assert y.tolist()[:3] == [1.0, 1.0, 0.0] and np.isnan(y[3]) and np.isnan(y[4])
    assert binarize_target(pd.Series([1, 0, 1.0]), 1).tolist() == [1.0, 0.0, 1.0]
    assert binarize_target(pd.Series([True, False]), True).tolist() == [1.0, 0.0]


def test_valid_problem_gives_target_and_baselines_in_the_brief():
    data = frame()
    cfg = problem()
    y = validate_problem(data, cfg)
    summary = summarise(data, y, cfg, "snap-1")
    assert summary["labelled_rows"] == 200 and 0 < summary["positive_rate"] < 1
    rule = summary["baselines"]["rule:tenure_months"]
    assert rule["roc_auc"] > 0.6, "short tenure predicts churn in this frame"
    assert summary["baselines"]["majority_class"]["roc_auc"] == 0.5
    brief = render_brief(cfg, summary)
    assert (
        "Primary metric: **roc_auc**" in brief
        and "rule:tenure_months" in brief
        and "snap-1" in brief
    )


@pytest.mark.parametrize(
    ("changes", "data_change", "message"),
    [
        ({"target": "churn"}, None, "problem.target 'churn' is not a column"),
        ({"id_column": "cust"}, None, "problem.id_column 'cust' is not a column"),
        ({"time_column": "when"}, None, "problem.time_column 'when'"),
        ({"positive_label": "churned"}, None, "never occurs"),
        ({}, lambda d: d.assign(churned_30d="no"), "one class only"),
        ({"baseline": {"rule": {"column": "nope"}}}, None, "problem.baseline.rule.column 'nope'"),
    ],
)
def test_bad_definitions_fail_naming_the_key(changes, data_change, message):
    data = frame()
    if data_change:
        data = data_change(data)
    with pytest.raises(StepError, match=message):
        validate_problem(data, problem(**changes))
