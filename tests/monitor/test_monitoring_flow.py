"""The monitoring flow on a served model: reports, Evidently workspace, alerts, cooldown,
rollback."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from devtools.project import register_copy
from flows.monitoring import ESTIMATE_PANEL, monitoring
from scoring.store import PredictionStore, store_url
from service.app import create_app
from tasks.core.config import load_params
from tasks.core.data.labels import binarize_target
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry, registry_dir
from tests.conftest import without_served_state

pytestmark = pytest.mark.slow


@pytest.fixture
def harness(prefect_api):
    """The session's Prefect server, checked to be still up after the test."""
    yield prefect_api
    prefect_api.check_alive()


@pytest.fixture
def monitored(trained_project, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state(".git"))
    return root


def raw_rows(root):
    """Raw rows as the source delivers them, with their label as 0/1 in ``label``."""
    raw = current_snapshot(root / PATHS.raw_dir).read().drop_duplicates("customer_id")
    problem = load_params(root / "params.yaml").problem
    raw["label"] = binarize_target(raw[problem.target], problem.positive_label)
    return raw[raw["label"].notna()].reset_index(drop=True)


def serve(root, raw, change=None, label=True, clock=None):
    """Send ``raw`` through the API (optionally changed, optionally stamped by ``clock``),
    then its true labels as feedback."""
    records = json.loads(
        raw.drop(columns=["churned_30d", "cancellation_reason", "label"]).to_json(orient="records")
    )
    for r in records:
        r.update(change or {})
    extra = {} if clock is None else {"clock": clock}
    app = create_app(root / "registry", poll_s=0.1, feedback_tokens={"t": "tests"}, **extra)
    with TestClient(app) as client:
        for start in range(0, len(records), 200):
            body = client.post("/predict", json={"records": records[start : start + 200]}).json()
            if label:
                truth = raw["label"].iloc[start : start + 200].astype(int).tolist()
                feedback = [
                    {"request_id": body["request_id"], "row": i, "label": y}
                    for i, y in enumerate(truth)
                ]
                reply = client.post(
                    "/feedback", json={"labels": feedback}, headers={"Authorization": "Bearer t"}
                )
                assert reply.status_code == 200


def later(hours=1):
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)).isoformat()


def test_an_undrifted_window_is_ok_with_reports_and_a_dashboard_run(monitored, harness):
    raw = raw_rows(monitored)
    serve(monitored, raw.head(900))
    summary = monitoring(project_dir=str(monitored), now=later())
    assert summary["window"]["rows"] == 900 and not summary["alert"], summary["reasons"]
    assert summary["verdict"].startswith("ok"), summary["verdict"]
    assert summary["drift"]["drifted_columns"] == [] and summary["input_quality"]["failed"] == []
    service = summary["service"]
    # 5 batches and 5 label posts: too few requests to judge latency (min_window_requests)
    assert service["requests"] == 10 and service["alerts"] == [], service
    perf = summary["live_performance"]
    assert perf["labelled_rows"] == 900 and perf["evaluated"] and perf["roc_auc"] > 0.7
    # the estimate from the scores alone, and for the same labelled rows beside their truth
    estimated = summary["estimated_performance"]
    assert estimated["evaluated"] and estimated["rows"] == 900 and estimated["reasons"] == []
    low, high = estimated["roc_auc_band"]
    assert low < estimated["roc_auc"] < high and high - low < 0.15, estimated
    then = estimated["labelled"]
    assert then["rows"] == 900 and then["realised_roc_auc"] == round(perf["roc_auc"], 4)
    assert then["absolute_error"] < 0.05, then
    html = monitored / summary["report_html"]
    assert html.exists() and "monthly_charges" in html.read_text()
    assert (html.with_suffix(".json")).exists()
    from evidently.ui.workspace import Workspace

    ws = Workspace(str(monitored / "monitoring" / "evidently"))
    project = ws.search_project("churn monitoring")[0]
    assert len(ws.list_runs(project.id)) == 3, "the drift, live-performance and estimate runs"


def test_a_drifted_window_alerts_once_and_the_cooldown_holds_the_next(monitored, harness):
    from prefect.events.clients import get_events_subscriber  # noqa: F401 - the harness server records events

    raw = raw_rows(monitored).head(900).copy()
    raw["monthly_charges"] = raw["monthly_charges"] * 2.5
    serve(monitored, raw, change={"plan": "premium", "contract": "two-year"}, label=False)
    first = monitoring(project_dir=str(monitored), now=later())
    # labels of this window arrive 30 days later: the alert goes out, the retraining waits for them
    assert first["alert"] and first["verdict"] == "ALERT: retraining waits for labels", first[
        "verdict"
    ]
    assert "waits for labels" in first["retraining"]["note"] and not first["retraining"]["request"]
    assert {"monthly_charges", "plan", "contract"} <= set(first["drift"]["drifted_columns"])
    assert first["drift"]["drift_share"] == round(len(first["drift"]["drifted_columns"]) / 21, 4)
    assert any(r.startswith("prediction drift") for r in first["reasons"]), first["reasons"]
    assert "not judged" in first["live_performance"]["note"]
    state = json.loads((monitored / "monitoring" / "alert_state.json").read_text())
    assert state["reasons"] == first["reasons"] and state["episode"]["model_version"] == "v0001"
    second = monitoring(project_dir=str(monitored), now=later(2))
    assert not second["alert"] and second["verdict"].startswith("alert suppressed: cooldown")


def test_input_quality_failures_are_named(monitored, harness):
    raw = raw_rows(monitored).head(600).copy()
    raw["region"] = "atlantis"
    serve(monitored, raw, label=False)
    summary = monitoring(project_dir=str(monitored), now=later())
    assert any("region" in f and "in_set" in f for f in summary["input_quality"]["failed"]), (
        summary["input_quality"]
    )
    assert summary["input_quality"]["new_values"] == {"region": ["atlantis"]}
    assert "python -m tasks.suites accept" in summary["input_quality"]["hint"]


def test_labels_showing_the_new_champion_behind_the_previous_roll_it_back(monitored, harness):
    registry = Registry(monitored / "registry")
    v2 = register_copy(registry, "v0001")
    registry.promote(v2.version, "test: a challenger")
    # the champion's logged scores are noise; the previous champion, in shadow, ranks well
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    store = PredictionStore(
        store_url(registry_dir(monitored, load_params(monitored / "params.yaml")))
    )
    features = [{"tenure_months": 10.0}] * n
    store.log(
        "req-shadow",
        v2.version,
        [str(i) for i in range(n)],
        features,
        rng.random(n).tolist(),
        [0] * n,
        shadow_version="v0001",
        shadow_scores=np.clip(y * 0.5 + rng.random(n) * 0.5, 0, 1).tolist(),
    )
    for i, label in enumerate(y):
        store.add_label("req-shadow", int(label), row=i)
    store.close()
    summary = monitoring(project_dir=str(monitored), now=later())
    shadow = summary["shadow"]
    assert shadow["labelled_rows"] == n and shadow["rollback"], shadow
    assert summary["rolled_back_to"] == "v0001" and registry.champion().version == "v0001"
    assert "monitoring: live ROC-AUC" in registry.history()[-1]["reason"]


def test_after_a_promotion_the_api_scores_each_request_with_the_previous_champion_in_shadow(
    monitored,
):
    registry = Registry(monitored / "registry")
    v2 = register_copy(registry, "v0001")
    registry.promote(v2.version, "test: a challenger")
    serve(monitored, raw_rows(monitored).head(50), label=False)
    store = PredictionStore(
        store_url(registry_dir(monitored, load_params(monitored / "params.yaml")))
    )
    rows = store.window(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    store.close()
    assert len(rows) == 50 and {r["model_version"] for r in rows} == {"v0002"}
    assert {r["shadow_version"] for r in rows} == {"v0001"}
    np.testing.assert_allclose(
        [r["shadow_score"] for r in rows], [r["score"] for r in rows], atol=1e-9
    )


def test_live_performance_uses_the_labels_that_arrived_in_the_window_for_older_predictions(
    monitored, harness
):

    raw = raw_rows(monitored).head(600)
    month_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31)
    serve(monitored, raw, label=False, clock=lambda: month_ago)  # made a month ago ...
    store = PredictionStore(
        store_url(registry_dir(monitored, load_params(monitored / "params.yaml")))
    )
    rows = store.window(month_ago - dt.timedelta(hours=1))
    truth = dict(zip(raw["customer_id"].astype(str), raw["label"].astype(int)))
    for r in rows:  # ... and their ground truth arrives now
        store.add_label(r["request_id"], truth[r["record_id"]], row=r["row"])
    store.close()
    summary = monitoring(project_dir=str(monitored), now=later(), window_hours=2)
    assert summary["window"]["rows"] == 0 and summary["drift"] is None, (
        "no new predictions in the window"
    )
    perf = summary["live_performance"]
    assert perf["labelled_rows"] == 600 and perf["evaluated"] and perf["roc_auc"] > 0.7, perf
    assert summary["verdict"].startswith("ok so far: window too small to judge drift"), summary[
        "verdict"
    ]


def test_slow_requests_and_client_errors_raise_a_service_alert_not_a_retraining(monitored, harness):
    import yaml

    params = yaml.safe_load((monitored / "params.yaml").read_text())
    params["monitor"]["max_p99_latency_ms"] = 20
    (monitored / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = raw_rows(monitored).head(300)
    records = json.loads(
        raw.drop(columns=["churned_30d", "cancellation_reason", "label"]).to_json(orient="records")
    )
    app = create_app(monitored / "registry", poll_s=0.1)
    with TestClient(app) as client:
        for record in records[:200]:  # fast: the compiled path, well under a millisecond
            assert client.post("/predict", json=record).status_code == 200
        for record in records[200:230]:  # a client sending what the model cannot read
            reply = client.post("/predict", json={**record, "tenure_months": "twelve"})
            assert reply.status_code == 422
        for record in records[230:235]:  # slow: explanations take the pandas path
            reply = client.post("/predict?explain=true", json=record)
            assert reply.status_code == 200
        # a batch is slower by nature: counted, but not in the single-record latency
        assert client.post("/predict", json={"records": records}).status_code == 200
    summary = monitoring(project_dir=str(monitored), now=later())
    service = summary["service"]
    assert service["requests"] == 236 and service["by_status"] == {"200": 206, "422": 30}
    assert service["timed_requests"] == 235
    # the typical request is under the bound, the slowest 1% (explanations) over it; how far
    # under depends on the machine's load, so only the side of the bound is checked
    assert service["p50_ms"] < 20 < service["p99_ms"], service
    alerts = service["alerts"]
    assert len(alerts) == 2, alerts
    assert alerts[0].startswith("latency: p99") and alerts[1].startswith("client errors: 12.7%")
    assert summary["retraining"] is None or not summary["retraining"]["request"]


def test_the_dashboard_draws_one_line_per_panel_with_a_point_per_run(monitored, harness, tmp_path):
    from devtools.services import chromium_or_skip
    from tests.monitor.dashboard import drawn_in_chromium, panel_series

    raw = raw_rows(monitored)
    for k, rows in enumerate((900, 600, 1200)):  # windows of 900, 1500, 2700 rows: a run's noise
        start = sum((900, 600, 1200)[:k])  # floor differs, the report's configuration must not
        serve(monitored, raw.iloc[start : start + rows])
        summary = monitoring(project_dir=str(monitored), now=later(0.01), window_hours=1)
        assert summary["drift"] is not None and summary["live_performance"]["evaluated"]
    drawn = panel_series(monitored / "monitoring" / "evidently")
    assert drawn == {
        "Share of drifted features": [3],
        "Drifted features": [3],
        "Live ROC-AUC (labelled requests)": [3],
        "Prediction mean": [3],
        ESTIMATE_PANEL: [3, 3, 3, 3],
    }, drawn
    chromium_or_skip()
    shown = drawn_in_chromium(monitored / "monitoring" / "evidently", tmp_path / "ui.log")
    # a legend entry per series, 3 points each
    expected = {title: (len(series), 3 * len(series)) for title, series in drawn.items()}
    assert shown == expected, shown
