"""The API started while its database is down waits for it and answers 503 (issue 40).

Before: ``make serve`` exited 1.5 s after start ("Application startup failed") when
PostgreSQL was unreachable. Now it starts, answers ``/predict`` and ``/feedback`` with 503
while the prediction store cannot be opened, and accepts predictions once the database
answers. The outage: a PostgreSQL database that does not exist yet (the server answers,
the connection is refused), created while the API runs.
"""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.app import create_app
from tasks.core.paths import PATHS
from tests.conftest import without_served_state


def test_the_api_waits_for_a_database_down_at_start(postgres_url, trained_project, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(trained_project / "registry", registry, ignore=without_served_state())
    test = pd.read_parquet(trained_project / PATHS.test).head(1)
    record = json.loads(
        test.drop(columns=["churned_30d"]).to_json(orient="records", date_format="iso")
    )[0]
    later = postgres_url.rsplit("/", 1)[0] + "/churn_later"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS churn_later")
    try:
        with TestClient(create_app(registry, database_url=later, poll_s=0.1)) as client:
            assert client.get("/health").json()["status"] == "ok"  # the model serves
            down = client.post("/predict", json=record)
            assert down.status_code == 503 and "cannot write" in down.json()["detail"]
            with admin.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE churn_later")
            deadline = time.monotonic() + 30
            while True:
                reply = client.post("/predict", json=record)
                if reply.status_code == 200:
                    break
                assert reply.status_code == 503 and time.monotonic() < deadline, reply.text
                time.sleep(0.5)
        store = sa.create_engine(later)
        with store.connect() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("SELECT request_id FROM predictions")]
        store.dispose()
        assert ids == [reply.json()["request_id"]]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS churn_later WITH (FORCE)")
        admin.dispose()
