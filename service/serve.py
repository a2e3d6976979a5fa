"""``make serve``: the prediction API with one worker process per core.

Each worker loads the champion (hash-checked and warmed before it reports ready), follows
the registry's alias on its own, and appends to its own prediction-log segments.
Prometheus counts are merged across workers (``prometheus-client``'s multiprocess mode, in
a fresh folder per start). SIGTERM stops accepting, lets requests in flight finish (up to
``--drain`` seconds) and flushes every accepted prediction to the log before exiting.
Uvicorn's access log is off: the prediction log and ``/metrics`` record every request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from tasks.core.env import usable_cores


def default_workers() -> int:
    """``CHURN_WORKERS``, else the cores this process may use."""
    configured = os.environ.get("CHURN_WORKERS")
    if configured:
        return max(1, int(configured))
    return usable_cores()


def main(argv: list[str] | None = None) -> int:
    """Run the API (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m service.serve", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("CHURN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CHURN_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=None, help="default: CHURN_WORKERS or cores")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to finish on SIGTERM")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    from service.app import check_secrets
    from tasks.core.env import PlaceholderSecret

    try:
        check_secrets()
    except PlaceholderSecret as exc:
        print(f"make serve refused: {exc}", file=sys.stderr)
        return 2
    workers = args.workers or default_workers()
    metrics_dir = tempfile.mkdtemp(prefix="churn-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before any worker imports the client
    import uvicorn

    print(
        f"prediction API on http://{args.host}:{args.port} (docs at /docs): {workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            "service.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=workers,
            access_log=False,
            log_level=args.log_level,
            timeout_graceful_shutdown=args.drain,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
