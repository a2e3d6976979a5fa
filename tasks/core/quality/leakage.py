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
from typing import Any

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


def single_feature_scores(values: pd.Series, y: np.ndarray, seed: int) -> np.ndarray:
    """One feature as a score oriented so that higher means positive (categories: their
    out-of-fold label rate; missing numbers: the median)."""
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
    if np.unique(x).size >= 2 and roc_auc_score(y, x) < 0.5:
        x = -x
    return x


def single_feature_auc(values: pd.Series, y: np.ndarray, seed: int) -> float:
    """ROC-AUC of one feature alone, folded to >= 0.5 (categories: out-of-fold label rate)."""
    x = single_feature_scores(values, y, seed)
    if np.unique(x).size < 2:
        return 0.5
    return float(roc_auc_score(y, x))


def single_feature_r2(values: pd.Series, y: np.ndarray, seed: int) -> float:
    """Out-of-fold R² of one feature alone for a numeric target (at least 0): a small tree
    on a number (missing: the median), the out-of-fold target mean of a category."""
    from sklearn.tree import DecisionTreeRegressor

    y = np.asarray(y, dtype=float)
    fold = np.random.default_rng(seed).integers(0, 2, len(y))
    predicted = np.full(len(y), float(np.mean(y)) if len(y) else 0.0)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.astype(float)
        x = x.fillna(x.median() if x.notna().any() else 0.0).to_numpy().reshape(-1, 1)
    else:
        text = values.astype("string").fillna("<missing>").to_numpy()
    for k in (0, 1):
        fit, held = fold != k, fold == k
        if not fit.any() or not held.any():
            continue
        if numeric:
            tree = DecisionTreeRegressor(max_leaf_nodes=32, min_samples_leaf=20, random_state=0)
            predicted[held] = tree.fit(x[fit], y[fit]).predict(x[held])
        else:
            means = pd.Series(y[fit]).groupby(text[fit]).mean()
            predicted[held] = (
                pd.Series(text[held]).map(means).fillna(float(y[fit].mean())).to_numpy()
            )
    spread = float(((y - y.mean()) ** 2).sum())
    if spread == 0:
        return 0.0
    return max(0.0, 1.0 - float(((y - predicted) ** 2).sum()) / spread)


def single_feature_auc_ovr(values: pd.Series, y: np.ndarray, seed: int) -> float:
    """The highest one-vs-rest ROC-AUC of one feature alone over the classes (class
    indices ``y``): a feature that alone singles out one class gives it away."""
    y = np.asarray(y)
    return max(
        (single_feature_auc(values, (y == k).astype(int), seed) for k in np.unique(y)),
        default=0.5,
    )


@dataclass(frozen=True)
class SingleFeatureCheck:
    """The leakage audit's single-feature check of a problem type: what one column alone
    scores, and the ``split`` key that holds its limit."""

    label: str
    key: str
    score: Callable[[pd.Series, np.ndarray, int], float]


SINGLE_FEATURE = {
    "binary": SingleFeatureCheck("ROC-AUC", "max_single_feature_auc", single_feature_auc),
    "regression": SingleFeatureCheck("R²", "max_single_feature_r2", single_feature_r2),
    "multiclass": SingleFeatureCheck(
        "ROC-AUC (one vs rest)", "max_single_feature_auc", single_feature_auc_ovr
    ),
}
"""Each problem type's single-feature check (the audit frame's ``feature_auc`` column holds
its score, whatever the type)."""


PARTNER_GAIN = 0.1
"""After a first column that gives the outcome away, another one is named while removing it
still costs the quick model this much ROC-AUC (and half of it for the first one)."""


def carrying_columns(
    X: pd.DataFrame,
    y: np.ndarray,
    ceiling: float,
    seed: int = 0,
    most: int = 5,
    rows: int = 5000,
) -> dict[str, tuple[float, float]]:
    """Columns that together with others give away the label (``dep_time`` beside
    ``sched_dep_time`` is the delay), which no single-column check sees.

    A quick gradient-boosting model is scored on a hold-out; while it reaches ``ceiling``,
    the column whose removal costs it most is named, with the score with and without it,
    and left out of the next round (at most ``most`` rounds); once one is named, the rounds
    go on while a removal costs :data:`PARTNER_GAIN` or more. Text columns enter as codes;
    at most ``rows`` rows are used.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    if len(X) > rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), rows, replace=False))
        X, y = X.iloc[keep], y[keep]

    data = pd.DataFrame(
        {
            c: X[c].astype(float)
            if pd.api.types.is_numeric_dtype(X[c])
            else pd.Series(pd.factorize(X[c])[0], index=X.index).replace(-1, np.nan)
            for c in X.columns
        }
    )
    fit = np.random.default_rng(seed).random(len(data)) < 0.7
    if y[fit].min() == y[fit].max() or y[~fit].min() == y[~fit].max():
        return {}

    def score(columns: list[str]) -> float:
        model = HistGradientBoostingClassifier(max_iter=60, random_state=seed)
        model.fit(data.loc[fit, columns], y[fit])
        return float(roc_auc_score(y[~fit], model.predict_proba(data.loc[~fit, columns])[:, 1]))

    with threadpool_limits(1):  # small fits: threads cost more than they give, and
        return _peel(data, score, ceiling, most)  # fight the other processes for the cores


def _peel(
    data: pd.DataFrame, score: Any, ceiling: float, most: int
) -> dict[str, tuple[float, float]]:
    """The rounds of :func:`carrying_columns`."""
    found: dict[str, tuple[float, float]] = {}
    columns = list(data.columns)
    full = score(columns) if columns else 0.5
    while (full >= ceiling or found) and len(columns) > 1 and len(found) < most:
        without = {c: score([k for k in columns if k != c]) for c in columns}
        worst = min(without, key=without.get)
        # a column is named only when the model needs it (two copies of a leak: neither is
        # needed alone, and which to name is not for this check to guess); under the
        # ceiling, after a first find, only one that carries a large part of the score (a
        # leak's partner, as the actual arrival time is the actual departure's)
        cost = full - without[worst]
        if cost < (PARTNER_GAIN if full < ceiling else PARTNER_GAIN / 2):
            break
        found[worst] = (full, without[worst])
        columns.remove(worst)
        full = without[worst]
    return found
