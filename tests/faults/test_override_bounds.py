"""Retrain overrides have bounds (issue 40, case 9).

Before: the allowlist checked keys only, so ``train.n_trials=1e9``,
``evaluate.bootstrap_samples=1e12`` or a free-form ``choose.params.*`` passed and held the
single retraining slot for as long as the caller liked. Now every number a run sets must be
within ``retrain.override_limits`` of the served checkout, and ``choose.params`` is not in
the default allowlist.
"""

from __future__ import annotations

import pytest

from flows.runtime import workspace
from tasks.core.config import ParamsError


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"train.n_trials": 1e9}, "above its bound 200"),
        ({"train": {"n_trials": "1000000000"}}, "above its bound 200"),
        ({"evaluate.bootstrap_samples": 10**12}, "above its bound 5000"),
        ({"train.n_trials": float("nan")}, "above its bound"),
        ({"choose.params.xgboost.n_estimators": 10**9}, "not allowed"),
        ({"choose": {"params": {"random_forest": {"n_estimators": 10**9}}}}, "not allowed"),
    ],
)
def test_an_override_past_its_bound_or_free_form_is_refused_before_any_work(
    project, params, override, says
):
    root = project()
    params_file = root / "params.yaml"
    before = params_file.read_text()
    retrain = params.retrain
    with pytest.raises(ParamsError, match=says):
        workspace.apply_overrides(
            params_file, override, retrain.allowed_overrides, retrain.override_limits
        )
    assert params_file.read_text() == before


def test_an_allowed_key_without_a_bound_takes_no_number_and_bounded_ones_apply(project, params):
    root = project()
    params_file = root / "params.yaml"
    with pytest.raises(ParamsError, match="feasibility.min_labelled_rows has no bound"):
        workspace.apply_overrides(
            params_file, {"feasibility.min_labelled_rows": 5}, ["feasibility.*"], {}
        )
    retrain = params.retrain
    applied = workspace.apply_overrides(
        params_file,
        {"train.n_trials": 200, "collect.window.end": "2024-02-01"},
        retrain.allowed_overrides,
        retrain.override_limits,
    )
    assert applied == ["train.n_trials=200", "collect.window.end='2024-02-01'"]
