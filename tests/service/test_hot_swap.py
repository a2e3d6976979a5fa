"""Switching the champion under load drops and fails no request, on ``make serve``'s
multi-worker server (``python -m service.serve``, two worker processes, each following the
alias on its own)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from devtools.project import REPO, register_copy
from devtools.services import start_api, stop
from flows.runtime.processes import tool_env
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import Load, served_copy

pytestmark = pytest.mark.slow
CLIENTS, FLIPS = 8, 12


def test_alias_flips_under_load_on_two_workers_only_ever_return_200(trained_project, tmp_path):
    root = served_copy(trained_project, tmp_path / "proj")
    registry = Registry(root / "registry")
    v1, v2 = registry.get("v0001"), register_copy(registry, "v0001")
    raw = current_snapshot(trained_project / PATHS.raw_dir).read().drop_duplicates("customer_id")
    records = json.loads(
        raw.head(50).drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )
    env = tool_env({"PYTHONPATH": str(REPO)})  # the code of this checkout serves the copy
    proc, url = start_api(root, env, tmp_path / "api.log", workers=2, quiet=True)
    load = Load(url, records, CLIENTS, batch_every=10, batch_size=20)
    try:
        for flip in range(FLIPS):
            time.sleep(0.3)
            registry.promote(v2.version if flip % 2 == 0 else v1.version, f"flip {flip}")
        time.sleep(1.0)  # both workers pick up the last flip
        answers = load.stop()
        metrics = httpx.get(url + "/metrics").text
    finally:
        load.stop()
        stop(proc)
    results = [(s, b["model_version"] if s == 200 else b) for s, b, _ in answers]
    statuses = [s for s, _ in results]
    assert len(results) >= 500, len(results)
    assert set(statuses) == {200}, [r for r in results if r[0] != 200][:3]
    assert {v for _, v in results} == {"v0001", "v0002"}, "both versions served"
    # the two workers' counts are merged in one scrape
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("churn_requests_total{") and 'endpoint="predict"' in line
    )
    assert served == len(results), (served, len(results))
