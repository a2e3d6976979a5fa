"""``make serve``'s server and the prediction log's upkeep: no access log, load shedding,
retention."""

from __future__ import annotations

import datetime as dt
import json
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from devtools.project import REPO
from devtools.services import start_api, stop
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.runtime.processes import tool_env
from tasks.core.serving.segments import hours_between, read_hours
from tasks.core.serving.store import PredictionStore
from tests.conftest import served_copy


def records_of(trained_project, n: int) -> list[dict]:
    raw = current_snapshot(trained_project / PATHS.raw_dir).read().drop_duplicates("customer_id")
    return json.loads(
        raw.head(n).drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )


@pytest.mark.slow
def test_make_serve_logs_no_access_line_and_reports_its_workers(trained_project, tmp_path):
    root = served_copy(trained_project, tmp_path / "proj")
    log = tmp_path / "api.log"
    proc, url = start_api(root, tool_env({"PYTHONPATH": str(REPO)}), log, workers=2)
    try:
        for record in records_of(trained_project, 5):
            assert httpx.post(url + "/predict", json=record).status_code == 200
    finally:
        stop(proc)
    text = log.read_text()
    assert "2 worker(s)" in text and "Application startup complete" in text
    assert "POST /predict" not in text, "uvicorn's access log is off on the hot path"


def test_past_its_limit_a_worker_answers_503_with_retry_after(trained_project, tmp_path):
    records = records_of(trained_project, 300)
    app = create_app(trained_project / "registry", f"sqlite:///{tmp_path / 'p.db'}", max_inflight=1)
    statuses: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    with TestClient(app) as client:

        def slow() -> None:  # explanations of 300 records: off the event loop, in flight
            reply = client.post("/predict?explain=true", json={"records": records})
            with lock:
                statuses.append((reply.status_code, reply.headers.get("retry-after")))

        threads = [threading.Thread(target=slow) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert client.get("/health").status_code == 200  # only /predict is limited
    assert (200, None) in statuses and (503, "1") in statuses, statuses
    assert {s for s, _ in statuses} == {200, 503}


def test_retention_removes_old_predictions_rows_segments_and_counts(tmp_path):
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
    clock = {"t": now - dt.timedelta(days=100)}
    store = PredictionStore(
        f"sqlite:///{tmp_path / 'p.db'}", lambda: clock["t"], log_dir=tmp_path / "log"
    )
    try:
        store.log("old", "v1", ["a"], [{"x": 1.0}], [0.5], [1])
        store.count_request("predict", 200, 0.001)
        store.flush()
        clock["t"] = now
        store.log("new", "v1", ["b"], [{"x": 2.0}], [0.6], [1])
        store.flush()
        removed = store.expire(now - dt.timedelta(days=90))
        assert removed["rows"] == 1 and removed["segment_hours"] == 1, removed
        assert not store.get("old") and store.get("new")
        frame = read_hours(tmp_path / "log", hours_between(now - dt.timedelta(days=101), now))
        assert frame.empty, "the old hour's segment is gone"
        assert store.request_stats(now - dt.timedelta(days=101), now)["requests"] == 0
        window = store.window_frame(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
        assert list(window["request_id"]) == ["new"] and list(window["x"]) == [2.0]
    finally:
        store.close()
