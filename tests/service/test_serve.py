"""``make serve``'s server and the prediction log's upkeep: no access log, load shedding,
retention."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from devtools.project import REPO
from devtools.services import start_api, stop
from flows.runtime.processes import tool_env
from scoring.segments import hours_between, read_hours
from scoring.store import PredictionStore
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
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


def test_a_prediction_log_that_falls_behind_sheds_load_and_loses_nothing(trained_project, tmp_path):
    """Another process holds the SQLite store's write lock: the writer cannot write, and
    once the oldest unwritten prediction has waited past the bound, /predict answers 503
    (so a kill would not lose more); when the lock goes, everything answered is written."""
    records = records_of(trained_project, 20)
    db = tmp_path / "p.db"
    app = create_app(trained_project / "registry", f"sqlite:///{db}", max_log_lag_s=0.5)
    answered: list[str] = []
    with TestClient(app) as client:
        answered.append(client.post("/predict", json=records[0]).json()["request_id"])
        holder = sqlite3.connect(db, isolation_level=None)
        # the first prediction must be written before the lock, or its age counts toward
        # the bound before `started` and the 503 can come a little under 0.5 s after it
        waited = time.monotonic()
        while not holder.execute(
            "SELECT 1 FROM predictions WHERE request_id = ?", (answered[0],)
        ).fetchone():
            assert time.monotonic() - waited < 10, "the first prediction was never written"
            time.sleep(0.01)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            while time.monotonic() - started < 10:
                reply = client.post("/predict", json=records[len(answered) % len(records)])
                if reply.status_code != 200:
                    break
                answered.append(reply.json()["request_id"])
            assert reply.status_code == 503, reply.text
            assert "prediction log" in reply.json()["detail"], reply.json()
            assert reply.headers["retry-after"] == "1"
            assert time.monotonic() - started >= 0.5, "refused only once past the bound"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        while (reply := client.post("/predict", json=records[1])).status_code == 503:
            assert time.monotonic() - started < 30, "the log never caught up"
            time.sleep(0.05)
        answered.append(reply.json()["request_id"])
    store = PredictionStore(f"sqlite:///{db}")
    try:
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        assert set(answered) <= {r["request_id"] for r in store.window(since)}
    finally:
        store.close()
    assert len(answered) > 3, answered


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
