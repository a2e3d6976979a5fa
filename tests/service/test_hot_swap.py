"""Switching the champion under load drops and fails no request, on ``make serve``'s
multi-worker server (``python -m service.serve``, two worker processes, each following the
alias on its own)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from devtools.project import REPO
from devtools.services import start_api, stop
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.runtime.processes import tool_env
from tasks.core.serving.registry import Registry
from tests.conftest import served_copy

pytestmark = pytest.mark.slow
CLIENTS, FLIPS = 8, 12


def test_alias_flips_under_load_on_two_workers_only_ever_return_200(trained_project, tmp_path):
    root = served_copy(trained_project, tmp_path / "proj")
    registry = Registry(root / "registry")
    v1 = registry.get("v0001")
    card = {
        k: v for k, v in v1.card.items() if k not in ("version", "model_sha256", "registered_at")
    }
    v2 = registry.register(v1.model_path, card, v1.schema(), v1.reference())
    raw = current_snapshot(trained_project / PATHS.raw_dir).read().drop_duplicates("customer_id")
    records = json.loads(
        raw.head(50).drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )
    env = tool_env({"PYTHONPATH": str(REPO)})  # the code of this checkout serves the copy
    proc, url = start_api(root, env, tmp_path / "api.log", workers=2, quiet=True)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    done = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = 0
            while not done.is_set():
                body = records[(k * 7 + i) % len(records)]
                if i % 10 == 9:  # batches too: they run off the event loop
                    body = {"records": records[:20]}
                r = http.post("/predict", json=body)
                i += 1
                with lock:
                    results.append(
                        (
                            r.status_code,
                            r.json().get("model_version", "") if r.is_success else r.text,
                        )
                    )

    workers = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    try:
        for w in workers:
            w.start()
        for flip in range(FLIPS):
            time.sleep(0.3)
            registry.promote(v2.version if flip % 2 == 0 else v1.version, f"flip {flip}")
        time.sleep(1.0)  # both workers pick up the last flip
        done.set()
        for w in workers:
            w.join(timeout=60)
        metrics = httpx.get(url + "/metrics").text
    finally:
        done.set()
        stop(proc)
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
