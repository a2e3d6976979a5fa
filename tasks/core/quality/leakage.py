"""Held-out rows that copy a training row, judged against what chance gives on the same data.

A model scored on rows it was trained on looks better than it is. Rows leak that way when the
same entity, or a copied row, lands on both sides of the split. But distinct customers can
share every feature value by chance: in a table of yes/no services, contract types and tenure
in months, identical feature rows are common. So the share of held-out rows (validation and
test) whose feature content occurs in the training split is compared with the same rate
inside the training split (training rows whose features occur in another training row),
plus the configured margin and the sampling noise of the held-out share. Only an excess over
chance is a finding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

Z_ONE_SIDED = 3.09
"""Noise margin in standard errors (a one-sided 0.1% false-alarm rate on clean data)."""


@dataclass(frozen=True)
class HeldOutCopies:
    """The held-out copies of training rows, and the limit chance allows."""

    rows: int
    held_out: int
    share: float
    chance: float
    limit: float
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def excess(self) -> float:
        """How far the held-out share is over the limit (<= 0 passes)."""
        return self.share - self.limit

    def describe(self) -> str:
        """The finding in plain words."""
        text = (
            f"{self.rows:,} of {self.held_out:,} held-out rows ({self.share:.2%}) have exactly the "
            f"features of a training row; chance on this data gives {self.chance:.2%} (the rate "
            f"among training rows), so the limit is {self.limit:.2%} (chance + "
            "split.max_cross_split_duplicate_share + sampling noise)"
        )
        if self.examples:
            shown = "; ".join(
                f"held-out {e['held_out']} = training {e['training']}" for e in self.examples
            )
            text += f". Examples: {shown}"
        return text


def feature_hashes(frame: pd.DataFrame, skip: set[str | None]) -> pd.Series:
    """One hash per row of every column but ``skip`` (the id, time and target columns)."""
    columns = [c for c in frame.columns if c not in skip]
    return pd.util.hash_pandas_object(frame[columns], index=False)


def held_out_copies(
    frame: pd.DataFrame,
    splits: pd.Series,
    skip: set[str | None],
    max_share: float,
    row_names: pd.Series | None = None,
    n_examples: int = 5,
) -> HeldOutCopies:
    """Held-out rows whose feature content also occurs in the training split.

    Parameters
    ----------
    frame : DataFrame
        The features table.
    splits : Series
        ``train``/``valid``/``test`` per row, aligned with ``frame``.
    skip : set of str
        Columns that are not features (id, time, target).
    max_share : float
        Share of held-out copies allowed over the chance rate.
    row_names : Series, optional
        How examples name a row (the id column); default: its row number in the table.
    n_examples : int
        How many example pairs to keep.

    Returns
    -------
    HeldOutCopies
    """
    names = row_names.astype(str).to_numpy() if row_names is not None else None
    return copies_from_hashes(
        feature_hashes(frame, skip).to_numpy(),
        splits.to_numpy() == "train",
        max_share,
        lambda positions: list(names[positions]) if names is not None else row_numbers(positions),
        n_examples,
    )


def row_numbers(positions: np.ndarray) -> list[str]:
    """How an example names a row of a table without ids: its 1-based row number."""
    return [f"row {i + 1}" for i in positions]


def copies_from_hashes(
    hashes: np.ndarray,
    train: np.ndarray,
    max_share: float,
    names: Callable[[np.ndarray], list[str]],
    n_examples: int = 5,
) -> HeldOutCopies:
    """:func:`held_out_copies` from the rows' feature hashes (:func:`feature_hashes`).

    A table too large to load is hashed one part at a time; the hashes of every row (8
    bytes each) are all this needs.

    Parameters
    ----------
    hashes : ndarray of uint64
        One per row, in table order.
    train : ndarray of bool
        Whether each row is in the training split (the others are held out).
    max_share : float
    names : callable
        ``names(positions)``: how examples name the rows at those positions.
    n_examples : int
    """
    held = ~train
    train_hashes = pd.Series(hashes[train])
    counts = train_hashes.value_counts()
    n_held = int(held.sum())
    copied = np.isin(hashes[held], counts.index.to_numpy())
    chance = float((train_hashes.map(counts) > 1).mean()) if train.any() else 0.0
    share = float(copied.mean()) if n_held else 0.0
    noise = Z_ONE_SIDED * math.sqrt(
        max(chance * (1 - chance), 1.0 / max(n_held, 1)) / max(n_held, 1)
    )
    limit = min(chance + max_share + noise, 1.0)
    examples = []
    if share > limit:
        shown = np.flatnonzero(held)[copied][:n_examples]
        firsts = [int(np.flatnonzero(train & (hashes == hashes[p]))[0]) for p in shown]
        for held_name, train_name in zip(names(shown), names(np.array(firsts)), strict=True):
            examples.append({"held_out": str(held_name), "training": str(train_name)})
    return HeldOutCopies(int(copied.sum()), n_held, share, chance, limit, examples)


def single_feature_auc(values: pd.Series, y: np.ndarray, seed: int) -> float:
    """ROC-AUC of one feature alone, folded to >= 0.5 (categories: out-of-fold label rate)."""
    if pd.api.types.is_numeric_dtype(values):
        x = values.astype(float)
        x = x.fillna(x.median() if x.notna().any() else 0.0).to_numpy()
    else:
        text = values.astype("string").fillna("<missing>").to_numpy()
        fold = np.random.default_rng(seed).integers(0, 2, len(text))
        x = np.empty(len(text))
        prior = y.mean()
        for k in (0, 1):
            rates = pd.Series(y[fold != k]).groupby(text[fold != k]).mean()
            x[fold == k] = pd.Series(text[fold == k]).map(rates).fillna(prior).to_numpy()
    if np.unique(x).size < 2:
        return 0.5
    auc = float(roc_auc_score(y, x))
    return max(auc, 1.0 - auc)
