"""Column kinds and standardisation: turning an export into typed columns.

A column's kind (numeric, datetime, categorical, text, or a role: id, target) is inferred
once, from the first snapshot of a source, and then stored with that source's Great
Expectations suite, so later snapshots are read the same way and a change of type shows up
as a schema break instead of silently becoming a different column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import CleanParams, ProblemParams

ISO8601 = "ISO8601"
"""The date format that reads any ISO 8601 date or time stamp (pandas' own parser)."""
KINDS = ("id", "target", "numeric", "datetime", "categorical", "text")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise_category(values: pd.Series, aliases: dict[str, str] | None = None) -> pd.Series:
    """Lower-case, join words with ``-``, apply aliases; blank cells become missing.

    ``"Month to Month "``, ``"MONTH-TO-MONTH"`` and ``"month_to_month"`` all become
    ``"month-to-month"``.
    """
    text = (
        values.astype("string").str.lower().str.replace(_NON_ALNUM, "-", regex=True).str.strip("-")
    )
    text = text.mask(text == "")
    if aliases:
        text = text.replace(aliases)
    return text.astype("string")


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype("string").str.strip() == "")


def _unparsed(values: pd.Series, missing: pd.Series) -> int:
    """How many cells that are not blank came out missing (blank ones are looked at only
    where something is missing: most columns parse whole)."""
    mask = missing.to_numpy()
    return int((~_blank(values[mask])).sum()) if mask.any() else 0


def parse_numbers(values: pd.Series) -> tuple[pd.Series, int]:
    """Numbers from numbers-as-text (blank cells and thousands separators allowed).

    Returns
    -------
    (Series of float, int)
        The numbers, and how many non-blank cells did not parse (now missing).
    """
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float), 0
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float), 0
    if isinstance(values.dtype, pd.CategoricalDtype):  # each distinct text parsed once
        parsed = parse_numbers(pd.Series(values.cat.categories, dtype=object))[0].to_numpy()
        codes = values.cat.codes.to_numpy()
        numbers = pd.Series(
            np.where(codes >= 0, parsed[codes], np.nan), index=values.index, name=values.name
        )
        return numbers, _unparsed(values, numbers.isna())
    text = values.astype("string").str.strip().str.replace(r"(?<=\d),(?=\d{3}\b)", "", regex=True)
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    return numbers, _unparsed(values, numbers.isna())


def parse_dates(values: pd.Series, formats: list[str]) -> tuple[pd.Series, int]:
    """Dates written in any of ``formats`` (tried in order).

    A format is a ``strptime`` pattern, or ``ISO8601``: any ISO 8601 date or time stamp
    (``2017-01-01T06:00:42Z``, ``2013-01-01 05:00:00+01:00``); a time stamp with a zone
    is turned to UTC and kept without it, so every date of a column is comparable.

    Returns
    -------
    (Series of datetime64, int)
        The dates, and how many non-blank cells matched no format (now missing).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]"), 0
    text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in formats:
        todo = out.isna() & text.notna()
        if not todo.any():
            break
        out[todo] = _to_datetime(text[todo], fmt)
    return out, _unparsed(values, out.isna())


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    if fmt.upper() != ISO8601:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).dt.tz_convert(None)


def kinds_for(raw: pd.DataFrame, problem: ProblemParams, clean: CleanParams) -> dict[str, str]:
    """:func:`infer_kinds` with the problem's roles and the clean step's settings."""
    return infer_kinds(
        raw,
        problem.id_column,
        problem.target,
        problem.time_column,
        clean.date_formats,
        clean.min_parse_share,
        clean.max_categories,
    )


def infer_kinds(
    data: pd.DataFrame,
    id_column: str,
    target: str,
    time_column: str | None,
    date_formats: list[str],
    min_parse_share: float,
    max_categories: int,
) -> dict[str, str]:
    """Infer each column's kind from a snapshot (see the module docstring)."""
    kinds: dict[str, str] = {}
    for column in data.columns:
        values = data[column]
        present = ~_blank(values)
        n_present = max(int(present.sum()), 1)
        if column == id_column:
            kinds[column] = "id"
        elif column == target:
            kinds[column] = "target"
        elif column == time_column:
            kinds[column] = "datetime"
        elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            kinds[column] = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(values):
            kinds[column] = "datetime"
        elif (
            n_present - parse_numbers(values)[1]
        ) / n_present >= min_parse_share and present.any():
            kinds[column] = "numeric"
        elif (
            present.any()
            and (n_present - parse_dates(values, date_formats)[1]) / n_present >= min_parse_share
        ):
            kinds[column] = "datetime"
        elif normalise_category(values).nunique() <= max_categories:
            kinds[column] = "categorical"
        else:
            kinds[column] = "text"
    return kinds


@dataclass
class Standardised:
    """A typed frame and what it took to get there."""

    frame: pd.DataFrame
    unparsed: dict[str, int] = field(default_factory=dict)
    parse_share: dict[str, float] = field(default_factory=dict)
    unit_fixed: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)

    @classmethod
    def combine(cls, parts: list["Standardised"]) -> "Standardised":
        """One result from the results of consecutive partitions (the Dask engine's)."""
        if len(parts) == 1:
            return parts[0]
        return cls.totals(parts, pd.concat([p.frame for p in parts]))

    @classmethod
    def totals(
        cls, parts: list["Standardised"], frame: pd.DataFrame | None = None
    ) -> "Standardised":
        """The counts of consecutive partitions added up (with ``frame``, or an empty one)."""
        out = cls(frame=pd.DataFrame() if frame is None else frame)
        for part in parts:
            for name in ("unparsed", "unit_fixed", "present"):
                total = getattr(out, name)
                for column, n in getattr(part, name).items():
                    total[column] = total.get(column, 0) + n
        out.parse_share = {
            c: 1.0 if out.present[c] == 0 else (out.present[c] - out.unparsed[c]) / out.present[c]
            for c in out.unparsed
        }
        return out


def standardise(
    data: pd.DataFrame,
    kinds: dict[str, str],
    read_target: Callable[[pd.Series], pd.Series],
    date_formats: list[str],
    aliases: dict[str, dict[str, str]] | None = None,
    unit_fixes: list[dict[str, Any]] | None = None,
) -> Standardised:
    """Give every column the type its kind says; never changes ``data``.

    Numbers stored as text become floats (blank cells missing), dates in any of the
    formats become datetimes, categories are normalised (:func:`normalise_category`), the
    target is read by ``read_target`` (the problem type's: binary makes it 0/1) with missing
    labels missing, and declared unit bugs are fixed
    (values above ``above`` divided by ``divide_by``). Cells that do not parse become
    missing and are counted.
    """
    out: dict[str, pd.Series] = {}
    result = Standardised(frame=pd.DataFrame())
    for column in data.columns:
        kind = kinds.get(column, "text")
        values = data[column]
        present = int((~_blank(values)).sum())
        failed = 0
        if kind == "numeric":
            out[column], failed = parse_numbers(values)
        elif kind == "datetime":
            out[column], failed = parse_dates(values, date_formats)
        elif kind == "categorical":
            out[column] = normalise_category(values, (aliases or {}).get(column))
        elif kind == "target":
            out[column] = read_target(values)
        else:
            out[column] = values.astype("string").str.strip()
        if kind in ("numeric", "datetime"):
            result.unparsed[column] = failed
            result.present[column] = present
            result.parse_share[column] = 1.0 if present == 0 else (present - failed) / present
    frame = pd.DataFrame(out, index=data.index)
    for fix in unit_fixes or []:
        column = fix["column"]
        if column in frame and kinds.get(column) == "numeric":
            wrong = frame[column] > float(fix["above"])
            frame.loc[wrong, column] = frame.loc[wrong, column] / float(fix["divide_by"])
            result.unit_fixed[column] = int(wrong.sum())
    result.frame = frame
    return result
