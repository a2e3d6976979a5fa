"""The prediction store and the API on a real PostgreSQL server, started here on 127.0.0.1."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scoring.store import PredictionStore
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS

pytestmark = pytest.mark.slow


def test_store_writes_labels_and_reads_back_with_parameterised_queries(postgres_url):
    store = PredictionStore(postgres_url)
    try:
        store.log("req-1", "v0001", ["a", "b"], [{"x": 1.0}, {"x": 2.0}], [0.1, 0.9], [0, 1])
        hostile = "x'); DROP TABLE predictions; --"
        store.log(hostile, "v0001", [hostile], [{"x": hostile}], [0.5], [1])
        assert store.add_label("req-1", 1, row=1).updated == 1
        rows = store.get("req-1")
        assert [(r["record_id"], r["label"]) for r in rows] == [("a", None), ("b", 1)]
        assert store.get(hostile)[0]["record_id"] == hostile, "stored as data, not run as SQL"
        with sa.create_engine(postgres_url).connect() as conn:
            count = sa.text("select count(*) from predictions where request_id in (:a, :b)")
            assert conn.execute(count, {"a": "req-1", "b": hostile}).scalar() == 3
    finally:
        store.close()


def test_the_api_logs_to_postgres_when_database_url_says_so(postgres_url, trained_project):
    raw = (
        current_snapshot(trained_project / PATHS.raw_dir)
        .read()
        .drop_duplicates("customer_id")
        .head(3)
    )
    records = json.loads(raw.drop(columns=["churned_30d"]).to_json(orient="records"))
    app = create_app(
        trained_project / "registry", database_url=postgres_url, feedback_tokens={"t": "tests"}
    )
    with TestClient(app) as client:
        request_id = client.post("/predict", json={"records": records}).json()["request_id"]
        assert (
            client.post(
                "/feedback",
                json={"labels": [{"request_id": request_id, "label": 0}]},
                headers={"Authorization": "Bearer t"},
            ).json()["labelled_rows"]
            == 3
        )
        assert client.get(f"/lineage/{request_id}").json()["model"]["version"] == "v0001"
    with sa.create_engine(postgres_url).connect() as conn:
        stored = pd.read_sql(
            sa.text("select * from predictions where request_id = :r"),
            conn,
            params={"r": request_id},
        )
    assert (
        len(stored) == 3
        and set(stored["label"]) == {0}
        and set(stored["model_version"]) == {"v0001"}
    )
