"""Regression on two real public tables through the training flow, as a user runs it
(``make run``), with only ``collect`` and ``problem`` edited (and ``make plots``; issue 42).

ggplot2's ``diamonds`` (price, 53,940 rows, no id, no time) and modeldata's ``deliveries``
(time_to_delivery, 10,012 rows). Each run's test RMSE must be within 10% of a hand-made
XGBoost's on the same split, its champion answers ``/predict`` with a number, and ``dvc plots
show`` draws the regression plots.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flows.runtime.processes import tool_env
from service.app import create_app
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import make_project
from tests.data.real import REGRESSION_REAL, overrides, plain_rmse, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(REGRESSION_REAL))
def regression_run(request, prefect_api, tmp_path_factory):
    name = request.param
    params = {
        **overrides(name),
        # small budgets: cross-validation on 10,000 rows in 3 folds, 3 tuning trials
        "choose": {**overrides(name)["choose"], "sample_rows": 10_000, "cv_folds": 3},
        "train": {"n_trials": 3},
        "feasibility": {"sample_rows": 3000, "n_permutations": 19},
    }
    root = make_project(tmp_path_factory.mktemp(f"reg-{name}") / "proj", params, small=False)
    write_csv(name, root / "data" / "external")
    env = tool_env({"PREFECT_API_URL": prefect_api.api_url})
    env.pop("CHURN_ADMIN_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.training"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    return name, root, proc


def test_a_real_regression_table_runs_end_to_end_and_matches_a_hand_made_xgboost(
    regression_run,
):
    name, root, proc = regression_run
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    assert {"rmse", "mae", "r2"} <= set(metrics["test"])
    assert {"mean", "median"} <= set(metrics["baseline"])
    target = REGRESSION_REAL[name]["params"]["problem"]["target"]
    plain = plain_rmse(root, target, set())
    print(f"{name}: workflow test RMSE {metrics['test']['rmse']:.4f}, hand-made {plain:.4f}")
    print((root / PATHS.selection_md).read_text())
    assert metrics["test"]["rmse"] <= 1.10 * plain, (metrics["test"], plain)
    assert metrics["blessed"], json.loads((root / PATHS.evaluation_json).read_text())[
        "gate_reasons"
    ]
    assert Registry(root / "registry").champion() is not None and "promoted to champion" in out
    assert "test RMSE" in out  # the summary names the type's metrics
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


def test_the_simulators_spend_target_runs_as_a_regression_with_a_known_oracle(tmp_path):
    """The simulator's regression problem (``collect.simulator.target: spend_next_30d``):
    the same customers, the next 30 days' spend from a known model, so the oracle's RMSE is
    known; the champion writes a ``prediction`` column in batch scoring."""
    from devtools.project import SMALL, SPEND, run_in_process
    from flows.batch_scoring import score_chunk
    from scoring.scoring import LoadedModel
    from tasks.core.data.snapshots import current_snapshot

    root = make_project(tmp_path / "spend", SPEND)  # the small profile
    assert SMALL["collect"]["simulator"]["customers_per_day"] == 40
    run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
    decision = run_in_process(root, run)
    assert decision is not None and decision.promoted, decision
    test = json.loads((root / PATHS.metrics_json).read_text())["test"]
    # the model cannot beat the truth, and comes within a third of its error
    assert test["oracle_rmse"] <= test["rmse"] <= 1.35 * test["oracle_rmse"], test
    assert json.loads((root / PATHS.leakage_json).read_text())["passed"]
    registry = Registry(root / "registry")
    model = LoadedModel.load(registry, registry.champion())
    raw = current_snapshot(root / PATHS.raw_dir).read().head(20)
    scored = score_chunk.fn(model, raw.drop(columns=["spend_next_30d"]), "batch-1", tmp_path)
    assert "prediction" in scored and "probability" not in scored and "decision" not in scored
    assert scored["prediction"].between(0, 1000).all()
