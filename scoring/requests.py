"""Request statistics of the API, kept beside the prediction log for monitoring.

Every request (any endpoint, any status, early 413/415 included) is counted per minute,
endpoint and status, with its latency in histogram buckets (the buckets of ``/metrics``).
Each worker aggregates in memory and writes one row per (minute, endpoint, status) every
few seconds; the monitoring flow sums a window's rows (all workers) and reads p50/p99 and the
4xx/5xx shares from the merged buckets, as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import threading
from collections.abc import Iterable
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds in seconds (a last, open bucket holds the rest)."""
WATCHED = ("predict", "predict_batch", "feedback")
"""Endpoints whose errors monitoring judges (not health checks or scrapes)."""
TIMED = ("predict",)
"""Endpoints whose latency monitoring judges: single-record predictions (a batch of 1,000 or
a round of labels takes longer by nature, and would hide a slow single record)."""


class RequestTally:
    """Per-minute request counts of one worker, taken and reset by the store's writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[dt.datetime, str, int], list[float]] = {}

    def add(self, at: dt.datetime, endpoint: str, status: int, seconds: float) -> None:
        """Count one request."""
        minute = at.replace(second=0, microsecond=0)
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            row = self._rows.get((minute, endpoint, status))
            if row is None:
                row = self._rows[(minute, endpoint, status)] = [0.0] * (len(LATENCY_BUCKETS) + 3)
            row[0] += 1
            row[1] += seconds
            row[2 + bucket] += 1

    def take(self) -> list[dict[str, Any]]:
        """The rows counted since the last call (and start again)."""
        with self._lock:
            rows, self._rows = self._rows, {}
        return [
            {
                "minute": minute,
                "endpoint": endpoint,
                "status": status,
                "count": int(v[0]),
                "seconds": float(v[1]),
                "buckets": json.dumps([int(b) for b in v[2:]]),
            }
            for (minute, endpoint, status), v in rows.items()
        ]


def quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (seconds) of bucketed latencies, interpolated inside its bucket."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        if seen + n >= rank and n:
            lower = LATENCY_BUCKETS[i - 1] if i > 0 else 0.0
            if i >= len(LATENCY_BUCKETS):  # the open bucket: its lower bound is all we know
                return LATENCY_BUCKETS[-1]
            return lower + (LATENCY_BUCKETS[i] - lower) * (rank - seen) / n
        seen += n
    return LATENCY_BUCKETS[-1]


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Requests and 4xx/5xx shares of the watched endpoints; p50/p99 latency (ms) of
    single-record predictions."""
    requests = errors_4xx = errors_5xx = timed = 0
    merged = [0] * (len(LATENCY_BUCKETS) + 1)
    by_status: dict[str, int] = {}
    for row in rows:
        if row["endpoint"] not in WATCHED:
            continue
        n, status = int(row["count"]), int(row["status"])
        requests += n
        by_status[str(status)] = by_status.get(str(status), 0) + n
        errors_4xx += n if 400 <= status < 500 else 0
        errors_5xx += n if status >= 500 else 0
        if row["endpoint"] not in TIMED:
            continue
        timed += n
        buckets = row["buckets"]
        for i, b in enumerate(json.loads(buckets) if isinstance(buckets, str) else buckets):
            merged[i] += int(b)
    p50, p99 = quantile(merged, 0.5), quantile(merged, 0.99)
    return {
        "requests": requests,
        "by_status": dict(sorted(by_status.items())),
        "timed_requests": timed,
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "share_4xx": round(errors_4xx / requests, 4) if requests else None,
        "share_5xx": round(errors_5xx / requests, 4) if requests else None,
    }
