"""Prometheus metrics of the API, with ``prometheus-client``.

Every request is counted by endpoint, serving model version and status, whatever ends it:
a 413 or 415 from the limits, a 422 from validation, a 5xx. ``/predict`` latency is a
histogram; rows scored and prediction-log write failures are counters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from scoring.requests import LATENCY_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The API's metrics, in a registry of their own (one per app).

    Under ``make serve``'s several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set and
    ``prometheus-client``'s multiprocess mode merges every worker's counts at each scrape,
    whichever worker answers it.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "churn_requests",
            "Requests by endpoint, model version and status.",
            ("endpoint", "model_version", "status"),
            registry=self.registry,
        )
        self.rows = Counter(
            "churn_predicted_rows",
            "Rows scored by model version.",
            ("model_version",),
            registry=self.registry,
        )
        self.latency = Histogram(
            "churn_request_latency_seconds",
            "Latency of /predict.",
            ("model_version",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.write_failures = Counter(
            "churn_prediction_write_failures",
            "Prediction rows the store could not write (each is kept in the log's failed/ "
            "folder and logged with its request id).",
            registry=self.registry,
        )
        self.write_failures.inc(0)

    def observe(
        self, endpoint: str, version: str, status: int, seconds: float, rows: int = 0
    ) -> None:
        """Count one request (and, for /predict, its latency and rows)."""
        self.requests.labels(endpoint, version, str(status)).inc()
        if endpoint == "predict":
            self.latency.labels(version).observe(seconds)
            if rows:
                self.rows.labels(version).inc(rows)

    def render(self) -> bytes:
        """The exposition text (every worker's, merged, in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)

    def close(self) -> None:
        """This worker is going away (multiprocess mode forgets its live gauges)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(os.getpid())


class CountRequests:
    """ASGI middleware: every response counted in :class:`Metrics`, early errors included."""

    def __init__(
        self,
        app: Any,
        metrics: Callable[[], Metrics | None],
        version: Callable[[], str],
        store: Callable[[], Any] = lambda: None,
    ) -> None:
        self.app, self.metrics, self.version, self.store = app, metrics, version, store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            seconds = time.perf_counter() - started
            endpoint = endpoint_of(scope["path"])
            metrics = self.metrics()
            if metrics is not None:
                rows = scope.get("state", {}).get("rows", 0)
                metrics.observe(endpoint, self.version(), status["code"], seconds, rows)
            store = self.store()
            if store is not None:  # the monitoring flow's latency and error figures
                batch = endpoint == "predict" and scope.get("state", {}).get("rows", 0) > 1
                store.count_request("predict_batch" if batch else endpoint, status["code"], seconds)


def endpoint_of(path: str) -> str:
    """A bounded label for a path (ids in paths are not labels)."""
    first = path.strip("/").split("/")[0] or "root"
    known = {"predict", "feedback", "health", "model", "lineage", "metrics", "admin", "docs"}
    return first if first in known else "other"
