"""The prediction store: every prediction, and the ground truth that arrives later.

SQLite by default (``predictions.db`` beside the registry); PostgreSQL (or any SQLAlchemy
database) when ``DATABASE_URL`` says so. Only parameterised statements are used. Rows are
written by a background thread in batches, so logging adds almost nothing to a request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from scoring.compiled import InputColumns
from scoring.requests import RequestTally, summarise
from scoring.segments import (
    META,
    SegmentWriter,
    hour_start,
    hours_between,
    read_hours,
    to_batch,
)
from scoring.segments import expire as expire_hours
from tasks.core.paths import PREDICTION_LOG, PREDICTIONS_DB

log = logging.getLogger("churn.store")


def sqlite_url(registry_dir: Path | str) -> str:
    """The embedded SQLite store beside the registry."""
    return f"sqlite:///{Path(registry_dir).resolve() / PREDICTIONS_DB}"


def store_url(registry_dir: Path | str) -> str:
    """The prediction store: ``DATABASE_URL``, or the embedded SQLite store beside the registry."""
    return os.environ.get("DATABASE_URL") or sqlite_url(registry_dir)


METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions",
    METADATA,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_version", sa.String(32), nullable=False),  # no query selects by it
    sa.Column("record_id", sa.String(256)),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Integer, nullable=False),
    sa.Column("shadow_version", sa.String(32)),
    sa.Column("shadow_score", sa.Float),
    sa.Column("label", sa.Float),  # 0/1 for a yes/no problem, the number for a regression
    sa.Column("labelled_at", sa.DateTime(timezone=True)),
    sa.Column("labelled_by", sa.String(64)),
)
# every label set or changed: who, when, the old and the new value
LABEL_EVENTS = sa.Table(
    "label_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("old_label", sa.Float),
    sa.Column("new_label", sa.Float, nullable=False),
    sa.Column("labelled_by", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
# every request, counted per minute, endpoint and status with its latency buckets (by each
# worker; scoring/requests.py)
REQUEST_STATS = sa.Table(
    "request_stats",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("minute", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("buckets", sa.Text, nullable=False),
)
# columns added after the first release: created on an older store when it opens
ADDED_COLUMNS = {"predictions": {"labelled_by": "VARCHAR(64)"}}
# integer label columns of an older store, widened to hold a regression's labels when it opens
# (PostgreSQL only: SQLite keeps any number in a column of any declared type)
WIDENED_COLUMNS = {"predictions": ("label",), "label_events": ("old_label", "new_label")}


@dataclass(frozen=True)
class _Item:
    """One request's predictions, queued for the writer."""

    request_id: str
    created_at: dt.datetime
    model_version: str
    record_ids: list[str | None]
    features: Sequence[dict[str, Any]]  # rows, or the batch path's InputColumns
    scores: list[float]
    decisions: list[int]
    shadow_version: str | None
    shadow_scores: list[float] | None
    shadow: Any
    records: list[dict[str, Any]]
    signature: str | None
    queued: float = field(default_factory=time.monotonic)


@dataclass
class _Rows:
    """One request's rows of the log, column by column: what the SQL table and the
    segments' meta columns hold (built without a dict per row; the writer shares the GIL
    with the requests it logs)."""

    request_id: str
    created_at: dt.datetime
    model_version: str
    record_ids: list[str | None]
    scores: list[float]
    decisions: list[int]
    shadow_version: str | None
    shadow_scores: list[float] | None
    features: list[str] | None = None
    """The model inputs as JSON text when they go with the SQL rows (else "")."""
    first_row: int = 0
    """The row number of the first row (a part of a request, when a failed write is
    isolated row by row)."""

    def __len__(self) -> int:
        return len(self.scores)

    def columns(self) -> dict[str, Any]:
        """Each column as a sequence of ``len(self)`` values (:data:`ROW_COLUMNS` order)."""
        n = len(self)
        shadow = self.shadow_scores is not None
        return {
            "request_id": itertools.repeat(self.request_id, n),
            "row": range(self.first_row, self.first_row + n),
            "model_version": itertools.repeat(self.model_version, n),
            "record_id": self.record_ids,
            "features": self.features if self.features is not None else itertools.repeat("", n),
            "score": self.scores,
            "decision": self.decisions,
            "shadow_version": itertools.repeat(self.shadow_version if shadow else None, n),
            "shadow_score": self.shadow_scores if shadow else itertools.repeat(None, n),
            "created_at": itertools.repeat(self.created_at, n),
        }

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts (SQLAlchemy's insert, a dead letter)."""
        columns = self.columns()
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    def part(self, i: int) -> _Rows:
        """Row ``i`` alone."""
        features = None if self.features is None else self.features[i : i + 1]
        shadow = None if self.shadow_scores is None else self.shadow_scores[i : i + 1]
        return dataclasses.replace(
            self,
            record_ids=self.record_ids[i : i + 1],
            scores=self.scores[i : i + 1],
            decisions=self.decisions[i : i + 1],
            shadow_scores=shadow,
            features=features,
            first_row=self.first_row + i,
        )


ROW_COLUMNS = (
    "request_id",
    "row",
    "model_version",
    "record_id",
    "features",
    "score",
    "decision",
    "shadow_version",
    "shadow_score",
    "created_at",
)
"""The columns a prediction row is written with (:meth:`_Rows.columns`)."""


@dataclass(frozen=True)
class LabelOutcome:
    """What one label did: rows it matched, rows it set, rows it left (another label held)."""

    matched: int
    updated: int
    conflicts: int


Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The real time, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def file_clock(path: str | Path) -> Clock:
    """A simulated clock: each call reads the ISO time written in ``path`` (``make demo`` moves it).

    A missing or unreadable file is an error, never a silent fall back to the real time.
    """
    source = Path(path)

    def now() -> dt.datetime:
        try:
            value = dt.datetime.fromisoformat(source.read_text().strip())
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"simulated clock {source}: {exc} (unset CHURN_CLOCK_FILE to use the real time)"
            ) from exc
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

    return now


REPLAY_EVERY_S = 30.0
"""How often, at most, the writer replays dead letters after a write that went through."""
REPLAY_SETTLE_S = 10.0
"""A replayed dead-letter file moves aside once nobody has written to it for this long."""


def _replayable(kept: dict[str, Any]) -> dict[str, Any]:
    """A dead letter (a row's columns and the error) as the row to insert."""
    row = {name: kept[name] for name in ROW_COLUMNS}
    stamp = row["created_at"]
    if isinstance(stamp, str):
        row["created_at"] = dt.datetime.fromisoformat(stamp)
    return row


MAX_UNKEPT_ROWS = 200_000
"""Rows the writer holds in memory while it can neither write nor keep them (a full disk);
past that a row is lost, counted and logged."""


class PredictionStore:
    """Write predictions in the background; record labels; read windows back.

    ``clock`` stamps predictions and labels (default: the real time; the demo passes a
    simulated one). With ``log_dir`` (the API and batch scoring pass the registry's
    ``prediction_log``), model inputs go to typed Arrow segments there
    (:mod:`scoring.segments`) and the SQL row keeps ids, scores and labels;
    without it, inputs are kept as JSON in the row (as before the columnar log).

    The writer thread flushes every ``flush_s`` seconds: on SIGTERM the API's shutdown
    flushes everything accepted; a SIGKILL loses at most the last ``flush_s``. A write that
    fails is retried, then isolated row by row; a row that still fails is appended to
    ``<log_dir>/failed/<pid>.jsonl`` with the error (never dropped in silence), counted in
    ``failed_rows`` and logged. After a promotion, the previous champion's shadow scores are
    computed here, after the answer was sent; when more than ``shadow_backlog`` requests
    wait, shadow scoring is skipped for them and counted in ``shadow_skipped``.
    """

    def __init__(
        self,
        url: str,
        clock: Clock = utc_now,
        log_dir: Path | str | None = None,
        flush_s: float = 0.25,
        shadow_backlog: int = 2000,
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.on_failed = on_failed
        sqlite = url.startswith("sqlite")
        self.engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {}
        )
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:  # durable against a killed process
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        self._create_schema()
        self._insert_rows = _sqlite_insert(self.engine) if sqlite else _sqlalchemy_insert
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.segments = SegmentWriter(self.log_dir) if self.log_dir is not None else None
        self.flush_s, self.shadow_backlog = flush_s, shadow_backlog
        self.failed_rows = 0
        self.lost_rows = 0  # rows neither written nor kept (counted; /predict then 503s)
        self._cannot_keep = False
        self._unkept: list[tuple[dict[str, Any], BaseException]] = []  # until the disk frees
        self._replayed_at = -math.inf
        self.shadow_skipped = 0
        self.requests = RequestTally()
        self._stats_every_s, self._stats_written = 5.0, time.monotonic()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._writing_since: float | None = None
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._drain, name="prediction-store", daemon=True)
        self._writer.start()

    def _create_schema(self, attempts: int = 5) -> None:
        """Tables and added columns; several API workers starting on a new store race here,
        and a loser sees the winner's tables on its next try."""
        for attempt in range(attempts):
            try:
                METADATA.create_all(self.engine)
                self._add_columns()
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _add_columns(self) -> None:
        inspector = sa.inspect(self.engine)
        for table, columns in ADDED_COLUMNS.items():
            present = {c["name"] for c in inspector.get_columns(table)}
            with self.engine.begin() as conn:
                for name, kind in columns.items():
                    if name not in present:
                        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        if self.engine.dialect.name != "postgresql":
            return
        for table, names in WIDENED_COLUMNS.items():
            narrow = [
                c["name"]
                for c in inspector.get_columns(table)
                if c["name"] in names and isinstance(c["type"], sa.Integer)
            ]
            with self.engine.begin() as conn:
                for name in narrow:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {table} ALTER COLUMN {name} TYPE DOUBLE PRECISION"
                    )

    # ------------------------------------------------------------------ writing
    def _insert(self, requests: list[_Rows], attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    self._insert_rows(conn, requests)
                return
            except sa.exc.OperationalError:  # locked or unreachable: wait, then again
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _write(self, requests: list[_Rows]) -> None:
        """Insert queued requests; a failing insert is isolated per request, then per row."""
        try:
            self._insert(requests)
            if self._cannot_keep and not self._unkept:
                self._cannot_keep = False
            self._replay_due()
            return
        except Exception as exc:  # noqa: BLE001 - narrowed below, row by row
            if len(requests) == 1 and len(requests[0]) == 1:
                self._dead_letter(requests[0].dicts()[0], exc)
                return
        if len(requests) > 1:
            for request in requests:
                self._write([request])
        else:
            for i in range(len(requests[0])):
                self._write([requests[0].part(i)])

    def _dead_letter(self, row: dict[str, Any], exc: BaseException) -> None:
        """Keep a row the database refused in ``failed/``; log what really happened to it."""
        self.failed_rows += 1
        if self.on_failed is not None:
            self.on_failed()
        kept = None if self._unkept else self._keep_failed(row, exc)  # in order: held first
        if kept is not None:
            log.error(
                "could not write prediction row %s/%s (%s); kept in %s",
                row.get("request_id"),
                row.get("row"),
                exc.__class__.__name__,
                kept,
            )
            return
        self._cannot_keep = True  # /predict answers 503 until a write succeeds again
        if self.log_dir is not None and len(self._unkept) < MAX_UNKEPT_ROWS:
            self._unkept.append((row, exc))
            log.error(
                "could not write prediction row %s/%s (%s) nor keep it in %s (a full disk?): "
                "held in memory (%d rows) until the disk takes writes again; /predict answers "
                "503 meanwhile",
                row.get("request_id"),
                row.get("row"),
                exc.__class__.__name__,
                self.log_dir / "failed",
                len(self._unkept),
            )
            return
        self.lost_rows += 1
        log.error(
            "LOST prediction row %s/%s: the database refused it (%s) and it could not be kept (%s)",
            row.get("request_id"),
            row.get("row"),
            exc.__class__.__name__,
            "no log folder" if self.log_dir is None else f"{MAX_UNKEPT_ROWS} rows held already",
        )

    def _keep_failed(self, row: dict[str, Any], exc: BaseException) -> Path | None:
        """Append ``row`` to ``failed/<pid>.jsonl``, synced; its path, or None if it failed."""
        if self.log_dir is None:
            return None
        path = self.log_dir / "failed" / f"{os.getpid()}.jsonl"
        line = json.dumps({**row, "error": str(exc)[:500]}, default=str) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as out:
                start = out.tell()
                try:
                    out.write(line)
                    out.flush()
                    os.fsync(out.fileno())
                except OSError:
                    out.truncate(start)  # no half line: the replay reads whole lines only
                    raise
        except OSError:
            return None
        return path

    def _can_keep_again(self) -> None:
        """While rows could not be kept: whether the log folder takes a write again (a
        probe of 64 KiB, synced and removed), so /predict may accept again."""
        if self.log_dir is None:
            return
        probe = self.log_dir / f".probe-{os.getpid()}"
        try:
            with open(probe, "wb") as out:
                out.write(b"\0" * 65536)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            return
        finally:
            try:
                probe.unlink()
            except OSError:
                pass
        while self._unkept:  # the rows held in memory first, in order
            row, exc = self._unkept[0]
            if self._keep_failed(row, exc) is None:
                return
            self._unkept.pop(0)
        self._cannot_keep = False
        log.warning(
            "the prediction log can write again (rows held in memory kept in %s): /predict "
            "accepts predictions",
            self.log_dir / "failed",
        )

    def _replay_due(self) -> None:
        """After a write that went through: replay the dead letters, at most every
        :data:`REPLAY_EVERY_S` (the database that refused them may be back)."""
        if self.log_dir is None or time.monotonic() - self._replayed_at < REPLAY_EVERY_S:
            return
        self._replayed_at = time.monotonic()
        if not any((self.log_dir / "failed").glob("*.jsonl")):
            return
        try:
            done = self.replay_failed()
        except Exception:  # noqa: BLE001 - replayed again later; predictions go on
            log.exception("could not replay the dead letters of %s", self.log_dir / "failed")
            return
        if done["inserted"]:
            log.warning(
                "replayed %d dead-lettered prediction rows into the store (%d already there)",
                done["inserted"],
                done["present"],
            )

    def replay_failed(self, settle_s: float = REPLAY_SETTLE_S) -> dict[str, int]:
        """Insert every row kept in ``failed/*.jsonl`` that the store does not hold yet.

        Idempotent by (request id, row): run it as often as you like (``python -m
        service.replay`` does by hand; the writer does after a write that went through). A
        file all of whose rows are in the store and that nobody wrote for ``settle_s``
        seconds moves to ``failed/replayed/``.

        Returns
        -------
        dict
            ``inserted``, ``present`` (already in the store), ``files`` read, ``moved``.
        """
        out = {"inserted": 0, "present": 0, "files": 0, "moved": 0}
        if self.log_dir is None:
            return out
        folder = self.log_dir / "failed"
        for path in sorted(folder.glob("*.jsonl")):
            rows = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(_replayable(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a torn line: its row was never answered as kept
            out["files"] += 1
            fresh = self._missing(rows)
            if fresh:
                with self.engine.begin() as conn:
                    conn.execute(PREDICTIONS.insert(), fresh)
            out["inserted"] += len(fresh)
            out["present"] += len(rows) - len(fresh)
            if time.time() - path.stat().st_mtime >= settle_s:
                (folder / "replayed").mkdir(exist_ok=True)
                stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
                path.rename(folder / "replayed" / f"{path.stem}.{stamp}.jsonl")
                out["moved"] += 1
        return out

    def _missing(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows whose (request id, row) the store does not hold, each once."""
        ids = sorted({r["request_id"] for r in rows})
        held: set[tuple[str, int]] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = sa.select(PREDICTIONS.c.request_id, PREDICTIONS.c.row).where(
                    PREDICTIONS.c.request_id.in_(chunk)
                )
                held.update((r[0], int(r[1])) for r in conn.execute(query))
        out = []
        for row in rows:
            key = (row["request_id"], int(row["row"]))
            if key not in held:
                held.add(key)
                out.append(row)
        return out

    def _rows(self, item: _Item, shadow: tuple[str | None, list[float] | None]) -> _Rows:
        shadow_version, shadow_scores = item.shadow_version, item.shadow_scores
        if item.shadow is not None:
            shadow_version, shadow_scores = shadow
        return _Rows(
            item.request_id,
            item.created_at,
            item.model_version,
            item.record_ids,
            list(map(float, item.scores)),
            list(map(int, item.decisions)),
            shadow_version,
            None if shadow_scores is None else list(map(float, shadow_scores)),
        )

    def _append_inputs(self, work: list[_Item], rows: list[_Rows]) -> None:
        """Append the model inputs of one flush to the segment log: one batch per hour and
        model version (a batch per request costs milliseconds of Arrow set-up each, and the
        writer then falls behind under load). Inputs that cannot be appended (or with no
        segment log) go as JSON in their SQL rows."""
        as_json = list(range(len(work)))
        if self.segments is not None:
            # one batch per hour and model version, and per form of the inputs (rows, or the
            # batch path's columns: a batch of those is put together column-wise)
            groups: dict[tuple[dt.datetime, str, bool], list[int]] = {}
            for k, item in enumerate(work):
                columnar = isinstance(item.features, InputColumns)
                key = (hour_start(item.created_at), item.model_version, columnar)
                groups.setdefault(key, []).append(k)
            as_json = []
            for (hour, version, _), members in groups.items():
                try:
                    meta: dict[str, list[Any]] = {name: [] for name in META}
                    for k in members:
                        for name, values in rows[k].columns().items():
                            if name in meta:
                                meta[name].extend(values)
                    batch = to_batch(meta, [work[k].features for k in members])
                    self.segments.append(hour, version, batch)
                except Exception:  # noqa: BLE001 - the inputs then go with the SQL rows
                    log.exception("could not append %d requests to the segment log", len(members))
                    as_json += members
        for k in as_json:
            rows[k].features = [json.dumps(inputs, default=str) for inputs in work[k].features]

    def count_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request (written with the next flush of the stats)."""
        self.requests.add(self.clock(), endpoint, status, seconds)

    def _write_stats(self) -> None:
        self._stats_written = time.monotonic()
        rows = self.requests.take()
        if not rows:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(REQUEST_STATS.insert(), rows)
        except Exception:  # noqa: BLE001 - counts are not predictions: log and go on
            log.exception("could not write the request counts of %d minutes", len(rows))

    def request_stats(self, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """Requests, p50/p99 latency and 4xx/5xx shares of ``[since, until)`` (all workers)."""
        self.flush()
        self._write_stats()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(REQUEST_STATS).where(
                    (REQUEST_STATS.c.minute >= since) & (REQUEST_STATS.c.minute < until)
                )
            ).mappings()
            return summarise(rows)

    def _shadow_all(self, work: list[_Item]) -> list[tuple[str | None, list[float] | None]]:
        """The shadow's (version, scores) for each request of a flush ((None, None) when it
        has no shadow or the shadow is skipped). Requests whose rows the shadow reads as the
        champion did are scored together: one model call per flush and form of the inputs,
        not one per request (under load each call waits for the GIL again)."""
        out: list[tuple[str | None, list[float] | None]] = [(None, None)] * len(work)
        wanted = [k for k, item in enumerate(work) if item.shadow is not None]
        if not wanted:
            return out
        if self._queue.qsize() > self.shadow_backlog or self.lag_s() > 2 * self.flush_s:
            # behind: the shadow is best effort, keeping the predictions is not
            self.shadow_skipped += sum(len(work[k].scores) for k in wanted)
            return out
        groups: dict[tuple[Any, ...], list[int]] = {}
        for k in wanted:
            item = work[k]
            compiled = getattr(item.shadow, "compiled", None)
            if compiled is not None and item.signature == compiled.signature:
                # the champion's input rows are the shadow's too: only its model runs
                key: tuple[Any, ...] = (id(item.shadow), isinstance(item.features, InputColumns))
            else:  # the shadow reads this request's records itself
                key = ("records", k)
            groups.setdefault(key, []).append(k)
        for key, members in groups.items():
            scored = self._shadow_scores([work[k] for k in members], key[0] != "records")
            for k, one in zip(members, scored):
                out[k] = one
        return out

    def _shadow_scores(
        self, items: list[_Item], from_rows: bool
    ) -> list[tuple[str | None, list[float] | None]]:
        """Shadow scores of requests with one shadow: its model on their input rows together
        (``from_rows``), else its own reading of one request's records."""
        shadow = items[0].shadow
        try:
            if from_rows:
                parts = [item.features for item in items]
                if all(isinstance(p, InputColumns) for p in parts):
                    rows: Sequence[dict[str, Any]] = InputColumns.concat(parts)
                else:
                    rows = [row for part in parts for row in part]
                scores = shadow.compiled.score_rows(rows)
            else:
                scores = shadow.score_many(items[0].records)[0]
            scores = shadow.objective.logged_scores(scores)
        except Exception:  # noqa: BLE001 - the shadow never fails a logged prediction
            log.warning(
                "shadow model %s could not score request(s) %s",
                shadow.version.version,
                ", ".join(item.request_id for item in items[:3]),
            )
            return [(None, None)] * len(items)
        out: list[tuple[str | None, list[float] | None]] = []
        start = 0
        for item in items:
            n = len(item.scores)
            out.append((shadow.version.version, scores[start : start + n]))
            start += n
        return out

    def _drain(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=1.0 if self._cannot_keep else self._stats_every_s)
            except queue.Empty:  # no prediction for a while: the request counts still go out
                if self._cannot_keep:
                    self._can_keep_again()
                if time.monotonic() - self._stats_written >= self._stats_every_s:
                    self._write_stats()
                continue
            items = [first]
            if first is not None:
                self._writing_since = first.queued  # taken, not written yet
                # gather what arrives until the oldest has waited one interval
                self._wake.wait(max(0.0, first.queued + self.flush_s - time.monotonic()))
                self._wake.clear()
            while items[-1] is not None:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [i for i in items if i is not None]
            try:
                if work:
                    rows = [self._rows(i, s) for i, s in zip(work, self._shadow_all(work))]
                    self._append_inputs(work, rows)
                    self._write(rows)
            except Exception:  # noqa: BLE001 - keep serving; every row was dead-lettered
                log.exception("could not write %d prediction requests", len(work))
            finally:
                self._writing_since = None
                for _ in items:
                    self._queue.task_done()
            if items[-1] is None or time.monotonic() - self._stats_written >= self._stats_every_s:
                self._write_stats()
            if items[-1] is None:
                return

    def log(
        self,
        request_id: str,
        model_version: str,
        record_ids: list[str | None],
        features: Sequence[dict[str, Any]],
        scores: list[float],
        decisions: list[int],
        shadow_version: str | None = None,
        shadow_scores: list[float] | None = None,
        shadow: Any = None,
        records: list[dict[str, Any]] | None = None,
        signature: str | None = None,
    ) -> None:
        """Queue one request's predictions for writing.

        ``shadow`` (a loaded model) scores ``records`` in the background (only its model,
        on ``features``, when the compiled ``signature`` of the rows is the shadow's own); or
        pass ``shadow_version`` and ``shadow_scores`` already computed.
        """
        self._queue.put(
            _Item(
                request_id,
                self.clock(),
                model_version,
                list(record_ids),
                features,
                list(scores),
                list(decisions),
                shadow_version,
                shadow_scores,
                shadow,
                records or [],
                signature,
            )
        )

    def lag_s(self) -> float:
        """How long the oldest accepted prediction not yet written has waited (0: none;
        infinite while a row could be neither written nor kept).

        The API refuses new predictions while this passes its bound, so that what a
        killed server loses stays within about one second however hard it is driven.
        """
        if self._cannot_keep:  # rows are being lost: accept nothing it could not keep
            return math.inf
        oldest = self._writing_since
        try:
            head = self._queue.queue[0]  # the writer only ever takes from the left
        except IndexError:
            head = None
        if head is not None and (oldest is None or head.queued < oldest):
            oldest = head.queued
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    def flush(self) -> None:
        """Wait until every queued prediction is written."""
        self._wake.set()
        self._queue.join()

    def add_label(
        self,
        request_id: str,
        label: float,
        row: int | None = None,
        by: str = "unknown",
        overwrite: bool = False,
    ) -> LabelOutcome:
        """Record ground truth for an earlier request (all its rows, or one).

        A row that already holds a different label keeps it unless ``overwrite``; every
        label set or changed is recorded in ``label_events`` with who and when.
        """
        self.flush()
        condition = PREDICTIONS.c.request_id == request_id
        if row is not None:
            condition = condition & (PREDICTIONS.c.row == row)
        now, label = self.clock(), float(label)
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(PREDICTIONS.c.row, PREDICTIONS.c.label).where(condition)
            ).all()
            todo = [(r, old) for r, old in current if old is None or (old != label and overwrite)]
            conflicts = sum(1 for _, old in current if old is not None and old != label)
            if todo:
                rows = [r for r, _ in todo]
                conn.execute(
                    PREDICTIONS.update()
                    .where((PREDICTIONS.c.request_id == request_id) & PREDICTIONS.c.row.in_(rows))
                    .values(label=label, labelled_at=now, labelled_by=by)
                )
                conn.execute(
                    LABEL_EVENTS.insert(),
                    [
                        {
                            "request_id": request_id,
                            "row": r,
                            "old_label": old,
                            "new_label": label,
                            "labelled_by": by,
                            "at": now,
                        }
                        for r, old in todo
                    ],
                )
        for r, old in todo:
            if old is not None:
                log.warning(
                    "label of %s row %d changed %s -> %s by %s", request_id, r, old, label, by
                )
        return LabelOutcome(len(current), len(todo), 0 if overwrite else conflicts)

    def get(self, request_id: str) -> list[dict[str, Any]]:
        """The stored rows of one request."""
        self.flush()
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(PREDICTIONS)
                    .where(PREDICTIONS.c.request_id == request_id)
                    .order_by(PREDICTIONS.c.row)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def window(
        self, since: dt.datetime, until: dt.datetime | None = None, by: str = "created_at"
    ) -> list[dict[str, Any]]:
        """Every stored prediction made (``by="created_at"``) or labelled (``by="labelled_at"``)
        in ``[since, until)``, oldest first."""
        self.flush()
        if by not in ("created_at", "labelled_at"):
            raise ValueError(f"window by 'created_at' or 'labelled_at', not {by!r}")
        column = PREDICTIONS.c[by]
        condition = column >= since
        if until is not None:
            condition = condition & (column < until)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(PREDICTIONS)
                .where(condition)
                .order_by(PREDICTIONS.c.created_at, PREDICTIONS.c.request_id, PREDICTIONS.c.row)
            )
            return [dict(r) for r in rows.mappings()]

    def window_frame(
        self, since: dt.datetime, until: dt.datetime, by: str = "created_at"
    ) -> pd.DataFrame:
        """The predictions made (or labelled) in ``[since, until)`` as one frame: their model
        inputs (by name) beside ``request_id``, ``row``, ``created_at``, ``model_version``,
        ``score``, ``decision``, ``label``, ``shadow_version`` and ``shadow_score``, oldest
        first.

        Inputs come from the segment log (typed columns, only the hours needed) and, for rows
        written before it or while it failed, from the row's JSON.
        """
        self.flush()
        if by not in ("created_at", "labelled_at"):
            raise ValueError(f"window by 'created_at' or 'labelled_at', not {by!r}")
        column = PREDICTIONS.c[by]
        keys = ["request_id", "row"]
        meta = [c for c in _META_COLUMNS if c != "features"]
        condition = (column >= since) & (column < until)
        logged = pd.DataFrame()
        if by == "created_at" and self.log_dir is not None:
            logged = read_hours(self.log_dir, hours_between(since, until))
            if len(logged):
                stamp = logged["created_at"]
                logged = logged[(stamp >= pd.Timestamp(since)) & (stamp < pd.Timestamp(until))]
            # the labels, and rows whose inputs are JSON (older stores, a failed segment write)
            extra = self._read(
                sa.select(PREDICTIONS.c.request_id, PREDICTIONS.c.row, PREDICTIONS.c.label).where(
                    condition & PREDICTIONS.c.label.is_not(None)
                )
            )
            legacy = self._read(
                sa.select(*[PREDICTIONS.c[c] for c in _META_COLUMNS]).where(
                    condition & (PREDICTIONS.c.features != "")
                )
            )
            if len(extra) and len(logged):
                logged = logged.merge(extra[[*keys, "label"]], on=keys, how="left")
            elif len(logged):
                logged["label"] = np.nan
            frame = _concat(logged, _expand(legacy))
        else:
            rows = self._read(
                sa.select(*[PREDICTIONS.c[c] for c in _META_COLUMNS]).where(condition)
            )
            frame = _expand(rows[rows["features"] != ""]) if len(rows) else pd.DataFrame()
            fresh = rows[rows["features"] == ""] if len(rows) else rows
            if len(fresh) and self.log_dir is not None:
                stamps = pd.to_datetime(fresh["created_at"], utc=True)
                hours = sorted({hour_start(t.to_pydatetime()) for t in stamps})
                inputs = read_hours(self.log_dir, hours)
                inputs = inputs.drop(columns=[c for c in meta if c in inputs and c not in keys])
                fresh = fresh.drop(columns=["features"]).merge(inputs, on=keys, how="left")
                frame = _concat(frame, fresh)
        if frame is None or frame.empty:
            return pd.DataFrame()
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame.sort_values(["created_at", "request_id", "row"], ignore_index=True)

    def _read(self, statement: Any) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(statement)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def expire(self, before: dt.datetime) -> dict[str, int]:
        """Remove predictions (rows, segments, label events, request counts) made before
        ``before``."""
        self.flush()
        self._write_stats()
        with self.engine.begin() as conn:
            rows = conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.created_at < before))
            events = conn.execute(LABEL_EVENTS.delete().where(LABEL_EVENTS.c.at < before))
            conn.execute(REQUEST_STATS.delete().where(REQUEST_STATS.c.minute < before))
        hours = expire_hours(self.log_dir, before) if self.log_dir is not None else 0
        return {"rows": rows.rowcount, "label_events": events.rowcount, "segment_hours": hours}

    def close(self) -> None:
        """Flush and stop the writer (rows held for a full disk: kept now, or counted lost)."""
        self.flush()
        self._queue.put(None)
        self._writer.join(timeout=10)
        if self._unkept:
            self._can_keep_again()
        if self._unkept:
            self.lost_rows += len(self._unkept)
            log.error(
                "LOST %d prediction rows at shutdown: the disk still takes no write (first: %s)",
                len(self._unkept),
                self._unkept[0][0].get("request_id"),
            )
            self._unkept.clear()
        if self.segments is not None:
            self.segments.close()
        self.engine.dispose()


_META_COLUMNS = (
    "request_id",
    "row",
    "created_at",
    "model_version",
    "record_id",
    "score",
    "decision",
    "shadow_version",
    "shadow_score",
    "label",
    "features",
)


def _sqlalchemy_insert(conn: Any, requests: list[_Rows]) -> None:
    """Prediction rows inserted through SQLAlchemy (PostgreSQL and any other database)."""
    conn.execute(PREDICTIONS.insert(), [row for request in requests for row in request.dicts()])


def _sqlite_insert(engine: sa.Engine) -> Callable[[Any, list[_Rows]], None]:
    """Prediction rows inserted through the SQLite driver, thousands of rows a statement.

    ``executemany`` releases the GIL around every row and waits for it again; with request
    threads busy in the same process each wait can last the interpreter's switch interval,
    and the log writer fell tens of microseconds a row behind (milliseconds with threads that
    never block). One multi-row ``INSERT`` per few thousand rows binds in C and runs in SQLite
    without the GIL; its values are laid out from the request's columns without a Python
    step per row. Times are stored as SQLAlchemy's own DateTime processor writes them, so
    every query reads them back the same.
    """
    skip = {"label", "labelled_at", "labelled_by", "created_at"}
    names = [c.name for c in PREDICTIONS.columns if c.name not in skip] + ["created_at"]
    if tuple(names) != ROW_COLUMNS:  # pragma: no cover - a schema change must update both
        raise TypeError(f"the predictions table's columns {names} are not {ROW_COLUMNS}")
    quote = engine.dialect.identifier_preparer.quote
    head = f"INSERT INTO {PREDICTIONS.name} ({', '.join(quote(n) for n in names)}) VALUES "
    one = f"({', '.join('?' * len(names))})"
    kind = PREDICTIONS.c.created_at.type.dialect_impl(engine.dialect)
    stamp = kind.bind_processor(engine.dialect)
    if stamp is None:  # pragma: no cover - SQLite's DATETIME always writes text
        raise TypeError(f"no text form for {kind} on {engine.dialect.name}")
    statements: dict[int, str] = {}
    width = len(names)

    def insert(conn: Any, requests: list[_Rows]) -> None:
        raw = conn.connection.driver_connection
        per = max(1, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
        flat: list[Any] = []
        for request in requests:
            columns = request.columns()
            columns["created_at"] = itertools.repeat(stamp(request.created_at), len(request))
            flat += itertools.chain.from_iterable(zip(*columns.values()))
        rows = len(flat) // width
        for start in range(0, rows, per):
            n = min(per, rows - start)
            statement = statements.get(n)
            if statement is None:
                statement = head + ", ".join([one] * n)
                if n == per:  # the full size repeats: keep its text
                    statements[n] = statement
            conn.exec_driver_sql(statement, tuple(flat[start * width : (start + n) * width]))

    return insert


def _concat(*frames: pd.DataFrame) -> pd.DataFrame:
    parts = [f for f in frames if f is not None and len(f)]
    if len(parts) <= 1:
        return parts[0] if parts else pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def _expand(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose inputs are JSON text, with the inputs as columns."""
    if rows is None or rows.empty:
        return pd.DataFrame()
    inputs = pd.DataFrame.from_records([json.loads(f) for f in rows["features"]])
    rows = rows.assign(created_at=pd.to_datetime(rows["created_at"], utc=True))
    return pd.concat([inputs, rows.drop(columns=["features"]).reset_index(drop=True)], axis=1)


def log_dir_of(registry_dir: Path | str) -> Path:
    """The segment log beside a registry."""
    return Path(registry_dir) / PREDICTION_LOG


def open_store(registry_dir: Path | str, clock: Clock = utc_now) -> PredictionStore:
    """The prediction store of a registry: ``DATABASE_URL`` or SQLite, with its segment log."""
    return PredictionStore(store_url(registry_dir), clock, log_dir=log_dir_of(registry_dir))
