"""The prediction store and the API on a real PostgreSQL server, started here on 127.0.0.1."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from scoring.store import LABEL_EVENTS, PREDICTIONS, WIDENED_COLUMNS, PredictionStore
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


def test_an_older_store_with_integer_labels_is_widened_to_hold_a_regressions_labels(
    postgres_url,
):
    """Stores made before regression held 0/1 labels in INTEGER columns; opening one widens
    them (PostgreSQL refuses 12.5 in an INTEGER column), keeping the labels it holds."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE older_store")
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/older_store"
    older = sa.MetaData()
    for table in (PREDICTIONS, LABEL_EVENTS):
        copy = table.to_metadata(older)
        for name in WIDENED_COLUMNS[table.name]:
            copy.c[name].type = sa.Integer()
    engine = sa.create_engine(url)
    older.create_all(engine)
    store = PredictionStore(url)
    try:
        store.log("old", "v0001", ["a"], [{"x": 1.0}], [0.4], [0])
        assert store.add_label("old", 1).updated == 1
        store.log("new", "v0002", ["b"], [{"x": 2.0}], [11.0], [0])
        assert store.add_label("new", 12.5).updated == 1
        assert store.add_label("new", 13.25, by="fixer", overwrite=True).updated == 1
        assert [r["label"] for r in store.get("old") + store.get("new")] == [1, 13.25]
    finally:
        store.close()
    columns = sa.inspect(engine).get_columns
    for table, names in WIDENED_COLUMNS.items():
        kinds = {c["name"]: c["type"] for c in columns(table) if c["name"] in names}
        assert all(isinstance(k, sa.Float) for k in kinds.values()), kinds
    with engine.connect() as conn:
        events = conn.execute(sa.text("select old_label, new_label from label_events")).all()
    assert sorted(map(tuple, events), key=str) == sorted(
        [(None, 1.0), (None, 12.5), (12.5, 13.25)], key=str
    )
    engine.dispose()


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
