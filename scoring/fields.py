"""What a served record's fields may hold: the rules the pandas and the compiled paths share."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

ID_MAX_CHARS = 128
"""Longest record id accepted (the same on SQLite and PostgreSQL; the log column holds 256)."""


INT_LIMIT = 2**63


LARGEST = float(np.finfo(np.float32).max)
"""Largest number a model input may hold: tree models (XGBoost, scikit-learn's forests) read
their inputs as float32 and fail on anything larger."""


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


MAX_FIELD_CHARS = 10_000
"""Longest text a field may hold (``collect.max_field_chars``' default, which sources
obey): a longer one is refused before it is scored or logged."""


NOT_IDS = {"nan", "none", "null", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def finite(value: int | float) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:  # an integer too large for a float
        return False


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value (batch files deliver them); anything else as is."""
    return value.item() if isinstance(value, np.generic) else value


def value_problem(value: Any) -> str | None:
    """Why a field's value can never be used, whatever the field (None when it can be)."""
    if isinstance(value, (dict, list, tuple, set, np.ndarray)):
        return "must be a single value, not an object or a list"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not -INT_LIMIT < value < INT_LIMIT:
        return f"expected a finite number of at most 19 digits; got {len(str(abs(value)))} digits"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            return too_long(value)
        if CONTROL.search(value):
            return "contains a control character"
        return None
    if not isinstance(value, (int, float)):
        return f"unsupported value of type {type(value).__name__}"
    return None


def too_long(value: str) -> str:
    """The 422 reason for a text longer than any field may hold."""
    return f"a text of {len(value):,} characters; at most {MAX_FIELD_CHARS:,}"


def too_large(value: Any) -> str:
    """The 422 reason for a number no model can read."""
    return f"expected a number of magnitude at most {LARGEST:.4g}, got {value!r}"


def id_problem(value: Any) -> str | None:
    """Why a record id is refused (the API and batch scoring use this one rule)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return "the id is required: a text or an integer"
    text = str(value).strip()
    if not text or text.lower() in NOT_IDS:
        return f"the id is required (got {value!r})"
    if isinstance(value, int) and not -INT_LIMIT < value < INT_LIMIT:
        return "the id is a number too large"
    if len(text) > ID_MAX_CHARS:
        return f"the id has {len(text)} characters; at most {ID_MAX_CHARS}"
    if CONTROL.search(text):
        return "the id contains a control character"
    return None


class RecordError(ValueError):
    """A record field that cannot be used, with where and why."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index, self.field, self.reason = index, field, reason
        super().__init__(f"record {index}, field '{field}': {reason}")
