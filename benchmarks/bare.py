"""The bare endpoint: the floor our ``/predict`` is measured against in ``make bench``.

A Starlette app with one route that reads the JSON body with orjson, scores one ready input
vector with the champion's fitted model (XGBoost: its booster's ``inplace_predict``; a
linear model: the logistic of one dot product) and answers with orjson. No field checks, no
cleaning, no logging, no metrics: what any HTTP model server pays at least, served by
uvicorn with the same number of workers as ``make serve``. The API section of the bench
reports our requests a second and p99 as a ratio of this endpoint's, so the figures compare
from one machine and one day to the next.

``python -m benchmarks.bare --project <folder> --port <port> --workers <n>``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

PROJECT_ENV = "BARE_PROJECT"


def ready_vector(project: Path) -> tuple[Any, Any]:
    """The champion's compiled model and one record's input vector, made once."""
    import numpy as np

    from benchmarks.served import api_records, champion

    _, model = champion(project)
    compiled = model.compiled
    if compiled is None:
        raise RuntimeError("the champion has no compiled path: the bare endpoint needs one")
    Z = compiled.matrix([compiled.row(api_records(project, 1)[0])])
    return compiled, np.ascontiguousarray(Z)


def create() -> Any:
    """The Starlette app (uvicorn's factory; the project folder from ``BARE_PROJECT``)."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    compiled, Z = ready_vector(Path(os.environ[PROJECT_ENV]))
    predict = compiled._predict  # the fitted model alone, on the ready vector

    async def endpoint(request: Request) -> Response:
        orjson.loads(await request.body())
        body = orjson.dumps({"probability": float(predict(Z)[0])})
        return Response(body, media_type="application/json")

    async def health(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/predict", endpoint, methods=["POST"]), Route("/health", health)]
    )


def start(project: Path, env: dict[str, str], log: Path, workers: int) -> tuple[Any, str]:
    """The bare endpoint for ``project`` on a free port, once it answers: ``(process, url)``."""
    import httpx

    from devtools.services import free_port, spawn, stop, wait_for

    port = free_port()
    args = [sys.executable, "-m", "benchmarks.bare", "--project", str(project)]
    proc = spawn([*args, "--port", str(port), "--workers", str(workers)], log, env, cwd=project)
    url = f"http://127.0.0.1:{port}"
    try:
        check = lambda: httpx.get(url + "/health", timeout=2).status_code == 200  # noqa: E731
        wait_for(check, 120, "bare endpoint", proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def main(argv: list[str] | None = None) -> int:
    """Serve the bare endpoint (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare", description=__doc__)
    parser.add_argument("--project", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[PROJECT_ENV] = str(Path(args.project).resolve())
    import uvicorn

    uvicorn.run(
        "benchmarks.bare:create",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
