"""Data sources: the built-in simulator, CSV, Parquet and SQL.

Each reader returns the data as the source delivers it (CSV cells stay text, so cleaning
sees exactly what was exported) plus, for the simulator, the oracle probabilities. The
batch comes as consecutive parts of at most about ``compute.partition_rows`` rows, so a
batch larger than memory is never held at once: the simulator makes a part from a run of
days, CSV files are read in chunks and Parquet files by row batches. (A SQL query's result
is read whole, then cut into parts.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import CollectParams
from tasks.core.data.simulator import simulate_day
from tasks.core.errors import StepError

STEP = "collect"


Part = tuple[pd.DataFrame, "pd.DataFrame | None"]
"""One part of a batch: its rows as delivered, and the simulator's oracle for them (or None)."""


@dataclass(frozen=True)
class Collected:
    """A batch read from a source, with what is needed to record its provenance.

    ``read_parts()`` reads the batch (again, on each call) as consecutive parts;
    ``data`` and ``oracle`` put them together in memory, for small batches and tests.
    """

    read_parts: Callable[[], Iterator[Part]]
    source: dict[str, Any]
    window: dict[str, str] | None = field(default=None)

    @property
    def data(self) -> pd.DataFrame:
        """The whole batch as one frame."""
        return pd.concat([d for d, _ in self.read_parts()], ignore_index=True)

    @property
    def oracle(self) -> pd.DataFrame | None:
        """The whole batch's oracle, or None."""
        parts = [o for _, o in self.read_parts() if o is not None]
        return pd.concat(parts, ignore_index=True) if parts else None


def sliced(frame: pd.DataFrame, rows: int) -> Iterator[Part]:
    """A frame read whole, as consecutive parts of ``rows`` rows (at least one part)."""
    for start in range(0, max(len(frame), 1), rows):
        yield frame.iloc[start : start + rows].reset_index(drop=True), None


def simulated_parts(params: CollectParams, rows: int) -> Iterator[Part]:
    """The simulator's window as parts of whole days, about ``rows`` rows each.

    Each day depends only on the seed and the date, so the parts put together are the
    same rows, in the same order, as the whole window simulated at once.
    """
    sim, window = params.simulator, params.window
    if window.end < window.start:
        raise ValueError(f"window end {window.end} is before start {window.start}")
    n_days = (window.end - window.start).days + 1
    days = [window.start + dt.timedelta(days=k) for k in range(n_days)]
    per_part = max(1, rows // max(sim.customers_per_day, 1))
    for at in range(0, len(days), per_part):
        batches = [
            simulate_day(
                d,
                sim.customers_per_day,
                sim.seed,
                sim.drift.kind,
                sim.drift.start,
                sim.drift.strength,
                sim.target,
            )
            for d in days[at : at + per_part]
        ]
        data = pd.concat([b.data for b in batches], ignore_index=True)
        for column in data.columns:
            if data[column].dtype == object:
                data[column] = data[column].astype("string")
        yield data, pd.concat([b.oracle for b in batches], ignore_index=True)


def safe_source_path(path: str, root: Path, params: CollectParams) -> Path:
    """Resolve ``path`` (links followed) and refuse it outside the configured data folder.

    Parameters
    ----------
    path : str
        ``collect.path`` as written in params (relative to the project root, or absolute).
    root : Path
        Project root.
    params : CollectParams

    Returns
    -------
    Path
        The resolved file.

    Raises
    ------
    StepError
        If the file is missing, too large, or outside ``collect.data_dir`` (through a
        symbolic link or a hard link) while ``collect.allow_outside_data_dir`` is false.
    """
    data_dir = (root / params.data_dir).resolve()
    resolved = (root / path).resolve()
    if not params.allow_outside_data_dir and not resolved.is_relative_to(data_dir):
        raise StepError(
            STEP,
            "source path",
            f"collect.path '{path}' resolves to {resolved}, outside the data folder {data_dir}. "
            "Move the file under data/ (for example data/external/), or set "
            "collect.allow_outside_data_dir: true if you trust that location.",
        )
    if not resolved.is_file():
        raise StepError(STEP, "source path", f"collect.path '{path}' ({resolved}) is not a file")
    stat = resolved.stat()
    if not params.allow_outside_data_dir and stat.st_nlink > 1:
        # a hard link is the same file under another name, which may be anywhere on the
        # same disk: the path check above cannot see it
        raise StepError(
            STEP,
            "source path",
            f"collect.path '{path}' is a hard link ({stat.st_nlink} names for one file): its "
            "other name may be outside the data folder. Copy the file under data/ instead "
            "(cp, not ln), or set collect.allow_outside_data_dir: true if you trust it.",
        )
    size_mb = stat.st_size / 1e6
    if size_mb > params.max_file_mb:
        raise StepError(
            STEP,
            "source size",
            f"{resolved.name} is {size_mb:.0f} MB, above collect.max_file_mb={params.max_file_mb}",
        )
    return resolved


def check_no_nul(path: Path) -> None:
    """Refuse a text file holding a NUL byte: CSV readers cut the cell there, silently."""
    line, offset = 1, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            at = chunk.find(b"\x00")
            if at >= 0:
                line += chunk[:at].count(b"\n")
                raise StepError(
                    STEP,
                    "parse",
                    f"{path.name} holds a NUL byte (line {line}, byte {offset + at}): a binary "
                    "file or a broken export; a CSV reader would cut that cell short",
                )
            line += chunk.count(b"\n")
            offset += len(chunk)


def read_csv(path: Path, params: CollectParams) -> pd.DataFrame:
    """Read a CSV keeping every cell as text, exactly as exported (blank cells stay blank)."""
    (frame, _), *_ = csv_parts(path, params, 1 << 62)  # one chunk: the whole file
    return frame


def csv_parts(path: Path, params: CollectParams, rows: int) -> Iterator[Part]:
    """A CSV file in chunks of ``rows`` rows, every cell text (see :func:`read_csv`)."""
    check_no_nul(path)
    n_columns = 0
    try:
        reader = pd.read_csv(
            path,
            sep=params.csv.sep,
            encoding=params.csv.encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=rows,
        )
        with reader:
            for k, frame in enumerate(reader):
                if k == 0:
                    check_last_line(path, params, len(frame.columns))
                n_columns = len(frame.columns)
                frame = frame.astype("string").reset_index(drop=True)
                if params.csv.decimal == ",":
                    frame = frame.apply(decimal_comma)
                yield frame, None
    except UnicodeDecodeError as exc:
        raise StepError(
            STEP,
            "encoding",
            f"{path.name} is not valid {params.csv.encoding} (byte {exc.start}): "
            "set collect.csv.encoding to the file's encoding (for example latin-1)",
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise StepError(STEP, "parse", f"{path.name} could not be read as CSV: {exc}") from None
    if not n_columns:  # a header and no rows: no chunk at all
        header = pd.read_csv(path, sep=params.csv.sep, encoding=params.csv.encoding, nrows=0)
        yield header.astype("string"), None


_COMMA_NUMBER = r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?\s*$"


def decimal_comma(values: pd.Series) -> pd.Series:
    """Numbers written with a decimal comma (``1.234,5``) as ``1234.5``; other cells unchanged."""
    numeric = values.str.match(_COMMA_NUMBER, na=False)
    if not numeric.any():
        return values
    fixed = values[numeric].str.strip().str.replace(".", "", regex=False).str.replace(",", ".")
    return values.where(~numeric, fixed)


def check_last_line(path: Path, params: CollectParams, n_columns: int) -> None:
    """Refuse a CSV cut short: its last line, with no line end, has fewer fields than the header.

    (pandas would read the missing fields as blank cells.)
    """
    import csv
    import io

    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        tail = fh.read()
    if not tail or tail.endswith((b"\n", b"\r")):
        return
    last = tail.splitlines()[-1].decode(params.csv.encoding, errors="replace")
    fields = next(csv.reader(io.StringIO(last), delimiter=params.csv.sep), [])
    if len(fields) < n_columns:
        raise StepError(
            STEP,
            "truncated",
            f"{path.name} looks cut short: its last line has {len(fields)} of "
            f"{n_columns} fields and no line end. Export the file again (or delete the partial "
            "line).",
        )


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file."""
    return pd.concat([d for d, _ in parquet_parts(path, 1 << 30)], ignore_index=True)


def parquet_parts(path: Path, rows: int) -> Iterator[Part]:
    """A Parquet file in batches of at most ``rows`` rows (pandas' dtypes restored)."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        if handle.metadata.num_rows == 0:
            yield handle.schema_arrow.empty_table().to_pandas(), None
            return
        for batch in handle.iter_batches(batch_size=rows):
            yield batch.to_pandas(), None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        if isinstance(exc, StepError):
            raise
        raise StepError(STEP, "parse", f"{path.name} could not be read as Parquet: {exc}") from None


def read_sql(params: CollectParams) -> pd.DataFrame:
    """Run ``collect.sql.query`` with the window bound as parameters ``:start`` and ``:end``.

    The connection URL comes from the environment variable named by ``collect.sql.url_env``;
    values only ever reach the database as bound parameters.
    """
    import sqlalchemy as sa

    url = os.environ.get(params.sql.url_env)
    if not url:
        raise StepError(
            STEP,
            "sql url",
            f"environment variable {params.sql.url_env} is not set: export it (or put it in .env) "
            "with a SQLAlchemy URL such as postgresql+psycopg://user@host/db",
        )
    bind: dict[str, Any] = {}
    if params.window is not None:
        bind = {"start": params.window.start, "end": params.window.end}
    statement = sa.text(params.sql.query)
    names = set(statement.compile().params)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(
                statement, conn, params={k: v for k, v in bind.items() if k in names}
            )
    except sa.exc.SQLAlchemyError as exc:
        raise StepError(
            STEP, "sql", f"query failed: {exc.__class__.__name__}: {exc.orig or exc}"
        ) from None
    finally:
        engine.dispose()


def database_identity(url: str) -> str | None:
    """Which database a SQLAlchemy URL names, without its user or password.

    ``postgresql+psycopg://ann:secret@db.example:5432/shop`` gives
    ``postgresql+psycopg://db.example:5432/shop``; a SQLite URL gives its file. This, never
    the URL, goes into a snapshot's provenance.
    """
    if not url:
        return None
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "unparsable URL"
    host = parsed.host or ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.drivername}://{host}{port}/{parsed.database or ''}"


def source_key(params: CollectParams, root: Path, extra: dict[str, Any]) -> str | None:
    """A fingerprint of what reading the source would give, or None when only reading tells.

    A file is known by its path, size and modification time, the simulator by its settings;
    with ``extra`` (the code's version, the key of pseudonyms, the problem's columns) the
    same fingerprint means the same batch. A SQL source has none: the database can change
    under the same query, so it is read on every run.
    """
    if params.source == "sql":
        return None
    facts: dict[str, Any] = {"collect": params.model_dump(mode="json"), **extra}
    if params.source in ("csv", "parquet"):
        path = safe_source_path(params.path or "", root, params)
        stat = path.stat()
        facts["file"] = [stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def collect_from_source(params: CollectParams, root: Path, rows: int = 250_000) -> Collected:
    """Read one batch from the configured source, in parts of about ``rows`` rows.

    Parameters
    ----------
    params : CollectParams
    root : Path
        Project root (file paths are relative to it).
    rows : int
        Rows per part (``compute.partition_rows``).

    Returns
    -------
    Collected
    """
    window = None
    if params.window is not None:
        window = {"start": params.window.start.isoformat(), "end": params.window.end.isoformat()}
    if params.source == "simulator":
        source = {"kind": "simulator", **params.simulator.model_dump(mode="json")}
        return Collected(lambda: simulated_parts(params, rows), source, window)
    if params.source == "sql":
        source = {
            "kind": "sql",
            "url_env": params.sql.url_env,
            "database": database_identity(os.environ.get(params.sql.url_env, "")),
            "query": params.sql.query,
        }
        return Collected(lambda: sliced(read_sql(params), rows), source, window)
    path = safe_source_path(params.path or "", root, params)
    source = {"kind": params.source, "path": params.path}
    if params.source == "csv":
        return Collected(lambda: csv_parts(path, params, rows), source, None)
    return Collected(lambda: parquet_parts(path, rows), source, None)
