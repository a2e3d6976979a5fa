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


# The words YAML 1.1 reads as booleans (an unquoted ``positive_label: Yes`` arrives as True).
YAML_TRUE = ("true", "yes", "y", "on")
YAML_FALSE = ("false", "no", "n", "off")


class LabelError(ValueError):
    """The positive label cannot be matched to the labels in the data."""


def resolve_label(values: pd.Series, positive_label: str | int | bool) -> str:
    """The normalised label ``positive_label`` stands for in ``values``.

    A boolean (YAML turns an unquoted ``Yes`` into ``True``) matches the one yes-like (or
    no-like) label the column holds; when there is none, or more than one, it is refused
    with a message that says to quote the value.
    """
    if not isinstance(positive_label, bool):
        return _norm(positive_label)
    labels = observed_labels(values)
    words = YAML_TRUE if positive_label else YAML_FALSE
    found = [label for label in labels if label in words]
    if len(found) == 1:
        return found[0]
    if not labels or set(labels) <= {"0", "1"}:
        return "1" if positive_label else "0"
    raise LabelError(
        f"problem.positive_label arrived as {positive_label} (YAML reads an unquoted yes/no/"
        f"on/off/true/false as a boolean) and the labels are {labels[:10]}: write the label "
        "in quotes, as in positive_label: 'Yes'"
    )


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
    # Each distinct value is judged once: a column of millions of rows holds a few labels.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    wanted = resolve_label(pd.Series(uniques, dtype=object), positive_label)
    judged = np.array(
        [np.nan if not str(u).strip() else float(_norm(u) == wanted) for u in uniques] + [np.nan]
    )
    return pd.Series(judged[codes], index=values.index)  # code -1 (missing) takes the last


def observed_labels(values: pd.Series) -> list[str]:
    """Distinct normalised labels present (for error messages)."""
    return sorted({_norm(v) for v in values.dropna().unique() if str(v).strip()})
