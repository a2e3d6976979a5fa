"""The leakage audit's frame: the derived table ``expectations/leakage.json`` checks.

One block of rows per check, built either from a table held in memory (:func:`audit_frame`)
or from a features file read one part at a time (:func:`audit_table`), with the same result.
What needs every row (the id check, the held-out copy check) is kept as 8-byte hashes per
row; the feature checks read only a seeded sample of the training rows. The split step
(:mod:`tasks.split`) builds the frame, runs the suite and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.config import ProblemParams, SplitParams
from tasks.core.io import column_names, iter_parts, sample_positions, take_rows
from tasks.core.ml.objective import objective_for
from tasks.core.quality.leakage import (
    SINGLE_FEATURE,
    HeldOutCopies,
    copies_from_hashes,
    feature_hashes,
    held_out_copies,
    row_numbers,
)

SPLITS = ("train", "valid", "test")
"""The split labels, in the order the id check codes them."""


def copies_of(
    frame: pd.DataFrame, splits: pd.Series, problem: ProblemParams, cfg: SplitParams
) -> HeldOutCopies:
    """Held-out rows with the features of a training row, against the chance rate."""
    return held_out_copies(
        frame,
        splits,
        {problem.id_column, problem.time_column, problem.target},
        cfg.max_cross_split_duplicate_share,
        frame[problem.id_column] if problem.id_column else None,
    )


def key_of(cfg: SplitParams, problem: ProblemParams, strategy: str) -> str | None:
    """The column whose values must each stay in one split (the group or the id), if any."""
    return cfg.group_column if strategy == "group" else problem.id_column


def key_hashes(keys: pd.Series) -> np.ndarray:
    """A 64-bit hash of each key's text (computed per part for a large table)."""
    return pd.util.hash_pandas_object(keys.astype(str), index=False).to_numpy()


def id_block(
    hashes: np.ndarray, splits: pd.Series, keys_at: Callable[[np.ndarray], pd.Series]
) -> tuple[pd.DataFrame, int]:
    """The audit rows of the id check, and how many distinct keys were checked.

    Rows are sorted by the hash of their key; a key in two splits shows as a run of equal
    hashes with two split labels. Those candidates are read back and compared on their
    values, so the check is exact (a collision of two keys' hashes is not a finding). The
    block has a row for each key found in several splits and one for all the others, so
    its size does not grow with the table.

    Parameters
    ----------
    hashes : ndarray of uint64
        :func:`key_hashes` of every row.
    splits : Series
        Split label per row, aligned with ``hashes``.
    keys_at : callable
        ``keys_at(positions)``: the key values of the rows at those positions.
    """
    codes = pd.Categorical(splits, categories=SPLITS).codes
    order = np.argsort(hashes, kind="stable")
    h, c = hashes[order], codes[order]
    starts = np.r_[True, h[1:] != h[:-1]]
    n_keys = int(starts.sum())
    mixed = np.unique(h[1:][~starts[1:] & (c[1:] != c[:-1])])
    rows = np.sort(order[np.isin(h, mixed)])
    per_key = (
        pd.DataFrame({"key": keys_at(rows).astype(str).to_numpy(), "split": codes[rows]})
        .groupby("key")["split"]
        .nunique()
    )
    shared = per_key[per_key > 1]
    block = pd.DataFrame({"subject": "id:" + shared.index, "id_n_splits": shared.to_numpy(float)})
    if n_keys > len(shared):
        block.loc[len(block)] = [f"ids: the other {n_keys - len(shared):,}, each in one split", 1.0]
    return block, n_keys


def time_block(times: pd.Series, splits: pd.Series) -> pd.DataFrame:
    """The audit rows of the time-order check: each split after the one before."""
    rows = []
    for prev, cur in (("train", "valid"), ("valid", "test")):
        ok = times[splits == cur].min() > times[splits == prev].max()
        rows.append({"subject": f"split:{cur} after {prev}", "split_time_ordered": float(ok)})
    return pd.DataFrame(rows)


def feature_block(
    train: pd.DataFrame, features: list[str], problem: ProblemParams, cfg: SplitParams
) -> pd.DataFrame:
    """The audit rows of the feature checks, from a sample of the training rows."""
    post = set(problem.post_outcome_columns)
    objective = objective_for(problem).for_labels(train[problem.target])
    y = objective.labels(train[problem.target])
    score = SINGLE_FEATURE[objective.type].score
    return pd.DataFrame(
        {
            "subject": [f"feature:{c}" for c in features],
            "post_outcome_present": [float(c in post) for c in features],
            "feature_auc": [score(train[c], y, cfg.random_state) for c in features],
        }
    )


def audit_features(columns: list[str], problem: ProblemParams) -> list[str]:
    """The columns the feature checks look at: all but the id, target and time."""
    return [c for c in columns if c not in {problem.id_column, problem.target, problem.time_column}]


def train_sample(splits: pd.Series, cfg: SplitParams) -> np.ndarray:
    """Positions of the training rows the feature checks use: at most ``audit_sample_rows``,
    the rows ``DataFrame.sample`` would draw with ``random_state``."""
    train = np.flatnonzero((splits == "train").to_numpy())
    if len(train) > cfg.audit_sample_rows:
        train = train[sample_positions(len(train), cfg.audit_sample_rows, cfg.random_state)]
    return train


def assemble(blocks: list[pd.DataFrame]) -> pd.DataFrame:
    """The audit frame from its blocks, every check's column present."""
    audit = pd.concat(blocks, ignore_index=True)
    for column in (
        "id_n_splits",
        "copy_excess",
        "split_time_ordered",
        "post_outcome_present",
        "feature_auc",
    ):
        if column not in audit:
            audit[column] = np.nan
    return audit


def copies_row(copies: HeldOutCopies) -> pd.DataFrame:
    """The audit row of the held-out copy check."""
    return pd.DataFrame(
        {"subject": ["rows: held-out copies of training rows"], "copy_excess": [copies.excess]}
    )


def audit_frame(
    frame: pd.DataFrame,
    splits: pd.Series,
    problem: ProblemParams,
    cfg: SplitParams,
    strategy: str,
    copies: HeldOutCopies | None = None,
) -> pd.DataFrame:
    """The derived frame the leakage suite checks, for a table held in memory.

    One block of rows per check (:func:`audit_table` builds the same from a file, part by
    part). Columns: ``subject`` (what a row is about), ``id_n_splits``, ``copy_excess``,
    ``split_time_ordered``, ``post_outcome_present``, ``feature_auc``. Without an id column
    (and not a group split) there is no id block: the held-out copy check covers rows.
    """
    blocks = []
    key = key_of(cfg, problem, strategy)
    if key:
        keys = frame[key]
        blocks.append(id_block(key_hashes(keys), splits, lambda rows: keys.iloc[rows])[0])
    blocks.append(copies_row(copies or copies_of(frame, splits, problem, cfg)))
    if strategy == "time":
        blocks.append(time_block(frame[problem.time_column], splits))
    train = frame.iloc[train_sample(splits, cfg)]
    blocks.append(feature_block(train, audit_features(list(frame.columns), problem), problem, cfg))
    return assemble(blocks)


def audit_table(
    path: Path,
    keys: pd.DataFrame,
    splits: pd.Series,
    problem: ProblemParams,
    cfg: SplitParams,
    strategy: str,
) -> tuple[pd.DataFrame, HeldOutCopies, int]:
    """:func:`audit_frame` for the features file at ``path``, read one part at a time.

    What needs every row is kept as 8-byte hashes per row (the features for the held-out
    copy check, the key for the id check); the feature checks read only their sample.

    Parameters
    ----------
    path : Path
        The features table.
    keys : DataFrame
        The columns :func:`assign_splits` read (the time column for a time split).
    splits : Series
        Split label per row.

    Returns
    -------
    (DataFrame, HeldOutCopies, int)
        The audit frame, the held-out copies and the number of distinct keys checked.
    """
    skip = {problem.id_column, problem.time_column, problem.target}
    key = key_of(cfg, problem, strategy)
    features, ids = [], []
    for part in iter_parts(path):
        features.append(feature_hashes(part, skip).to_numpy())
        if key:
            ids.append(key_hashes(part[key]))
    train = (splits == "train").to_numpy()
    if problem.id_column:
        id_column = problem.id_column

        def names(positions: np.ndarray) -> list[str]:
            return list(take_rows(path, positions, [id_column])[id_column].astype(str))
    else:
        names = row_numbers
    copies = copies_from_hashes(
        np.concatenate(features), train, cfg.max_cross_split_duplicate_share, names
    )
    del features
    blocks, n_keys = [], 0
    if key:
        block, n_keys = id_block(
            np.concatenate(ids), splits, lambda rows: take_rows(path, rows, [key])[key]
        )
        blocks.append(block)
    blocks.append(copies_row(copies))
    if strategy == "time":
        blocks.append(time_block(keys[problem.time_column], splits))
    columns = audit_features(column_names(path), problem)
    sample = take_rows(path, train_sample(splits, cfg), [*columns, problem.target])
    blocks.append(feature_block(sample, columns, problem, cfg))
    return assemble(blocks), copies, n_keys
