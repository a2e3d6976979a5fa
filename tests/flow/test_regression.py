"""Regression on two real public tables through every step, as a user runs them (``make
run``), with only ``collect`` and ``problem`` edited (and ``make plots``; issue 42).

ggplot2's ``diamonds`` (price, 53,940 rows, no id, no time) and modeldata's ``deliveries``
(time_to_delivery, 10,012 rows); their steps run in this process.
Each run's test RMSE must be within 10% of a hand-made XGBoost's on the same split, its
champion answers ``/predict`` with a number, and ``dvc plots show`` draws the
regression plots.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from devtools.project import run_in_process
from flows.runtime.processes import tool_env
from flows.runtime.rerun import print_model_summary
from service.app import create_app
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import make_project
from tests.data.real import REGRESSION_REAL, overrides, plain_rmse, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(REGRESSION_REAL))
def regression_run(request, tmp_path_factory):
    name = request.param
    params = {
        **overrides(name),
        # small budgets: the linear model and XGBoost (the random forest is the simulator
        # spend test's champion) cross-validated on 10,000 rows in 3 folds, 3 tuning trials,
        # importance on 2,000 test rows
        "choose": {
            **overrides(name)["choose"],
            "candidates": ["ridge", "xgboost"],
            "sample_rows": 10_000,
            "cv_folds": 3,
        },
        "train": {"n_trials": 3},
        "feasibility": {"sample_rows": 3000, "n_permutations": 19},
        "evaluate": {**overrides(name)["evaluate"], "importance_rows": 2000},
    }
    root = make_project(tmp_path_factory.mktemp(f"reg-{name}") / "proj", params, small=False)
    write_csv(name, root / "data" / "external")
    # every step's code in this process (devtools.project.run_in_process), without the flow's
    # own ~50 s of DVC and Prefect work: the flow is the same for every problem type, and the
    # binary tables and the training-flow test run it
    run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
    decision = run_in_process(root, run)
    assert decision is not None, "a step failed (its message is on stderr)"
    return name, root, decision


def test_a_real_regression_table_runs_end_to_end_and_matches_a_hand_made_xgboost(
    regression_run, capsys
):
    name, root, decision = regression_run
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    assert {"rmse", "mae", "r2"} <= set(metrics["test"])
    assert {"mean", "median"} <= set(metrics["baseline"])
    target = REGRESSION_REAL[name]["params"]["problem"]["target"]
    plain = plain_rmse(root, target, set())
    print(f"{name}: workflow test RMSE {metrics['test']['rmse']:.4f}, hand-made {plain:.4f}")
    assert metrics["test"]["rmse"] <= 1.10 * plain, (metrics["test"], plain)
    assert metrics["blessed"], json.loads((root / PATHS.evaluation_json).read_text())[
        "gate_reasons"
    ]
    assert Registry(root / "registry").champion() is not None and decision.promoted
    print_model_summary(root)  # what `make run` prints last: the type's metrics
    assert "test RMSE" in capsys.readouterr().out
    plots = subprocess.run(
        ["dvc", "plots", "show", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
        check=True,
    )
    shown = json.loads(plots.stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert {PATHS.predicted_csv, PATHS.residuals_csv} <= set(shown["data"])


def test_a_regression_champion_answers_predict_with_a_number(regression_run):
    name, root, proc = regression_run
    spec = REGRESSION_REAL[name]
    raw = pd.read_csv(root / "data" / "external" / spec["file"]).sample(50, random_state=0)
    target = spec["params"]["problem"]["target"]
    records = json.loads(raw.drop(columns=[target]).to_json(orient="records"))
    app = create_app(root / "registry", f"sqlite:///{root / 'predictions.db'}", admin_token="")
    with TestClient(app) as client:
        answer = client.post("/predict", json={"records": records})
        one = client.post("/predict", json={"records": records[:1]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "threshold" not in body and set(body["predictions"][0]) == {"id", "prediction"}
    predicted = np.array([p["prediction"] for p in body["predictions"]])
    assert np.std(predicted) > 0  # the records are scored, not defaulted
    # a single record (the compiled path) and the batch agree
    assert one.json()["predictions"][0]["prediction"] == pytest.approx(predicted[0], rel=1e-6)
    error = np.sqrt(np.mean((raw[target].to_numpy(float) - predicted) ** 2))
    assert error < raw[target].std(), (error, raw[target].std())


def test_a_model_of_another_problem_never_replaces_the_champion(trained_project, tmp_path):
    """The simulator's churn champion (the session's trained project), then a run on its
    spend target in the same registry: the spend model is registered, not compared with a
    classifier, and not promoted."""
    import shutil

    import yaml

    from devtools.project import SMALL, SPEND, TYPE_BOUND, deep_merge
    from tests.conftest import without_served_state

    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state())
    run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
    assert Registry(root / "registry").champion().version == "v0001"
    params = deep_merge(yaml.safe_load((root / PATHS.params).read_text()), SPEND)
    for section, key in TYPE_BOUND:
        params[section][key] = SPEND[section][key]
    (root / PATHS.params).write_text(yaml.safe_dump(params, sort_keys=False))
    assert SMALL["collect"]["simulator"]["customers_per_day"] == 40
    decision = run_in_process(root, run)
    assert decision.registered == "v0002" and not decision.promoted, decision
    assert decision.champion == "v0001" and "answers another problem" in decision.reasons[0]
    assert Registry(root / "registry").champion().version == "v0001"
