"""Secrets never appear in logs, reports, Prefect artifacts, the repository or params.yaml.

A whole training run reads its data from a real PostgreSQL server through a URL with a
password (from the environment, as ``collect.sql.url_env`` says), with the other secrets a
deployment has set (admin token, webhook URL, storage keys). Afterwards none of them is in
the run's output, any file of the project (reports, data, DVC and git metadata, the
registry), or anything the Prefect server holds (logs, artifacts, run parameters).
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from flows.runtime.processes import tool_env
from tasks.core.data.simulator import simulate

pytestmark = pytest.mark.slow

PASSWORD = "pw-Zq8v3xK7mR2"
SECRETS = {
    "CHURN_ADMIN_TOKEN": "tok-H4n9sWq2Lp7",
    "CHURN_ALERT_WEBHOOK_URL": "https://hooks.example.invalid/T000/hk-Vb6Yt3Ne8",
    "AWS_SECRET_ACCESS_KEY": "aws-Rk5Jm1Xc9Qd",
}


def load_customers(url: str) -> None:
    data = simulate(
        pd.Timestamp("2024-01-01").date(), pd.Timestamp("2024-02-29").date(), 40, seed=3
    ).data
    text = (
        data.astype(object).where(data.notna(), None).map(lambda v: None if v is None else str(v))
    )
    engine = sa.create_engine(url)
    text.to_sql("customers", engine, index=False, if_exists="replace")
    engine.dispose()


def hits(text: str) -> list[str]:
    return [name for name, value in {"password": PASSWORD, **SECRETS}.items() if value in text]


def test_a_run_from_a_password_protected_database_leaks_no_secret(
    project, prefect_api, postgres_url, tmp_path
):
    url = postgres_url.replace(
        "postgres@", f"postgres:{PASSWORD}@"
    )  # trust auth: accepted, never needed
    load_customers(url)
    root = project(
        {
            "collect": {
                "source": "sql",
                "sql": {
                    "url_env": "CHURN_SQL_URL",
                    "query": "SELECT * FROM customers "
                    "WHERE CAST(snapshot_date AS date) BETWEEN :start AND :end",
                },
            },
            "clean": {"suite": "expectations/simulator.raw.json"},
        }
    )
    env = tool_env({"PREFECT_API_URL": prefect_api.api_url, "CHURN_SQL_URL": url, **SECRETS})
    run = subprocess.run(
        [sys.executable, "-m", "flows.training"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    provenance = [
        json.loads(p.read_text()) for p in (root / "data" / "01_raw").glob("*/provenance.json")
    ]
    assert [p["source"]["kind"] for p in provenance] == ["sql"], "the data came from PostgreSQL"
    assert hits(output) == []

    leaked = {}
    for path in root.rglob("*"):
        if path.is_file() and ".dvc/cache" not in path.as_posix():
            found = hits(path.read_bytes().decode("utf-8", "replace"))
            if found:
                leaked[str(path.relative_to(root))] = found
    for path in (root / ".dvc" / "cache").rglob("*") if (root / ".dvc" / "cache").exists() else []:
        if (
            path.is_file()
            and path.stat().st_size < 50_000_000
            and hits(path.read_bytes().decode("utf-8", "replace"))
        ):
            leaked[str(path.relative_to(root))] = hits(path.read_bytes().decode("utf-8", "replace"))
    git_objects = subprocess.run(
        ["git", "log", "--all", "-p", "--format=%H %s"], cwd=root, capture_output=True, text=True
    ).stdout
    assert leaked == {} and hits(git_objects) == [], leaked

    with httpx.Client(base_url=prefect_api.api_url, timeout=30) as api:
        logs = api.post("/logs/filter", json={"limit": 200, "offset": 0}).json()
        more = [logs]
        while len(more[-1]) == 200:
            more.append(
                api.post("/logs/filter", json={"limit": 200, "offset": 200 * len(more)}).json()
            )
        artifacts = api.post("/artifacts/filter", json={"limit": 200}).json()
        runs = api.post("/flow_runs/filter", json={"limit": 200}).json()
    everything = str(more) + str(artifacts) + str(runs)
    assert sum(len(page) for page in more) > 20 and artifacts, (
        "the server holds the run's logs and artifacts"
    )
    assert hits(everything) == []


def test_a_failed_connection_shows_no_password(monkeypatch, postgres_url):
    from tasks.core.config import parse_params
    from tasks.core.data.sources import read_sql
    from tasks.core.errors import StepError
    from tests.conftest import deep_merge, default_params_dict

    bad = postgres_url.replace("postgres@", f"nobody:{PASSWORD}@").rsplit("/", 1)[0] + "/no_such_db"
    monkeypatch.setenv("CHURN_SQL_URL", bad)
    params = parse_params(
        deep_merge(
            default_params_dict(),
            {
                "collect": {
                    "source": "sql",
                    "sql": {"query": "SELECT 1 AS x"},
                    "window": {"start": "2024-01-01", "end": "2024-01-31"},
                }
            },
        )
    )
    with pytest.raises(StepError) as caught:
        read_sql(params.collect)
    assert PASSWORD not in str(caught.value) and "query failed" in str(caught.value)
