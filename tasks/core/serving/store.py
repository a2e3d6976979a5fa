"""The prediction store: every prediction, and the ground truth that arrives later.

SQLite by default (``predictions.db`` beside the registry); PostgreSQL (or any SQLAlchemy
database) when ``DATABASE_URL`` says so. Only parameterised statements are used. Rows are
written by a background thread in batches, so logging adds almost nothing to a request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tasks.core.paths import PREDICTIONS_DB

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
    sa.Column("model_version", sa.String(32), nullable=False, index=True),
    sa.Column("record_id", sa.String(256)),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Integer, nullable=False),
    sa.Column("shadow_version", sa.String(32)),
    sa.Column("shadow_score", sa.Float),
    sa.Column("label", sa.Integer),
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
    sa.Column("old_label", sa.Integer),
    sa.Column("new_label", sa.Integer, nullable=False),
    sa.Column("labelled_by", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
# columns added after the first release: created on an older store when it opens
ADDED_COLUMNS = {"predictions": {"labelled_by": "VARCHAR(64)"}}


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


class PredictionStore:
    """Write predictions in the background; record labels; read windows back.

    ``clock`` stamps predictions and labels (default: the real time; the demo passes a
    simulated one).
    """

    def __init__(self, url: str, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        METADATA.create_all(self.engine)
        self._add_columns()
        self.failed_rows = 0
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._drain, name="prediction-store", daemon=True)
        self._writer.start()

    def _add_columns(self) -> None:
        inspector = sa.inspect(self.engine)
        for table, columns in ADDED_COLUMNS.items():
            present = {c["name"] for c in inspector.get_columns(table)}
            with self.engine.begin() as conn:
                for name, kind in columns.items():
                    if name not in present:
                        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _write(self, requests: list[list[dict[str, Any]]]) -> None:
        """Insert queued requests; a failing insert is retried per request, then per row.

        One bad row never takes the others with it; a row that still fails is counted in
        ``failed_rows`` and logged with its request id (``/metrics`` and monitoring report it).
        """
        rows = [row for request in requests for row in request]
        try:
            with self.engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), rows)
            return
        except Exception:  # noqa: BLE001 - narrowed below, row by row
            if len(rows) == 1:
                self.failed_rows += 1
                log.exception(
                    "could not write prediction row %s/%s", rows[0]["request_id"], rows[0]["row"]
                )
                return
        if len(requests) > 1:
            for request in requests:
                self._write([request])
        else:
            for row in rows:
                self._write([[row]])

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                requests = [batch]
                while not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        self._queue.put(None)
                        self._queue.task_done()
                        break
                    requests.append(more)
                    self._queue.task_done()
                self._write(requests)
            except Exception:  # keep serving even if the store is briefly unavailable
                self.failed_rows += len(batch or [])
                log.exception("could not write %d prediction rows", len(batch or []))
            finally:
                self._queue.task_done()

    def log(
        self,
        request_id: str,
        model_version: str,
        record_ids: list[str],
        features: list[dict[str, Any]],
        scores: list[float],
        decisions: list[int],
        shadow_version: str | None = None,
        shadow_scores: list[float] | None = None,
    ) -> None:
        """Queue one request's predictions for writing."""
        now = self.clock()
        self._queue.put(
            [
                {
                    "request_id": request_id,
                    "row": i,
                    "created_at": now,
                    "model_version": model_version,
                    "record_id": record_ids[i],
                    "features": json.dumps(features[i], default=str),
                    "score": float(scores[i]),
                    "decision": int(decisions[i]),
                    "shadow_version": shadow_version,
                    "shadow_score": float(shadow_scores[i]) if shadow_scores is not None else None,
                }
                for i in range(len(scores))
            ]
        )

    def flush(self) -> None:
        """Wait until every queued prediction is written."""
        self._queue.join()

    def add_label(
        self,
        request_id: str,
        label: int,
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
        now, label = self.clock(), int(label)
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
                    "label of %s row %d changed %d -> %d by %s", request_id, r, old, label, by
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

    def close(self) -> None:
        """Flush and stop the writer."""
        self.flush()
        self._queue.put(None)
        self._writer.join(timeout=10)
        self.engine.dispose()
