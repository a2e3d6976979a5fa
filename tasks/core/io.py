"""Atomic file output and content hashing.

Every file a step writes goes through :func:`atomic_path`: it is written to a hidden
temporary file in the same folder, flushed to disk, then renamed over the target in one
step. A run killed half-way leaves at most a ``.tmp-*`` file behind, never a truncated
output under the real name.

Data too large for one frame is written part by part (:func:`write_parts`: each part one
row group of the same Parquet file) and read back part by part (:func:`iter_parts`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a frame is written or hashed: the training
    import pandas as pd  # flow's nothing-changed re-run never loads it (0.3 to 0.45 s)

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path; on success rename it over ``target``.

    Parameters
    ----------
    target : Path or str
        The final path. Its folder is created if needed.

    Yields
    ------
    Path
        Where to write. On an exception the temporary file is removed and ``target``
        keeps whatever it held before.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it, even for a moment,
    and another thread creating a file then would get a world-writable one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022  # no /proc (not Linux): the common default


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(target: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Path | str, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON atomically."""
    return write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(target: Path | str, frame: pd.DataFrame) -> Path:
    """Write ``frame`` to Parquet atomically (no index column)."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(target)


def read_json(path: Path | str) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """Hex SHA-256 of a frame's content (values, column names and dtypes, row order)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    import pandas as pd

    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- partitioned
class PartWriter:
    """Writes frames, one after another, as the row groups of one Parquet file.

    Each :meth:`write` adds one row group, so the file is a partitioned dataset that a
    reader takes one part at a time (:func:`iter_parts`; dask's ``read_parquet`` with
    ``split_row_groups``), and the writer never holds more than the part it is given. The
    first part fixes the schema; later parts are cast to it. Used inside
    :func:`atomic_path`, so an error half-way leaves no file under the target name.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows = 0
        self.parts = 0
        self._writer: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (no index column) as the next row group."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise ValueError(
                    f"part {self.parts + 1} of {self.path.name} does not match the first part's "
                    f"column types: {exc}"
                ) from None
        self._writer.write_table(table, row_group_size=max(1, len(frame)))
        self.rows += len(frame)
        self.parts += 1

    def close(self) -> None:
        """Finish the file (at least one part must have been written)."""
        if self._writer is None:
            raise ValueError(f"{self.path.name}: no part was written")
        self._writer.close()

    def release(self) -> None:
        """Close the file handle if still open, whatever state the file is in (cleanup)."""
        if self._writer is not None and self._writer.is_open:
            self._writer.close()


@contextlib.contextmanager
def write_parts(target: Path | str) -> Iterator[PartWriter]:
    """An atomic :class:`PartWriter` for ``target``: the file appears complete or not at all.

    The caller calls ``close()`` after the last part; on an exception nothing is renamed
    and any earlier ``target`` is kept.
    """
    with atomic_path(target) as tmp:
        writer = PartWriter(tmp)
        try:
            yield writer
        finally:
            writer.release()


def parquet_parts(path: Path | str) -> int:
    """How many parts (row groups) a Parquet file holds."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).num_row_groups


def parquet_rows(path: Path | str) -> int:
    """How many rows a Parquet file holds (from its footer)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def iter_parts(
    path: Path | str, columns: list[str] | None = None, row_offset: bool = False
) -> Iterator[pd.DataFrame]:
    """The frame in ``path``, one part (row group) at a time, with pandas' dtypes restored.

    Parameters
    ----------
    path : Path or str
    columns : list of str, optional
        Read only these.
    row_offset : bool
        Number each part's index by its rows' position in the whole file (default: each
        part starts at 0, as a frame read on its own does).
    """
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    start = 0
    for k in range(handle.num_row_groups):
        part = handle.read_row_group(k, columns=columns).to_pandas()
        if row_offset:
            part.index = part.index + start
        start += len(part)
        yield part


def read_compact(path: Path | str, columns: list[str]) -> pd.DataFrame:
    """Some columns of ``path``, read part by part, with text columns as categoricals.

    A label or a number written as text, over millions of rows, holds a few distinct values:
    kept as codes, it takes one to four bytes a row instead of a Python string each.
    """
    import pandas as pd
    from pandas.api.types import union_categoricals

    pieces: dict[str, list[Any]] = {c: [] for c in columns}
    for part in iter_parts(path, columns):
        for c in columns:
            values = part[c]
            text = values.dtype == object or isinstance(values.dtype, pd.StringDtype)
            pieces[c].append(values.astype("category") if text else values)
    out = {}
    for c, parts in pieces.items():
        if parts and all(isinstance(v.dtype, pd.CategoricalDtype) for v in parts):
            # one Parquet column has one type in every part: the categories' types agree
            out[c] = pd.Series(union_categoricals([v.array for v in parts]), name=c)
        else:
            out[c] = pd.concat(parts, ignore_index=True) if parts else pd.Series(name=c)
    return pd.DataFrame(out)


def column_names(path: Path | str) -> list[str]:
    """The columns of a Parquet file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    return [str(c) for c in pq.read_schema(path).names if not c.startswith("__index_level_")]


def sample_positions(n: int, size: int, random_state: int) -> Any:
    """The positions ``DataFrame.sample(size, random_state=random_state)`` takes from ``n`` rows.

    pandas draws them with ``RandomState(random_state).choice(n, size, replace=False)``;
    drawing them here lets a stage sample a file it never loads whole (:func:`take_rows`)
    and get the very rows the whole-frame sample gives.
    """
    import numpy as np

    return np.random.RandomState(random_state).choice(n, size=size, replace=False)


def take_rows(path: Path | str, positions: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows at ``positions`` (0-based, over the whole file, in the order given).

    Reads one part (row group) at a time and keeps only its wanted rows, so the memory
    needed is one part plus the result, whatever the file's size. The result equals
    ``pd.read_parquet(path, columns).take(positions)``, index included.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    positions = np.asarray(positions, dtype=np.int64)
    order = np.argsort(positions, kind="stable")
    ordered = positions[order]
    handle = pq.ParquetFile(path)
    pieces, start = [], 0
    for k in range(handle.num_row_groups):
        n = handle.metadata.row_group(k).num_rows
        lo, hi = np.searchsorted(ordered, [start, start + n])
        if hi > lo:
            part = handle.read_row_group(k, columns=columns)
            pieces.append(part.take(pa.array(ordered[lo:hi] - start)))
        start += n
    if len(ordered) and (ordered[0] < 0 or ordered[-1] >= start):
        raise IndexError(f"positions outside the {start:,} rows of {Path(path).name}")
    if pieces:
        table = pa.concat_tables(pieces)
    else:  # nothing wanted: the file's columns, no rows
        table = handle.schema_arrow.empty_table()
        if columns is not None:
            table = table.select(columns)
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(len(frame)) if not len(frame) else ordered
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return frame.take(inverse)
