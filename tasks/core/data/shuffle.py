"""Exact whole-data statistics from data read part by part: a hash shuffle to disk.

Some facts need every row at once: which rows are exact copies of an earlier row, which
ids repeat, whether ids are unique. Read part by part, each row is sent to one of ``n``
bucket files by a hash of its key (the id column, or the whole row when there is none),
so all rows that could be equal land in the same bucket. Each bucket is then small enough
to load on its own, and the usual pandas operations on it (``duplicated``) give exactly
the answer they would give on the whole data: the hash only chooses the bucket, the
comparison is on the values. A column ``__row`` keeps each row's position in the whole
data, so "first" means first in the original order.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.io import PartWriter, iter_parts

ROW = "__row"
"""The column holding a row's position in the whole data."""


class Shuffle:
    """Bucket files in a temporary folder; :meth:`add` parts, then :meth:`buckets`."""

    def __init__(self, folder: Path, n: int, key: str | None) -> None:
        self.folder = folder
        self.n = max(1, n)
        self.key = key
        self.rows = 0
        self._writers = [PartWriter(folder / f"bucket-{b:05d}.parquet") for b in range(self.n)]

    def add(self, part: pd.DataFrame) -> None:
        """Send each row of ``part`` (the next rows of the data, in order) to its bucket."""
        keyed = part[[self.key]] if self.key else part
        floats = [c for c in keyed.columns if pd.api.types.is_float_dtype(keyed[c])]
        if floats:  # -0.0 == 0.0 but their bits differ: hash them as one value
            keyed = keyed.assign(**{c: keyed[c] + 0.0 for c in floats})
        bucket = pd.util.hash_pandas_object(keyed, index=False).to_numpy() % np.uint64(self.n)
        rows = part.assign(**{ROW: np.arange(self.rows, self.rows + len(part), dtype="int64")})
        rows = rows.reset_index(drop=True)
        for b in np.unique(bucket):
            self._writers[int(b)].write(rows[bucket == b])
        self.rows += len(part)

    def buckets(self) -> Iterator[pd.DataFrame]:
        """Each non-empty bucket as one frame, rows in their original order."""
        for writer in self._writers:
            if writer.parts:
                writer.close()
                yield pd.concat(list(iter_parts(writer.path)), ignore_index=True)
                writer.path.unlink()


@contextlib.contextmanager
def shuffle(n: int, key: str | None, near: Path) -> Iterator[Shuffle]:
    """A :class:`Shuffle` of ``n`` buckets in a temporary folder beside ``near``, removed after."""
    near.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".tmp-shuffle.", dir=near))
    sh = None
    try:
        sh = Shuffle(folder, n, key)
        yield sh
    finally:
        for writer in sh._writers if sh else []:
            writer.release()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Copies:
    """Rows that repeat others, found over all buckets (see :func:`find_copies`)."""

    exact: int = 0
    """Rows that are exact copies of an earlier row (all values equal)."""
    repeats: int = 0
    """Rows, not exact copies, whose id an earlier row already has."""
    drop: list[np.ndarray] = field(default_factory=list)
    """Positions of the rows de-duplication removes (exact copies, then id repeats)."""
    ids: int = 0
    """Rows with an id."""
    ids_in_repeated_groups: int = 0
    """Rows with an id that another row also has (every one of them, as GX counts)."""

    def add(self, bucket: pd.DataFrame, id_column: str | None) -> None:
        """Count one bucket (every row equal to one of its rows is in it too)."""
        values = bucket.drop(columns=[ROW])
        exact = values.duplicated(keep="first").to_numpy()
        self.exact += int(exact.sum())
        if id_column is None:
            return
        once = values[~exact]
        repeat = once[id_column].duplicated(keep="first").to_numpy()
        self.repeats += int(repeat.sum())
        self.drop.append(bucket[ROW].to_numpy()[exact])
        self.drop.append(bucket[ROW].to_numpy()[~exact][repeat])
        present = values[id_column].dropna()
        self.ids += len(present)
        self.ids_in_repeated_groups += int(present.duplicated(keep=False).sum())

    def dropped(self) -> np.ndarray:
        """The positions to remove, sorted."""
        return np.sort(np.concatenate(self.drop)) if self.drop else np.empty(0, dtype="int64")


def keep_mask(dropped: np.ndarray, start: int, n: int) -> np.ndarray:
    """Which of the ``n`` rows from position ``start`` on are kept, given the sorted ``dropped``."""
    lo, hi = np.searchsorted(dropped, [start, start + n])
    keep = np.ones(n, dtype=bool)
    keep[dropped[lo:hi] - start] = False
    return keep
