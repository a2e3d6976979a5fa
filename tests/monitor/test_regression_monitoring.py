"""The monitoring flow on a served regression model: numeric labels through ``/feedback``, live
MAE and RMSE, the error estimated before the labels (DLE) beside the realised one, and the
dashboard's regression panels."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flows.monitoring import REGRESSION_ESTIMATE_PANEL, monitoring
from service.app import create_app
from tasks.core.data.simulator import SPEND, simulate
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tests.conftest import without_served_state

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer t"}


def test_numeric_labels_give_live_errors_and_the_estimate_before_them(
    spend_project, prefect_api, tmp_path
):
    root = tmp_path / "proj"
    shutil.copytree(spend_project, root, ignore=without_served_state(".git"))
    # live customers the model never saw: the days after its data (its training rows would
    # show a smaller error than the reference's, which the estimate learns from)
    last = pd.to_datetime(current_snapshot(root / PATHS.raw_dir).read()["snapshot_date"]).max()
    start = last.date() + dt.timedelta(days=1)
    raw = simulate(start, start + dt.timedelta(days=3), 300, seed=11, target=SPEND).data
    raw = raw[pd.to_numeric(raw[SPEND], errors="coerce").notna()].reset_index(drop=True)
    truth = pd.to_numeric(raw[SPEND]).astype(float).tolist()
    records = json.loads(raw.drop(columns=[SPEND]).to_json(orient="records"))
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
        for start in range(0, len(records), 200):
            body = client.post("/predict", json={"records": records[start : start + 200]}).json()
            labels = [
                {"request_id": body["request_id"], "row": i, "label": y}
                for i, y in enumerate(truth[start : start + 200])
            ]
            reply = client.post("/feedback", json={"labels": labels}, headers=AUTH)
            assert reply.status_code == 200 and reply.json()["labelled_rows"] == len(labels)
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
