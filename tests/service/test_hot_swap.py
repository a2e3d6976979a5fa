"""Switching the champion under load drops and fails no request."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry

pytestmark = pytest.mark.slow
CLIENTS, PER_CLIENT, FLIPS = 8, 70, 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_alias_flips_under_load_only_ever_return_200(trained_project, tmp_path):
    registry_dir = tmp_path / "registry"
    shutil.copytree(
        trained_project / "registry", registry_dir, ignore=shutil.ignore_patterns("predictions.db*")
    )
    registry = Registry(registry_dir)
    v1 = registry.get("v0001")
    card = {
        k: v for k, v in v1.card.items() if k not in ("version", "model_sha256", "registered_at")
    }
    v2 = registry.register(v1.model_path, card, v1.schema(), v1.reference())

    raw = (
        current_snapshot(trained_project / PATHS.raw_dir)
        .read()
        .drop_duplicates("customer_id")
        .head(50)
    )
    records = json.loads(
        raw.drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(registry_dir, poll_s=0.02), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started

    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for i in range(PER_CLIENT):
                r = http.post("/predict", json=records[(k * PER_CLIENT + i) % len(records)])
                with lock:
                    results.append(
                        (
                            r.status_code,
                            r.json().get("model_version", "") if r.status_code == 200 else r.text,
                        )
                    )

    workers = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    try:
        for w in workers:
            w.start()
        flips = 0
        while any(w.is_alive() for w in workers) and flips < FLIPS:
            time.sleep(0.25)
            registry.promote(v2.version if flips % 2 == 0 else v1.version, f"flip {flips}")
            flips += 1
        for w in workers:
            w.join(timeout=120)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    statuses = [s for s, _ in results]
    assert len(results) == CLIENTS * PER_CLIENT >= 500
    assert flips >= 10, "the alias must flip at least 10 times while clients run"
    assert set(statuses) == {200}, [r for r in results if r[0] != 200][:3]
    assert {v for _, v in results} == {"v0001", "v0002"}, "both versions served"
