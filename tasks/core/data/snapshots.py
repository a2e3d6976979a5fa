"""Immutable raw snapshots under ``data/01_raw/<snapshot id>/``.

A snapshot is a folder holding ``data.parquet`` (the batch as the source delivered it),
``provenance.json`` and, for the simulator, ``oracle.parquet``. The data file is a
partitioned dataset: one Parquet row group per part of the batch (about
``compute.partition_rows`` rows), written one part at a time and read the same way
(:meth:`Snapshot.parts`), so no process needs the whole batch in memory. It is written to a
hidden temporary folder and renamed into place in one step; an existing snapshot is never
written again. ``current.json`` names the snapshot the rest of the pipeline reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.errors import StepError
from tasks.core.io import (
    TMP_PREFIX,
    PartWriter,
    _umask,
    file_sha256,
    iter_parts,
    read_compact,
    write_json,
)

DATA_FILE = "data.parquet"
ORACLE_FILE = "oracle.parquet"
PROVENANCE_FILE = "provenance.json"
CURRENT_FILE = "current.json"


@dataclass(frozen=True)
class Snapshot:
    """A stored raw snapshot."""

    folder: Path
    provenance: dict[str, Any]

    @property
    def snapshot_id(self) -> str:
        """The folder name."""
        return self.folder.name

    @property
    def data_path(self) -> Path:
        """The batch as delivered."""
        return self.folder / DATA_FILE

    @property
    def oracle_path(self) -> Path | None:
        """Simulator only: true probabilities by id."""
        path = self.folder / ORACLE_FILE
        return path if path.exists() else None

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Load the batch (or some of its columns), after checking the file's recorded hash."""
        self.verify()
        return pd.read_parquet(self.data_path, columns=columns)

    def read_compact(self, columns: list[str]) -> pd.DataFrame:
        """Some columns, text ones as categoricals (:func:`tasks.core.io.read_compact`),
        after checking the file's recorded hash."""
        self.verify()
        return read_compact(self.data_path, columns)

    def parts(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The batch one part at a time (each indexed from 0), after checking its hash."""
        self.verify()
        return iter_parts(self.data_path, columns)

    def verify(self) -> None:
        """Raise if the data file no longer has the hash its provenance records."""
        actual = file_sha256(self.data_path)
        expected = self.provenance["file_sha256"]
        if actual != expected:
            raise StepError(
                "snapshot",
                "integrity",
                f"{self.data_path} has sha256 {actual[:12]}..., provenance records "
                f"{expected[:12]}...: the snapshot was modified; restore it with `dvc checkout`",
            )


def list_snapshots(raw_dir: Path) -> list[Snapshot]:
    """All complete snapshots, oldest first."""
    if not raw_dir.is_dir():
        return []
    found = []
    for folder in sorted(raw_dir.iterdir()):
        prov = folder / PROVENANCE_FILE
        if folder.is_dir() and not folder.name.startswith(TMP_PREFIX) and prov.is_file():
            found.append(Snapshot(folder, json.loads(prov.read_text())))
    return found


def schema_of(frame: pd.DataFrame) -> dict[str, str]:
    """Column name to dtype name."""
    return {str(c): str(t) for c, t in frame.dtypes.items()}


class _ContentHash:
    """:func:`tasks.core.io.frame_sha256` of the parts put together, one part at a time.

    The hash covers the column names and dtypes, then every row's values in order; rows
    hash one by one, so it does not depend on how the batch was cut into parts.
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.started = False

    def update(self, frame: pd.DataFrame) -> None:
        if not self.started:
            self.digest.update(
                json.dumps([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode()
            )
            self.started = True
        self.digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())


def write_snapshot_parts(
    raw_dir: Path,
    parts: Iterable[tuple[pd.DataFrame, pd.DataFrame | None]],
    provenance: dict[str, Any],
    now: dt.datetime | None = None,
) -> tuple[Snapshot, bool]:
    """Store a new immutable snapshot part by part, or find the one with identical content.

    Parameters
    ----------
    raw_dir : Path
        ``data/01_raw``.
    parts : iterable of (DataFrame, DataFrame or None)
        The batch as delivered, in consecutive parts, each with the simulator's oracle
        probabilities for its rows (or None). An exception while reading them leaves no
        snapshot behind.
    provenance : dict
        Source, window and code version; rows, hash, schema and time are added here. It
        is read after the last part, so the parts' reader may still add to it.
    now : datetime, optional
        Collection time (UTC); default now.

    Returns
    -------
    (Snapshot, bool)
        The snapshot, and whether it was newly written (False: identical content existed).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    raw_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "snapshot.", dir=raw_dir))
    writer = PartWriter(staging / DATA_FILE)
    oracle_writer = PartWriter(staging / ORACLE_FILE)
    content, first = _ContentHash(), None
    try:
        for data, oracle in parts:
            if first is None:
                first = data
            content.update(data)
            writer.write(data)
            if oracle is not None:
                oracle_writer.write(oracle)
        if first is None:
            raise StepError("collect", "empty batch", "the source returned no data")
        writer.close()
        has_oracle = oracle_writer.parts > 0
        if has_oracle:
            oracle_writer.close()
        digest = content.digest.hexdigest()
        for existing in list_snapshots(raw_dir):
            if existing.provenance.get("content_sha256") == digest:
                seal_snapshots(raw_dir)
                return existing, False
        snapshot_id = f"{now:%Y%m%dT%H%M%S}Z-{digest[:10]}"
        target = raw_dir / snapshot_id
        if target.exists():
            raise StepError(
                "collect", "immutable snapshot", f"{target} exists already; not overwriting"
            )
        for path in staging.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        record = {
            **provenance,
            "snapshot_id": snapshot_id,
            "rows": int(writer.rows),
            "columns": int(first.shape[1]),
            "parts": writer.parts,
            "schema": schema_of(first),
            "content_sha256": digest,
            "file_sha256": file_sha256(staging / DATA_FILE),
            "collected_at": now.isoformat(),
            "has_oracle": has_oracle,
        }
        write_json(staging / PROVENANCE_FILE, record)
        for path in staging.iterdir():
            os.chmod(path, 0o666 & ~_umask())
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, target)  # atomic; fails rather than replace an existing folder
    finally:
        for w in (writer, oracle_writer):
            w.release()
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    seal_snapshots(raw_dir)
    return Snapshot(target, record), True


def seal_snapshots(raw_dir: Path) -> list[Path]:
    """Make every snapshot's files read-only again; returns the files that were writable.

    DVC makes a stage's outputs writable before it runs the stage, and ``data/01_raw`` is
    the collect stage's (persistent) output, so each collection re-seals the earlier
    snapshots as well as its own. The folders stay writable for ``dvc checkout``.
    """
    opened = []
    for snapshot in list_snapshots(raw_dir):
        for path in snapshot.folder.iterdir():
            if path.is_file() and path.stat().st_mode & 0o222:
                os.chmod(path, 0o444)
                opened.append(path)
    return opened


def set_current(raw_dir: Path, snapshot: Snapshot) -> None:
    """Point ``current.json`` at ``snapshot`` (atomic replace)."""
    write_json(
        raw_dir / CURRENT_FILE,
        {
            "snapshot_id": snapshot.snapshot_id,
            "content_sha256": snapshot.provenance["content_sha256"],
        },
    )


def current_snapshot(raw_dir: Path) -> Snapshot:
    """The snapshot ``current.json`` names.

    Raises
    ------
    StepError
        If nothing was collected yet or the named snapshot is missing.
    """
    pointer = raw_dir / CURRENT_FILE
    if not pointer.is_file():
        raise StepError(
            "snapshot",
            "no data",
            f"{pointer} not found: run the collect stage first (dvc repro collect)",
        )
    snapshot_id = json.loads(pointer.read_text())["snapshot_id"]
    folder = raw_dir / snapshot_id
    prov = folder / PROVENANCE_FILE
    if not prov.is_file():
        raise StepError(
            "snapshot",
            "missing",
            f"{pointer} names {snapshot_id}, but {folder} is incomplete or gone",
        )
    return Snapshot(folder, json.loads(prov.read_text()))
