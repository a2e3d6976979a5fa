"""Rows dead-lettered while the database was down come back (issue 40, case 6).

Before: answered predictions the database refused were kept in ``failed/*.jsonl`` and
nothing ever read them again: ``/lineage`` answered 404 for them and ``/feedback`` called
them unknown, so their labels could never be recorded. Now the API's writer replays them
after a write goes through again, and ``make replay`` does by hand; both are idempotent.

The outage: the predictions table taken away under the running API (the database answers,
but refuses every insert), then put back.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flows.runtime.processes import tool_env
from scoring import store as store_module
from service.app import create_app
from tasks.core.paths import PATHS, PREDICTIONS_DB
from tests.conftest import without_served_state


def stored(registry) -> set[str]:
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        return {r[0] for r in conn.execute("SELECT request_id FROM predictions")}


def outage(registry) -> None:
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        conn.execute("ALTER TABLE predictions RENAME TO predictions_away")


def back(registry) -> None:
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        conn.execute("ALTER TABLE predictions_away RENAME TO predictions")


@pytest.fixture
def project_copy(trained_project, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state())
    return root


def records(root, n):
    test = pd.read_parquet(root / PATHS.test).head(n)
    return json.loads(
        test.drop(columns=["churned_30d"]).to_json(orient="records", date_format="iso")
    )


def answered(client, rows) -> list[str]:
    """The request ids of ``rows`` predicted one by one (a 503 while the log is behind
    retried a moment later, as a client does)."""
    out = []
    for row in rows:
        for _ in range(100):
            reply = client.post("/predict", json=row)
            if reply.status_code == 200:
                out.append(reply.json()["request_id"])
                break
            assert reply.status_code == 503, reply.text
            time.sleep(0.2)
    return out


def wait_for(check, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_dead_letters_are_replayed_once_the_database_is_back(project_copy, monkeypatch):
    monkeypatch.setattr(store_module, "REPLAY_EVERY_S", 0.0)
    registry = project_copy / "registry"
    rows = records(project_copy, 12)
    token = {"Authorization": "Bearer t"}
    with TestClient(create_app(registry, poll_s=0.1, feedback_tokens={"t": "tests"})) as client:
        first = client.post("/predict", json=rows[0]).json()["request_id"]
        wait_for(lambda: first in stored(registry))
        outage(registry)
        during = answered(client, rows[1:6])
        failed = registry / "prediction_log" / "failed"
        wait_for(
            lambda: sum(len(p.read_text().splitlines()) for p in failed.glob("*.jsonl")) == 5,
            30,
        )
        back(registry)
        (after,) = answered(client, rows[6:7])
        # the write that goes through replays the dead letters
        wait_for(lambda: {after, *during} <= stored(registry))
        assert client.get(f"/lineage/{during[0]}").status_code == 200
        labelled = client.post(
            "/feedback",
            json={"labels": [{"request_id": r, "label": 1} for r in during]},
            headers=token,
        ).json()
        assert labelled["labelled_rows"] == 5 and not labelled["unknown_request_ids"]
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        count = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert count == 7, "each row once"


def test_make_replay_puts_them_back_by_hand_and_is_idempotent(project_copy):
    registry = project_copy / "registry"
    rows = records(project_copy, 4)
    with TestClient(create_app(registry, poll_s=0.1)) as client:
        outage(registry)
        during = answered(client, rows)
    back(registry)
    assert not set(during) & stored(registry)

    def replay() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "service.replay"],
            cwd=project_copy,
            capture_output=True,
            text=True,
            env=tool_env(),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "replayed 4 prediction rows" in replay()
    assert set(during) <= stored(registry)
    assert "replayed 0 prediction rows" in replay() or "from 0 dead-letter" in replay()
    engine = sa.create_engine(f"sqlite:///{registry / PREDICTIONS_DB}")
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar()
    engine.dispose()
    assert n == 4
