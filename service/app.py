"""The prediction API (``make serve``: http://127.0.0.1:8000, docs at /docs).

- ``POST /predict``: raw records as the source delivers them, one (a JSON object) or a batch
  (``{"records": [...]}``); ``?explain=true`` adds the top feature contributions.
- ``GET /health``, ``GET /model`` (the serving version's card and input schema),
  ``POST /feedback`` (ground truth for earlier request ids, with a labeller's token),
  ``GET /metrics`` (Prometheus).
- ``POST /admin/reload``: needs the ``CHURN_ADMIN_TOKEN`` from the environment.

Bodies are JSON only (415 otherwise), bounded (413), and no browser origin may call unless
``CHURN_CORS_ORIGINS`` names it. No request is answered with a 5xx but 503 (no model yet).

The service follows the registry's champion alias: when it changes, the new model is
loaded (hash-checked) in the background and swapped in with one reference assignment, so
no request fails or waits during a switch.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import sqlalchemy as sa
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from scoring.compiled import InputColumns
from scoring.fields import RecordError
from scoring.scoring import LoadedModel
from scoring.store import (
    Clock,
    PredictionStore,
    file_clock,
    log_dir_of,
    sqlite_url,
    store_url,
    utc_now,
)
from service.body import NotUnicode, decode, encode, may_differ
from service.champion import Champion, request_reload
from service.limits import BodyLimit, JsonOnly, Overload
from service.metrics import CONTENT_TYPE, CountRequests, Metrics
from tasks.core.env import refuse_placeholder
from tasks.core.ml.objectives.regression import number_error
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry, RegistryError, registry_dir

log = logging.getLogger("churn.service")
NOT_JSON = "the body is not valid JSON (NaN and Infinity are not)"
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
    # 0 or 1 for a yes/no problem, a number for a regression, the class's name for a
    # multiclass problem: the champion's type checks it
    label: StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=256)]
    row: int | None = Field(None, ge=0, le=2**31 - 1)


class FeedbackBatch(BaseModel):
    """One or more labels; ``overwrite`` must be true to change a label already set."""

    labels: list[Feedback] = Field(min_length=1, max_length=10000)
    overwrite: bool = False


def check_secrets(admin_token: str | None = None, labellers: dict[str, str] | None = None) -> None:
    """Refuse ``.env.example``'s placeholder as the admin token, a labeller's token or the
    pseudonyms' key (``CHURN_PII_KEY``); the environment's values by default.

    Raises
    ------
    PlaceholderSecret
        Naming the variable.
    """
    if admin_token is None:
        admin_token = os.environ.get("CHURN_ADMIN_TOKEN", "")
    refuse_placeholder("CHURN_ADMIN_TOKEN", admin_token)
    for secret in labellers if labellers is not None else feedback_tokens_from_env():
        refuse_placeholder("CHURN_FEEDBACK_TOKENS", secret)
    refuse_placeholder("CHURN_PII_KEY", os.environ.get("CHURN_PII_KEY", ""))


def feedback_tokens_from_env() -> dict[str, str]:
    """``CHURN_FEEDBACK_TOKENS`` (``name=token,name=token``) as {token: name}."""
    out = {}
    for pair in os.environ.get("CHURN_FEEDBACK_TOKENS", "").split(","):
        name, _, value = pair.strip().partition("=")
        if name and value:
            out[value] = name
    return out


def create_app(
    registry_dir: Path,
    database_url: str | None = None,
    admin_token: str | None = None,
    max_records: int = 1000,
    max_body_bytes: int = 2_000_000,
    poll_s: float = 0.5,
    clock: Clock = utc_now,
    feedback_tokens: dict[str, str] | None = None,
    cors_origins: list[str] | None = None,
    max_inflight: int | None = None,
    max_log_lag_s: float | None = None,
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
    feedback_tokens : dict, optional
        ``{token: who}`` allowed to post labels (default: ``CHURN_FEEDBACK_TOKENS``; the admin
        token counts as ``admin``). With none, ``/feedback`` refuses every request.
    cors_origins : list of str, optional
        Origins allowed to call from a browser (default: ``CHURN_CORS_ORIGINS``, comma
        separated; unset: no CORS headers at all).
    max_inflight : int, optional
        ``/predict`` requests one worker takes at once (default: ``CHURN_MAX_INFLIGHT`` or
        64); beyond it the answer is 503 with ``Retry-After``, not an unbounded queue.
    max_log_lag_s : float, optional
        ``/predict`` answers 503 with ``Retry-After`` while the oldest prediction not yet
        written to the log has waited longer than this (default: ``CHURN_MAX_LOG_LAG_S``
        or 1 s), so a killed server loses about a second at most however hard it is driven.
    """
    if max_inflight is None:
        max_inflight = int(os.environ.get("CHURN_MAX_INFLIGHT") or 64)
    if max_log_lag_s is None:
        max_log_lag_s = float(os.environ.get("CHURN_MAX_LOG_LAG_S") or 1.0)
    registry = Registry(Path(registry_dir))
    url = database_url or sqlite_url(registry_dir)
    token = admin_token if admin_token is not None else os.environ.get("CHURN_ADMIN_TOKEN", "")
    labellers = dict(feedback_tokens if feedback_tokens is not None else feedback_tokens_from_env())
    check_secrets(token, labellers)  # refused at start, naming the variable
    if token:
        labellers.setdefault(token, "admin")
    origins = cors_origins
    if origins is None:
        origins = [o for o in os.environ.get("CHURN_CORS_ORIGINS", "").split(",") if o.strip()]
    state: dict[str, Any] = {}

    def open_store() -> PredictionStore:
        return PredictionStore(
            url, clock, log_dir=log_dir_of(registry_dir), on_failed=counts.write_failures.inc
        )

    async def store_when_up() -> None:
        """Open the store once the database answers (started while it did not)."""
        delay = 1.0
        while "store" not in state:
            await asyncio.sleep(delay)
            delay = min(2 * delay, 10.0)
            try:
                state["store"] = await run_in_threadpool(open_store)
                log.warning("the prediction store answers again: /predict accepts predictions")
            except sa.exc.SQLAlchemyError as exc:
                log.warning(
                    "the prediction store is still unreachable (%s)", exc.__class__.__name__
                )

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        Path(registry_dir).mkdir(parents=True, exist_ok=True)
        waiting = None
        try:
            state["store"] = open_store()
        except sa.exc.SQLAlchemyError as exc:  # a database down at start: wait for it, 503
            log.error(
                "the prediction store is unreachable (%s): /predict and /feedback answer 503 "
                "until it answers; retrying",
                exc.__class__.__name__,
            )
            waiting = asyncio.create_task(store_when_up())
        state["champion"] = Champion(registry, poll_s)
        yield
        # uvicorn stops accepting and waits for requests in flight before this runs
        if waiting is not None:
            waiting.cancel()
        state["champion"].stop()
        if "store" in state:
            state["store"].close()  # every accepted prediction is written
        counts.close()

    def store() -> PredictionStore:
        if "store" not in state:
            raise HTTPException(503, "the prediction store is unreachable; retry shortly")
        return state["store"]

    app = FastAPI(title="churn-workflow prediction API", version="1", lifespan=lifespan)
    counts = state["metrics"] = Metrics()

    def serving() -> LoadedModel:
        current = state["champion"].current
        if current is None:
            raise HTTPException(
                503, "no champion model yet: run `make run` to train and promote one"
            )
        return current

    def serving_version() -> str:
        champion = state.get("champion")
        current = champion.current if champion is not None else None
        return current.version.version if current is not None else "none"

    # outermost last: every response, even a 413 or 415, is counted
    app.add_middleware(JsonOnly, paths=("/predict", "/feedback"))
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(
        Overload,
        max_inflight=max_inflight,
        paths=("/predict",),
        lag=lambda: state["store"].lag_s() if "store" in state else math.inf,
        max_lag_s=max_log_lag_s,
    )
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
        )
    app.add_middleware(
        CountRequests,
        metrics=lambda: state.get("metrics"),
        version=serving_version,
        store=lambda: state.get("store"),
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is echoed back; NaN, Infinity or bytes must not break the reply
        return JSONResponse(status_code=422, content={"detail": json_safe(exc.errors())})

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error (logged)"})

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY}, responses=PREDICT_ERRORS)
    async def predict(request: Request, explain: bool = Query(False)) -> Response:
        model = serving()
        version = model.version.version
        raw = await request.body()
        # orjson's reading first, then (only when a record is read one by one or refused)
        # the exact one: at most two readings (see service/body.py); the pandas path and
        # explanations read exactly from the start
        exact = explain or model.compiled is None
        while True:
            try:
                body, exact = decode(raw, exact)
            except NotUnicode as exc:  # refused before anything is scored or logged
                raise HTTPException(422, [{"loc": ["body"], "msg": str(exc)}]) from None
            except (ValueError, RecursionError):  # not JSON, not UTF-8, NaN/Infinity, too deep
                raise HTTPException(422, [{"loc": ["body"], "msg": NOT_JSON}]) from None
            records = _records_of(body, max_records)
            if not exact and len(records) == 1 and may_differ(records[0]):
                exact = True
                continue
            X = None
            signature = model.compiled.signature if model.compiled is not None else None
            try:
                if len(records) == 1 and not explain:  # compiled: about 0.05 ms, runs inline
                    probability, inputs = model.score_one(records[0])
                    proba, rows = [probability], [inputs]
                elif not explain:  # batches: compiled too, off the event loop
                    proba, rows = await run_in_threadpool(model.score_many, records)
                    if not exact and not isinstance(rows, InputColumns):
                        exact = True  # read record by record: on the exact reading
                        continue
                else:  # explanations need the pandas frame
                    scores, X = await run_in_threadpool(model.score, records)
                    proba, rows = scores.tolist(), X.to_dict(orient="records")
                    signature = None  # pandas rows: the shadow reads the records itself
            except RecordError as exc:
                if not exact:  # the first problem as the exact reading names it
                    exact = True
                    continue
                raise HTTPException(
                    422, [{"loc": ["body", "records", exc.index, exc.field], "msg": exc.reason}]
                ) from None
            break
        threshold, objective = model.threshold, model.objective
        answers = [objective.answer(p, threshold) for p in proba]
        decisions = objective.logged_decisions(np.asarray(proba), threshold).tolist()
        request_id = uuid.uuid4().hex
        ids = model.record_ids(records)
        # the previous champion scores in shadow in the log writer, after the answer is sent
        store().log(
            request_id,
            version,
            model.logged_ids(ids),
            rows,
            objective.logged_scores(proba),
            decisions,
            shadow=state["champion"].shadow,
            records=records,
            signature=signature,
        )
        out = [{"id": ids[i], **answers[i]} for i in range(len(records))]
        if explain and X is not None:
            contributions = await run_in_threadpool(model.contributions, X, 5)
            for row, contrib in zip(out, contributions):
                row["contributions"] = contrib
        request.state.rows = len(records)
        answer = {
            "request_id": request_id,
            "model_version": version,
            **objective.rule_fields(threshold),
            "predictions": out,
        }
        # plain values only: serialised directly, without FastAPI's encoder walking them
        # a batch's connection is not kept: the client's next one goes to whichever worker
        # accepts first, the least busy (kept, four connections can all sit on one worker
        # while the other idles); a reconnect costs far less than a batch
        headers = {"Connection": "close"} if len(records) > 1 else None
        return Response(encode(answer), media_type="application/json", headers=headers)

    @app.get("/health")
    def health() -> JSONResponse:
        current = state["champion"].current
        if current is None:  # ready only once a model is loaded and warm
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
    def feedback(batch: FeedbackBatch, authorization: str = Header("")) -> JSONResponse:
        who = _bearer(authorization, labellers)
        if who is None:
            raise HTTPException(
                401,
                "labels need 'Authorization: Bearer <token>' of CHURN_FEEDBACK_TOKENS "
                "(name=token,...) or CHURN_ADMIN_TOKEN",
            )
        current = state["champion"].current
        objective = current.objective if current is not None else None
        seen: dict[tuple[str, int | None], int] = {}
        for i, f in enumerate(batch.labels):
            # no champion: nothing it predicted to label, but a label is at least a number
            wrong = number_error(f.label) if objective is None else objective.label_error(f.label)
            if wrong is not None:  # nothing of the batch is stored
                raise HTTPException(422, [{"loc": ["body", "labels", i, "label"], "msg": wrong}])
            key = (f.request_id, f.row)
            if key in seen and batch.labels[seen[key]].label != f.label:
                raise HTTPException(
                    422,
                    [
                        {
                            "loc": ["body", "labels", i],
                            "msg": f"labels {seen[key]} and {i} give "
                            f"request {f.request_id} row {f.row} two different labels",
                        }
                    ],
                )
            seen[key] = i
        value = float if objective is None else objective.label_value
        outcomes = [
            store().add_label(f.request_id, value(f.label), f.row, who, batch.overwrite)
            for f in batch.labels
        ]
        unknown = sorted({f.request_id for f, o in zip(batch.labels, outcomes) if o.matched == 0})
        conflicts = [
            {"request_id": f.request_id, "row": f.row, "label": f.label}
            for f, o in zip(batch.labels, outcomes)
            if o.conflicts
        ]
        body = {
            "labelled_rows": sum(o.updated for o in outcomes),
            "unknown_request_ids": unknown,
            "labelled_by": who,
        }
        if conflicts:
            body["conflicts"] = conflicts
            body["detail"] = (
                "these rows already hold a different label; nothing was changed for them. To "
                'change a label, send the batch again with "overwrite": true (it is logged)'
            )
            return JSONResponse(body, status_code=409)
        return JSONResponse(body)

    @app.get("/lineage/{request_id}")
    def lineage(request_id: str) -> dict[str, Any]:
        rows = store().get(request_id)
        if not rows:
            raise HTTPException(404, f"no prediction with request id '{request_id}'")
        return lineage_of(registry, rows)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(state["metrics"].render(), media_type=CONTENT_TYPE)

    @app.post("/admin/reload")
    def reload(authorization: str = Header("")) -> dict[str, Any]:
        expected = f"Bearer {token}"
        if not token or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(
                401, "admin endpoints need 'Authorization: Bearer <CHURN_ADMIN_TOKEN>'"
            )
        try:
            request_reload(registry)  # every other worker of this registry reloads too
            state["champion"].refresh(force=True)
        except RegistryError as exc:
            raise HTTPException(
                409, f"the champion was refused ({exc}); {serving_version()} keeps serving"
            ) from None
        return {"model_version": serving().version.version}

    return app


def _records_of(body: Any, max_records: int) -> list[Any]:
    """The records of a /predict body: one record, or ``{"records": [...]}``."""
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
    return records


def _bearer(authorization: str, tokens: dict[str, str]) -> str | None:
    """The name of the token in an ``Authorization: Bearer`` header, or None."""
    given = authorization.removeprefix("Bearer ").encode()
    for value, name in tokens.items():
        if authorization.startswith("Bearer ") and hmac.compare_digest(given, value.encode()):
            return name
    return None


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry (NaN, Infinity, bytes, objects) made text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, str):  # a lone surrogate cannot be encoded: shown as its escape
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return repr(value)


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
