"""The simulator's regression problem (``collect.simulator.target: spend_next_30d``, issue 42),
trained once on the small profile and read by every test here: its oracle and batch scoring,
the regressors' compiled serving path, and monitoring with numeric labels (live MAE and
RMSE, the error estimated before the labels beside the realised one, the dashboard's
regression panels)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from devtools.project import SPEND as SPEND_PROBLEM
from devtools.project import run_in_process
from flows.monitoring import REGRESSION_ESTIMATE_PANEL, monitoring
from scoring.compiled import CompiledModel
from scoring.scoring import LoadedModel
from service.app import create_app
from tasks.core.config import load_params
from tasks.core.data.simulator import SPEND, simulate
from tasks.core.data.snapshots import current_snapshot
from tasks.core.ml.models import build_pipeline, model_inputs
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import fit_in_memory, make_project, without_served_state
from tests.service.live import AUTH, live_customers, predict_then_label
from tests.service.parity import assert_same_answers, json_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spend_project(tmp_path_factory) -> Path:
    """The spend problem (``devtools.project.SPEND``) run through every step once, its model
    champion v0001."""
    root = make_project(tmp_path_factory.mktemp("spend") / "proj", SPEND_PROBLEM)
    run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
    decision = run_in_process(root, run)
    assert decision is not None and decision.promoted, decision
    return root


@pytest.fixture(scope="module")
def simulated() -> list[dict]:
    """5,000 raw records as the source writes them, a new payment method among them."""
    data = simulate(
        dt.date(2024, 4, 1),
        dt.date(2024, 4, 2),
        2500,
        seed=11,
        drift_kind="new_category",
        drift_start=dt.date(2024, 4, 1),
    ).data
    return json_records(data.drop(columns=["churned_30d", "cancellation_reason"]))


@pytest.fixture(scope="module")
def spend_champion(spend_project) -> tuple[LoadedModel, object]:
    """The spend problem's champion, loaded as the API loads it."""
    registry = Registry(spend_project / "registry")
    return LoadedModel.load(registry, registry.champion()), spend_project


@pytest.mark.parametrize(
    ("kind", "params", "compiled_kind"),
    [
        ("ridge", {"alpha": 1.0}, "Ridge"),
        ("xgboost", {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1}, "XGBRegressor"),
    ],
)
def test_the_regressors_compiled_paths_give_the_same_answers(
    spend_champion, simulated, kind, params, compiled_kind
):
    from tasks.core.ml.objective import objective_for

    champion, root = spend_champion
    problem = load_params(root / PATHS.params).problem
    X_train, y_train, _, _ = model_inputs(pd.read_parquet(root / PATHS.train), problem)
    X_valid, y_valid, _, _ = model_inputs(pd.read_parquet(root / PATHS.valid), problem)
    card = champion.version.card
    pipeline = build_pipeline(
        kind,
        card["numeric_features"],
        card["categorical_features"],
        params,
        0,
        50,
        objective_for(problem),
    )
    fit_in_memory(pipeline, X_train, y_train, X_valid, y_valid, early_stopping_rounds=20)
    model = dataclasses.replace(champion, model=pipeline)
    object.__setattr__(model, "compiled", CompiledModel(model))
    assert model.compiled.kind == compiled_kind
    counts = assert_same_answers(model, simulated, singles_every=10)
    assert counts["scored"] == len(simulated)


def test_the_simulators_spend_target_runs_as_a_regression_with_a_known_oracle(
    spend_champion, tmp_path
):
    """The simulator's regression problem (``collect.simulator.target: spend_next_30d``):
    the same customers, the next 30 days' spend from a known model, so the oracle's RMSE is
    known; the champion writes a ``prediction`` column in batch scoring."""
    from flows.batch_scoring import score_chunk

    model, root = spend_champion
    test = json.loads((root / PATHS.metrics_json).read_text())["test"]
    # the model cannot beat the truth, and comes within a third of its error
    assert test["oracle_rmse"] <= test["rmse"] <= 1.35 * test["oracle_rmse"], test
    assert json.loads((root / PATHS.leakage_json).read_text())["passed"]
    raw = current_snapshot(root / PATHS.raw_dir).read().head(20)
    scored = score_chunk.fn(model, raw.drop(columns=["spend_next_30d"]), "batch-1", tmp_path)
    assert "prediction" in scored and "probability" not in scored and "decision" not in scored
    assert scored["prediction"].between(0, 1000).all()


def test_numeric_labels_give_live_errors_and_the_estimate_before_them(
    spend_project, prefect_api, tmp_path
):
    root = tmp_path / "proj"
    shutil.copytree(spend_project, root, ignore=without_served_state(".git"))
    # live customers the model never saw: the days after its data (its training rows would
    # show a smaller error than the reference's, which the estimate learns from)
    records, truth = live_customers(root, SPEND, lambda s: pd.to_numeric(s, errors="coerce"))
    app = create_app(root / "registry", poll_s=0.1, feedback_tokens={"t": "tests"})
    with TestClient(app) as client:
        # a yes/no label, NaN or text is refused for a regression, naming the label
        body = client.post("/predict", json={"records": records[:1]}).json()
        assert set(body["predictions"][0]) == {"id", "prediction"}, body
        for wrong in ("12", float("nan"), True):
            label = {"request_id": body["request_id"], "label": wrong}
            reply = client.post(
                "/feedback",
                content=json.dumps({"labels": [label]}),  # NaN as JavaScript writes it
                headers={**AUTH, "Content-Type": "application/json"},
            )
            assert reply.status_code == 422, (wrong, reply.text)
            assert reply.json()["detail"][0]["loc"][:4] == ["body", "labels", 0, "label"]
        predict_then_label(client, records, truth)
    now = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).isoformat()
    summary = monitoring(project_dir=str(root), now=now, window_hours=1)
    prefect_api.check_alive()

    live = summary["live_performance"]
    assert live["evaluated"] and live["rmse"] >= live["mae"] > 0, live
    found = summary["estimated_performance"]
    assert found["evaluated"] and found["method"].startswith("DLE"), found
    then = found["labelled"]
    assert then["rows"] >= 1000 and then["realised_mae"] == pytest.approx(live["mae"], rel=1e-3)
    # the estimate they had, checked now the labels are in: within 10% of the realised MAE
    assert then["absolute_error"] <= 0.1 * then["realised_mae"], then
    assert summary["reasons"] == [] and not summary["alert"], summary["reasons"]

    from tests.monitor.dashboard import panel_series

    drawn = panel_series(root / "monitoring" / "evidently")
    assert drawn == {
        "Share of drifted features": [1],
        "Drifted features": [1],
        "Live MAE and RMSE (labelled requests)": [1, 1],
        "Prediction mean": [1],
        REGRESSION_ESTIMATE_PANEL: [1, 1, 1, 1],
    }, drawn
    report = json.loads(next((root / "monitoring" / "reports").glob("*.json")).read_text())
    assert np.isfinite(report["estimated_performance"]["mae"])
