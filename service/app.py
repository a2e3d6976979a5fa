"""The prediction API (``make serve``: http://127.0.0.1:8000, docs at /docs).

- ``POST /predict``: raw records as the source delivers them, one (a JSON object) or a batch
  (``{"records": [...]}``); ``?explain=true`` adds the top feature contributions.
- ``GET /health``, ``GET /model`` (the serving version's card and input schema),
  ``POST /feedback`` (ground truth for earlier request ids), ``GET /metrics`` (Prometheus).
- ``POST /admin/reload``: needs the ``CHURN_ADMIN_TOKEN`` from the environment.

The service follows the registry's champion alias: when it changes, the new model is
loaded (hash-checked) in the background and swapped in with one reference assignment, so
no request fails or waits during a switch.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry, registry_dir
from tasks.core.serving.scoring import LoadedModel, RecordError
from tasks.core.serving.store import (
    Clock,
    PredictionStore,
    file_clock,
    sqlite_url,
    store_url,
    utc_now,
)

log = logging.getLogger("churn.service")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# /predict reads the raw records itself (the columns are the model's, known only at run time)
_RECORD = {
    "type": "object",
    "description": "one raw record, fields as the source exports them (see GET /model)",
    "additionalProperties": True,
}
PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["records"],
                        "properties": {
                            "records": {
                                "type": "array",
                                "items": _RECORD,
                                "minItems": 1,
                                "maxItems": 1000,
                            }
                        },
                    },
                    _RECORD,
                ]
            }
        }
    },
}
PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "request body too large"},
    422: {"description": "a record or field the model cannot use; `detail` names where and why"},
    503: {"description": "no champion model yet"},
}


class Feedback(BaseModel):
    """Ground truth for an earlier prediction."""

    request_id: str = Field(min_length=1, max_length=64)
    label: int = Field(ge=0, le=1)
    row: int | None = Field(None, ge=0, le=2**31 - 1)


class FeedbackBatch(BaseModel):
    """One or more labels."""

    labels: list[Feedback] = Field(min_length=1, max_length=10000)


class Champion:
    """The serving model, swapped atomically when the registry's champion alias changes."""

    def __init__(self, registry: Registry, poll_s: float = 0.5) -> None:
        self.registry = registry
        self.current: LoadedModel | None = None
        # after a promotion, the previous champion scores every request in shadow (not served)
        self.shadow: LoadedModel | None = None
        self._alias_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refresh()
        self._watcher = threading.Thread(
            target=self._watch, args=(poll_s,), name="champion-watch", daemon=True
        )
        self._watcher.start()

    def _stamp(self) -> tuple[float, int] | None:
        path = self.registry.root / "aliases.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime, st.st_ino)

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the alias changed; True if a new model was swapped in."""
        with self._lock:
            stamp = self._stamp()
            if stamp == self._alias_stamp and not force:
                return False
            version = self.registry.champion()
            if version is None:
                self._alias_stamp = stamp
                return False
            if (
                self.current is not None
                and self.current.version.version == version.version
                and not force
            ):
                self._alias_stamp = stamp
                return False
            loaded = LoadedModel.load(self.registry, version)  # hash-checked; raises on a bad file
            self.current = loaded  # one reference assignment: requests see the old or the new model
            self._alias_stamp = stamp
            log.info("serving model %s", version.version)
            self.shadow = self._load_shadow(version.version)
            return True

    def _load_shadow(self, serving: str) -> LoadedModel | None:
        previous = self.registry.alias("previous_champion")
        if previous is None or previous.version == serving:
            return None
        try:
            shadow = LoadedModel.load(self.registry, previous)
        except Exception:  # the shadow is optional: never let it stop serving
            log.exception(
                "could not load %s for shadow scoring; serving without a shadow", previous.version
            )
            return None
        log.info("scoring in shadow with the previous champion %s", previous.version)
        return shadow

    def _watch(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.refresh()
            except Exception:  # a bad new champion must not stop the one serving
                log.exception("could not load the new champion; the previous model keeps serving")

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse (413) a body above ``max_bytes``, declared or streamed (chunked).

    A declared Content-Length above the bound is refused before reading; a body sent without
    one is counted as it arrives and refused once it passes the bound.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def refuse() -> JSONResponse:
            return JSONResponse(
                {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
            )

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await refuse()(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await refuse()(scope, receive, send)


class Metrics:
    """Prometheus counters and a latency histogram, by model version."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.rows: dict[str, int] = defaultdict(int)
        self.latency: dict[str, list[float]] = defaultdict(
            lambda: [0.0] * (len(LATENCY_BUCKETS) + 2)
        )

    def observe(
        self, endpoint: str, version: str, status: int, seconds: float, rows: int = 0
    ) -> None:
        with self.lock:
            self.requests[(endpoint, version, str(status))] += 1
            self.rows[version] += rows
            hist = self.latency[version]
            for k, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    hist[k] += 1
            hist[-2] += 1  # count
            hist[-1] += seconds  # sum

    def render(self) -> str:
        lines = [
            "# HELP churn_requests_total Requests by endpoint, model version and status.",
            "# TYPE churn_requests_total counter",
        ]
        with self.lock:
            for (endpoint, version, status), n in sorted(self.requests.items()):
                lines.append(
                    f'churn_requests_total{{endpoint="{endpoint}",model_version="{version}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP churn_predicted_rows_total Rows scored by model version.",
                "# TYPE churn_predicted_rows_total counter",
            ]
            lines += [
                f'churn_predicted_rows_total{{model_version="{v}"}} {n}'
                for v, n in sorted(self.rows.items())
            ]
            lines += [
                "# HELP churn_request_latency_seconds Latency of /predict.",
                "# TYPE churn_request_latency_seconds histogram",
            ]
            for version, hist in sorted(self.latency.items()):
                for k, bound in enumerate(LATENCY_BUCKETS):
                    lines.append(
                        f'churn_request_latency_seconds_bucket{{model_version="{version}",'
                        f'le="{bound}"}} {hist[k]:.0f}'
                    )
                lines.append(
                    f'churn_request_latency_seconds_bucket{{model_version="{version}",'
                    f'le="+Inf"}} {hist[-2]:.0f}'
                )
                lines.append(
                    f'churn_request_latency_seconds_count{{model_version="{version}"}} '
                    f"{hist[-2]:.0f}"
                )
                lines.append(
                    f'churn_request_latency_seconds_sum{{model_version="{version}"}} {hist[-1]:.6f}'
                )
        return "\n".join(lines) + "\n"


def create_app(
    registry_dir: Path,
    database_url: str | None = None,
    admin_token: str | None = None,
    max_records: int = 1000,
    max_body_bytes: int = 2_000_000,
    poll_s: float = 0.5,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the API over a registry and a prediction store.

    Parameters
    ----------
    registry_dir : Path
        The model registry folder.
    database_url : str, optional
        SQLAlchemy URL of the prediction store (default: SQLite beside the registry).
    admin_token : str, optional
        Token for admin endpoints (default: ``CHURN_ADMIN_TOKEN``; unset disables them).
    max_records, max_body_bytes : int
        Request size bounds.
    poll_s : float
        How often the champion alias is checked.
    clock : callable
        Stamps logged predictions and labels (default: the real time; ``make demo`` runs the
        API on a simulated clock, ``CHURN_CLOCK_FILE``).
    """
    registry = Registry(Path(registry_dir))
    url = database_url or sqlite_url(registry_dir)
    token = admin_token if admin_token is not None else os.environ.get("CHURN_ADMIN_TOKEN", "")
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        Path(registry_dir).mkdir(parents=True, exist_ok=True)
        state["store"] = PredictionStore(url, clock)
        state["champion"] = Champion(registry, poll_s)
        state["metrics"] = Metrics()
        yield
        state["champion"].stop()
        state["store"].close()

    app = FastAPI(title="churn-workflow prediction API", version="1", lifespan=lifespan)

    def serving() -> LoadedModel:
        current = state["champion"].current
        if current is None:
            raise HTTPException(
                503, "no champion model yet: run `make run` to train and promote one"
            )
        return current

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY}, responses=PREDICT_ERRORS)
    async def predict(request: Request, explain: bool = Query(False)) -> dict[str, Any]:
        started = time.perf_counter()
        model = serving()
        version = model.version.version
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
            state["metrics"].observe("predict", version, 422, time.perf_counter() - started)
            raise HTTPException(
                422, [{"loc": ["body"], "msg": "the body is not valid JSON"}]
            ) from None
        records = body.get("records") if isinstance(body, dict) and "records" in body else [body]
        if not isinstance(records, list) or not records:
            raise HTTPException(
                422, [{"loc": ["body", "records"], "msg": "expected a record or a non-empty list"}]
            )
        if len(records) > max_records:
            raise HTTPException(
                422,
                [{"loc": ["body", "records"], "msg": f"at most {max_records} records a request"}],
            )
        try:
            proba, X = model.score(records)
        except RecordError as exc:
            state["metrics"].observe("predict", version, 422, time.perf_counter() - started)
            raise HTTPException(
                422, [{"loc": ["body", "records", exc.index, exc.field], "msg": exc.reason}]
            ) from None
        decisions = (proba >= model.threshold).astype(int)
        request_id = uuid.uuid4().hex
        ids = model.record_ids(records)
        shadow = state["champion"].shadow
        shadow_scores = None
        if shadow is not None:
            try:
                shadow_scores = shadow.score(records)[0].tolist()
            except Exception:  # noqa: BLE001 - the shadow never fails a request
                log.warning(
                    "shadow model %s could not score request %s", shadow.version.version, request_id
                )
                shadow = None
        state["store"].log(
            request_id,
            version,
            model.logged_ids(ids),
            X.to_dict(orient="records"),
            proba.tolist(),
            decisions.tolist(),
            shadow.version.version if shadow is not None and shadow_scores else None,
            shadow_scores,
        )
        out = [
            {"id": ids[i], "probability": round(float(proba[i]), 6), "decision": int(decisions[i])}
            for i in range(len(records))
        ]
        if explain:
            for row, contrib in zip(out, model.contributions(X, top=5)):
                row["contributions"] = contrib
        state["metrics"].observe(
            "predict", version, 200, time.perf_counter() - started, len(records)
        )
        return {
            "request_id": request_id,
            "model_version": version,
            "threshold": model.threshold,
            "predictions": out,
        }

    @app.get("/health")
    def health() -> JSONResponse:
        current = state["champion"].current
        if current is None:
            return JSONResponse({"status": "no model", "model_version": None}, status_code=503)
        return JSONResponse({"status": "ok", "model_version": current.version.version})

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        current = serving()
        card = {k: v for k, v in current.version.card.items() if k != "params"}
        return {
            "version": current.version.version,
            "card": card,
            "input_schema": current.version.schema(),
            "raw_columns": current.kinds,
        }

    @app.post("/feedback")
    def feedback(batch: FeedbackBatch) -> dict[str, Any]:
        updated = {
            f.request_id: state["store"].add_label(f.request_id, f.label, f.row)
            for f in batch.labels
        }
        unknown = [r for r, n in updated.items() if n == 0]
        return {"labelled_rows": sum(updated.values()), "unknown_request_ids": unknown}

    @app.get("/lineage/{request_id}")
    def lineage(request_id: str) -> dict[str, Any]:
        rows = state["store"].get(request_id)
        if not rows:
            raise HTTPException(404, f"no prediction with request id '{request_id}'")
        return lineage_of(registry, rows)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return state["metrics"].render()

    @app.post("/admin/reload")
    def reload(authorization: str = Header("")) -> dict[str, Any]:
        expected = f"Bearer {token}"
        if not token or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(
                401, "admin endpoints need 'Authorization: Bearer <CHURN_ADMIN_TOKEN>'"
            )
        state["champion"].refresh(force=True)
        return {"model_version": serving().version.version}

    return app


def lineage_of(registry: Registry, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The chain behind a request: prediction, model version, code, data versions, their
    validation."""
    version = registry.get(rows[0]["model_version"])
    card = version.card
    return {
        "request_id": rows[0]["request_id"],
        "created_at": str(rows[0]["created_at"]),
        "predictions": [
            {"row": r["row"], "record_id": r["record_id"], "score": r["score"], "label": r["label"]}
            for r in rows
        ],
        "model": {
            "version": version.version,
            "kind": card.get("model"),
            "model_sha256": card.get("model_sha256"),
            "registered_at": card.get("registered_at"),
            "test_metrics": card.get("metrics", {}).get("test"),
        },
        "code_version": card.get("code_version"),
        "training_run": {
            "flow_run_id": card.get("flow_run_id"),
            "flow_run_name": card.get("flow_run_name"),
            "dvc_experiment": card.get("experiment"),
        },
        "data": card.get("data"),
        "data_validation": card.get("validation"),
        "evaluation_gate": card.get("gate"),
    }


def app_from_env() -> FastAPI:
    """The app as ``make serve`` runs it (registry from params.yaml, store from DATABASE_URL)."""
    from tasks.core.config import load_params
    from tasks.core.paths import find_project_root

    root = find_project_root()
    params = load_params(root / PATHS.params)
    clock_file = os.environ.get("CHURN_CLOCK_FILE")
    if clock_file:
        log.warning(
            "simulated clock: predictions and labels are stamped with the time in %s", clock_file
        )
    return create_app(
        registry_dir(root, params),
        store_url(registry_dir(root, params)),
        clock=file_clock(clock_file) if clock_file else utc_now,
    )
