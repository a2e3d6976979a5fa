"""The columnar half of the prediction log: model inputs as typed Arrow segments.

Each API worker (and each batch-scoring run) appends its predictions to its own Arrow IPC
stream file per hour and model version: ``<log>/<YYYY-MM-DD>/<HH>/<version>.<pid>.<n>.arrows``.
A batch is appended at every flush, unbuffered, so a killed process loses at most what it
had not flushed yet, and a reader sees every complete batch of a file still being written
(it stops at a torn last one). A write that fails (a full disk) ends its file at the last
complete batch, and the next batch starts a new file. No two writers share a
file, so several workers never lose or duplicate a row. Reading a window opens only the
hours it covers: a million rows read in well under a second.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from scoring.compiled import InputColumns

log = logging.getLogger("churn.store")

SUFFIX = ".arrows"
META = {
    "request_id": pa.string(),
    "row": pa.int32(),
    "created_at": pa.timestamp("us", tz="UTC"),
    "model_version": pa.string(),
    "record_id": pa.string(),
    "score": pa.float64(),
    "decision": pa.int8(),
    "shadow_version": pa.string(),
    "shadow_score": pa.float64(),
}
_serial = itertools.count()


def hour_start(when: dt.datetime) -> dt.datetime:
    """The start of the UTC hour that holds ``when``."""
    return when.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def hour_dir(root: Path, when: dt.datetime) -> Path:
    """The folder of one hour's segments (UTC)."""
    when = when.astimezone(dt.timezone.utc)
    return root / when.strftime("%Y-%m-%d") / when.strftime("%H")


def _input_array(values: list[Any]) -> pa.Array:
    """A model input as float64 (numbers; NaN and None missing) or string (anything else)."""
    try:
        array = pa.array(values, from_pandas=True)  # NaN -> null
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed kinds: as text
        array = None
    if array is not None:
        kind = array.type
        if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind):
            return array.cast(pa.float64())
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return array.cast(pa.string())
    return pa.array(
        [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
        type=pa.string(),
    )


def to_batch(meta: dict[str, list[Any]], parts: list[Sequence[dict[str, Any]]]) -> pa.RecordBatch:
    """Log rows (the :data:`META` columns, one value per prediction) and their model inputs
    as one typed record batch.

    ``parts`` holds each request's model inputs, in the order of the rows: rows as dicts, or
    the compiled batch path's :class:`InputColumns`. Columns are converted by Arrow in C (a
    Python loop per cell costs the writer several microseconds a row, and it shares the GIL
    with the requests it logs); :func:`input_columns` gives each input the type
    :func:`_input_array` defines.
    """
    columns: dict[str, pa.Array] = {
        name: pa.array(meta[name], type=kind) for name, kind in META.items()
    }
    for name, array in input_columns(parts).items():
        columns[f"in.{name}"] = array
    return pa.RecordBatch.from_pydict(columns)


def input_columns(parts: list[Sequence[dict[str, Any]]]) -> dict[str, pa.Array]:
    """The model inputs as typed columns, by name (what :func:`_input_array` makes of each)."""
    if parts and all(isinstance(p, InputColumns) for p in parts):
        names = (list(parts[0].numeric), list(parts[0].categorical))
        if all((list(p.numeric), list(p.categorical)) == names for p in parts[1:]):
            batch = InputColumns.concat(parts)
            columns = {  # float64 arrays: NaN is missing, as pandas means it
                name: pa.array(numbers, type=pa.float64(), from_pandas=True)
                for name, numbers in batch.numeric.items()
            }
            for name, values in batch.categorical.items():
                columns[name] = _input_array(values)
            return columns
    inputs = [row for part in parts for row in part]
    names = list(dict.fromkeys(k for row in inputs[:1] for k in row))
    table = None
    if all(row.keys() == inputs[0].keys() for row in inputs[1:]):
        try:  # Arrow converts the rows in one call
            table = pa.RecordBatch.from_pylist(inputs)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            pass  # mixed kinds in a column: column by column below
    else:
        names = list(dict.fromkeys(k for row in inputs for k in row))
    columns = {}
    for name in names:
        typed = None if table is None else _as_input(table.column(name))
        if typed is None:  # booleans, dates, mixed kinds...: as _input_array spells them
            typed = _input_array([row.get(name) for row in inputs])
        columns[name] = typed
    return columns


def _as_input(array: pa.Array) -> pa.Array | None:
    """A column Arrow read on its own, typed as :func:`_input_array` types it (None for the
    kinds that function spells out itself)."""
    kind = array.type
    if pa.types.is_floating(kind):
        nan = pc.is_nan(array)
        if pc.any(nan).as_py():  # NaN is missing, as pandas means it
            array = pc.if_else(nan, pa.scalar(None, kind), array)
        return array.cast(pa.float64())
    if pa.types.is_integer(kind) or pa.types.is_null(kind):
        return array.cast(pa.float64())
    if pa.types.is_string(kind):
        return array
    return None


class SegmentWriter:
    """Appends record batches to this process's open segments (one per hour and schema)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._open: dict[tuple[Path, str, pa.Schema], tuple[BinaryIO, Any]] = {}

    def append(self, hour: dt.datetime, version: str, batch: pa.RecordBatch) -> None:
        """Append ``batch`` to the segment of ``hour`` and ``version`` (flushed to the OS).

        A write that fails (a full disk) discards that stream: the file is cut back to its
        last complete batch and closed, and the next batch starts a new file, so no batch
        is ever appended after a torn one. The error is raised: the caller keeps ``batch``
        some other way.
        """
        folder = hour_dir(self.root, hour)
        key = (folder, version, batch.schema)
        if key not in self._open:
            for old in [k for k in self._open if k[0] != folder]:  # the hour turned
                self._close(old)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{_safe(version)}.{os.getpid()}.{next(_serial)}{SUFFIX}"
            # unbuffered: what a failed write leaves is all on disk, and cut away below
            sink = open(folder / name, "ab", buffering=0)  # noqa: SIM115 - kept open
            try:
                self._open[key] = (sink, ipc.new_stream(sink, batch.schema))
            except (OSError, pa.ArrowException):
                sink.close()
                _remove_quietly(folder / name)  # no stream began: nothing to read there
                raise
        sink, writer = self._open[key]
        good = os.fstat(sink.fileno()).st_size
        try:
            writer.write_batch(batch)
        except (OSError, pa.ArrowException):
            self._discard(key, good)
            raise

    def _discard(self, key: tuple[Path, str, pa.Schema], good: int) -> None:
        """Drop a stream whose last write failed: cut its file back to ``good`` bytes (the
        end of its last complete batch) and close it without an end marker."""
        sink, _ = self._open.pop(key)
        try:
            os.ftruncate(sink.fileno(), good)
        except OSError:
            pass  # a reader still stops at the torn batch, and no batch follows it
        try:
            sink.close()
        except OSError:
            pass

    def _close(self, key: tuple[Path, str, pa.Schema]) -> None:
        sink, writer = self._open.pop(key)
        try:
            writer.close()
        finally:
            sink.close()

    def close(self) -> None:
        """Close every open segment (writes the end-of-stream marker)."""
        for key in list(self._open):
            self._close(key)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in version) or "none"


def read_segment(path: Path) -> pa.Table | None:
    """Every complete batch of one segment (a file still being written, or torn by a kill,
    gives what was flushed before)."""
    batches = []
    try:
        with open(path, "rb") as source:
            reader = ipc.open_stream(source)
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
            schema = reader.schema
    except (pa.ArrowException, OSError) as exc:  # a torn last batch: keep those before it
        if not batches:
            log.warning("prediction log segment %s unreadable (%s); skipped", path, exc)
            return None
        schema = batches[0].schema
    return pa.Table.from_batches(batches, schema=schema) if batches else None


def hours_between(since: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Every UTC hour that overlaps ``[since, until)``."""
    start = hour_start(since)
    out = []
    while start < until:
        out.append(start)
        start += dt.timedelta(hours=1)
    return out


def read_hours(root: Path, hours: list[dt.datetime]) -> pd.DataFrame:
    """The logged rows of the given hours, inputs as plain column names (``in.x`` -> ``x``)."""
    frames = []
    for hour in hours:
        folder = hour_dir(root, hour)
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            table = read_segment(path)
            if table is not None and table.num_rows:
                frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(META))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.rename(columns={c: c[3:] for c in frame.columns if c.startswith("in.")})


def expire(root: Path, before: dt.datetime) -> int:
    """Remove the hours that end at or before ``before``; returns how many were removed."""
    removed = 0
    if not root.is_dir():
        return 0
    cutoff = before.astimezone(dt.timezone.utc)
    for day in sorted(p for p in root.iterdir() if p.is_dir()):
        for hour in sorted(p for p in day.iterdir() if p.is_dir()):
            try:
                start = dt.datetime.strptime(f"{day.name} {hour.name}", "%Y-%m-%d %H")
            except ValueError:
                continue
            if start.replace(tzinfo=dt.timezone.utc) + dt.timedelta(hours=1) <= cutoff:
                shutil.rmtree(hour)
                removed += 1
        if not any(day.iterdir()):
            day.rmdir()
    return removed
