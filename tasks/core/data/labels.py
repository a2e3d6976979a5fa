"""Turning a delivered label column into 0/1 (missing stays missing)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _norm(value: object) -> str:
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def binarize_target(values: pd.Series, positive_label: str | int | bool) -> pd.Series:
    """Map the positive label to 1.0, any other label to 0.0 and missing cells to NaN.

    Labels compare after trimming and lower-casing, and numbers by value, so ``"Yes "``
    matches ``yes`` and ``"1.0"`` matches ``1``.

    Parameters
    ----------
    values : Series
        The target column as delivered.
    positive_label : str, int or bool
        ``problem.positive_label``.

    Returns
    -------
    Series of float
    """
    missing = values.isna() | (values.astype("string").str.strip() == "")
    wanted = _norm(positive_label)
    normalised = values.astype(object).map(_norm, na_action="ignore")
    out = pd.Series(np.where(normalised == wanted, 1.0, 0.0), index=values.index)
    out[missing.fillna(True).to_numpy(bool)] = np.nan
    return out


def observed_labels(values: pd.Series) -> list[str]:
    """Distinct normalised labels present (for error messages)."""
    return sorted({_norm(v) for v in values.dropna().unique() if str(v).strip()})
