"""Category encoding that stays bounded on wide text columns.

A column with a few distinct values (at most ``max_categories`` in the rows it is fitted
on, as ``clean.max_categories`` defines a category) is one-hot encoded, infrequent values
(fewer than ``min_frequency`` rows) sharing one slot. A wider column (a tail number, a
product code, a free-text field) is target encoded instead: each value becomes the
smoothed mean of the target among the training rows that have it, with unseen values at
the overall mean (scikit-learn's ``TargetEncoder``). One-hot encoding such a column would
add one dense column per distinct value: 4,043 tail numbers on 336,776 flights are 10.9 GB
of float64 before the model sees a row.

Both encoders are fitted on the rows the pipeline is fitted on (the training split, or a
fold's training rows), never on validation or test rows. During that fit the target
encoding is cross-fitted (each row encoded by a model of the other folds), so a row's own
label never sets its own encoding, and the classifier does not learn from an echo of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.preprocessing import OneHotEncoder, TargetEncoder


class CategoryEncoder(TransformerMixin, BaseEstimator):
    """One-hot encoding for narrow columns, target encoding for wide ones.

    Parameters
    ----------
    max_categories : int
        A column with more distinct values than this in the fitting rows is target encoded.
    min_frequency : int
        One-hot encoding puts values seen in fewer rows into one "infrequent" slot.
    random_state : int
        Seed of the target encoding's cross-fitting folds.
    sparse : bool
        Give a sparse matrix (for a linear model: the same fit, without a dense column per
        category). Trees keep dense inputs: XGBoost reads a sparse matrix's absent entries
        as missing, not as zero.

    Attributes
    ----------
    narrow_ : list of int
        Input positions that are one-hot encoded (``onehot_``), in order.
    wide_ : list of int
        Input positions that are target encoded (``target_``), in order; their outputs
        follow the one-hot block.
    """

    def __init__(
        self,
        max_categories: int = 50,
        min_frequency: int = 5,
        random_state: int = 0,
        sparse: bool = False,
    ):
        self.max_categories = max_categories
        self.min_frequency = min_frequency
        self.random_state = random_state
        self.sparse = sparse

    def _split(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=object)
        if values.ndim != 2:
            raise ValueError("CategoryEncoder expects a 2-D array of categories")
        return values

    def fit(self, X: Any, y: Any = None) -> CategoryEncoder:
        """Fit the encoders (see :meth:`fit_transform`)."""
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **_: Any) -> np.ndarray:
        """Fit on ``X`` and ``y``; the target-encoded block is cross-fitted on these rows."""
        values = self._split(X)
        self.n_features_in_ = values.shape[1]
        distinct = [len(set(values[:, j].tolist())) for j in range(values.shape[1])]
        self.wide_ = [j for j, n in enumerate(distinct) if n > self.max_categories]
        self.narrow_ = [j for j in range(values.shape[1]) if j not in self.wide_]
        blocks = []
        self.onehot_: OneHotEncoder | None = None
        self.target_: TargetEncoder | None = None
        if self.narrow_:
            self.onehot_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=self.min_frequency,
                sparse_output=self.sparse,
            )
            blocks.append(self.onehot_.fit_transform(values[:, self.narrow_]))
        if self.wide_:
            if y is None:
                raise ValueError("target encoding a wide column needs the target")
            # seeded folds (any target type: stratification is not needed for a mean)
            folds = KFold(5, shuffle=True, random_state=self.random_state)
            self.target_ = TargetEncoder(cv=folds)
            blocks.append(self.target_.fit_transform(values[:, self.wide_], y))
        return self._stack(blocks, len(values))

    def transform(self, X: Any) -> np.ndarray:
        """Encode ``X`` with the fitted encoders (full-data target encodings)."""
        values = self._split(X)
        blocks = []
        if self.onehot_ is not None:
            blocks.append(self.onehot_.transform(values[:, self.narrow_]))
        if self.target_ is not None:
            blocks.append(self.target_.transform(values[:, self.wide_]))
        return self._stack(blocks, len(values))

    def _stack(self, blocks: list[Any], n: int) -> Any:
        if not blocks:
            return sp.csr_matrix((n, 0)) if self.sparse else np.zeros((n, 0))
        if self.sparse:
            return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr")
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """One-hot names (``column_value``), then each target-encoded column's own name."""
        names = (
            [f"x{j}" for j in range(self.n_features_in_)]
            if input_features is None
            else [str(c) for c in input_features]
        )
        out: list[str] = []
        if self.onehot_ is not None:
            out += list(self.onehot_.get_feature_names_out([names[j] for j in self.narrow_]))
        if self.target_ is not None:
            out += list(self.target_.get_feature_names_out([names[j] for j in self.wide_]))
        return np.asarray(out, dtype=object)
