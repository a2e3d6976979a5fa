"""Prometheus scraping ``make serve``'s two workers with docker/prometheus.yml, run natively
(Debian's ``prometheus``; .ci/run installs it): the two queries of docs/serving.md answer."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
import yaml

from devtools.project import REPO
from devtools.services import free_port, spawn, start_api, stop, wait_for
from flows.runtime.processes import tool_env
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tests.conftest import served_copy

pytestmark = pytest.mark.slow
# the two queries docs/serving.md ("Serve the model") shows
RATE_BY_STATUS = 'sum by (status) (rate(churn_requests_total{endpoint="predict"}[1m]))'
P99 = "histogram_quantile(0.99, sum by (le) (rate(churn_request_latency_seconds_bucket[1m])))"


def prometheus_or_skip() -> str:
    found = shutil.which("prometheus")
    if found is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("prometheus is missing: .ci/run installs Debian's package")
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    return found


def query(url: str, promql: str) -> list[dict]:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def test_prometheus_scrapes_both_workers_and_the_two_queries_answer(trained_project, tmp_path):
    binary = prometheus_or_skip()
    root = served_copy(trained_project, tmp_path / "proj")
    env = tool_env({"PYTHONPATH": str(REPO)})
    api, url = start_api(root, env, tmp_path / "api.log", workers=2, quiet=True)
    config = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"] = [{"targets": [url.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom_url = f"http://127.0.0.1:{port}"
    prom = spawn(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
        env,
    )
    try:
        wait_for(
            lambda: httpx.get(prom_url + "/-/ready").status_code == 200,
            60,
            "prometheus",
            prom,
            tmp_path / "prometheus.log",
        )
        raw = (
            current_snapshot(trained_project / PATHS.raw_dir).read().drop_duplicates("customer_id")
        )
        records = json.loads(
            raw.head(50)
            .drop(columns=["churned_30d", "cancellation_reason"])
            .to_json(orient="records")
        )
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 8
            sent = 0
            while time.monotonic() < deadline:  # both workers answer some of these
                body = records[sent % 50]
                if sent % 10 == 9:
                    body = {**body, "tenure_months": "twelve"}  # a 422
                client.post("/predict", json=body)
                sent += 1
                time.sleep(0.005)
        targets = httpx.get(prom_url + "/api/v1/targets").json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], targets

        def answered() -> bool:
            statuses = {r["metric"].get("status") for r in query(prom_url, RATE_BY_STATUS)}
            return {"200", "422"} <= statuses

        wait_for(answered, 30, "the request-rate query", every_s=1)
        rates = {
            r["metric"]["status"]: float(r["value"][1]) for r in query(prom_url, RATE_BY_STATUS)
        }
        assert rates["200"] > 1 and rates["422"] > 0, rates
        p99 = query(prom_url, P99)
        assert len(p99) == 1 and 0 < float(p99[0]["value"][1]) < 1.0, p99
    finally:
        stop(prom)
        stop(api)
