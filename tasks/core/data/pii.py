"""Personal data: columns dropped or pseudonymised before a snapshot is stored.

``collect.pii`` names the personal columns of a source and what to do with each: ``drop``
removes it, ``pseudonymise`` replaces every value by a keyed hash (HMAC-SHA-256), so the
column still joins and counts but no longer says who. The key comes from the environment
(``collect.pii_key_env``, default ``CHURN_PII_KEY``; put it in ``.env``), never from
``params.yaml``. The same rules apply to records sent to ``/predict`` and ``make score``,
so a personal field never reaches the prediction log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any, Literal

import pandas as pd

from tasks.core.env import PlaceholderSecret, refuse_placeholder

Action = Literal["drop", "pseudonymise"]
PREFIX = "p_"

# column names and value shapes that suggest personal data (make init flags them)
_NAMES = re.compile(
    r"(^|[_\s-])(e-?mail|mail|phone|mobile|tel|fax|name|first_?name|last_?name|surname|"
    r"address|street|city|zip|postcode|postal|birth_?date|date_?of_?birth|dob|ssn|passport|"
    r"iban|card|ip)([_\s-]?(number|no|nr|code|address))?$",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
# a phone: an optional +, then groups of digits split by spaces, dashes, dots or brackets,
# 7 to 15 digits in all (E.164 allows 15)
_PHONE = re.compile(r"^\+?\(?\d{1,4}\)?(?:[\s.-]?\(?\d{1,5}\)?){1,6}$")
# the separators a phone is written with: spaces, brackets, +, dashes; dots only in the
# 555.010.9999 form (digits and dots alone are more often thousands or an IP address)
_PHONE_SEPARATOR = re.compile(r"[\s()+-]|^\d{2,4}\.\d{3,4}\.\d{4}$")
# what a phone is not: a plain number (a decimal, an amount, a coordinate), a date or a
# time stamp (ISO 8601 or day/month forms), a version-like or dotted decimal
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(
    r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"([T\s]\d{1,2}(:\d{2}){0,2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
# at least this share of a column's sampled values must have a shape before it is flagged
MIN_SHARE = 0.8


def _phone_like(values: pd.Series) -> pd.Series:
    """Which values have a phone's shape (and are not a number or a date)."""
    digits = values.str.count(r"\d")
    return (
        values.str.match(_PHONE)
        & values.str.contains(_PHONE_SEPARATOR)
        & digits.between(7, 15)
        & ~values.str.match(_NUMBER)
        & ~values.str.match(_DATE)
    )


class PiiError(ValueError):
    """Pseudonymisation was asked for but no key is set."""


def key_from_env(variable: str) -> bytes | None:
    """The pseudonymisation key from the environment (None when unset or empty).

    Raises
    ------
    PiiError
        When it still holds ``.env.example``'s placeholder.
    """
    value = os.environ.get(variable, "")
    try:
        refuse_placeholder(variable, value)
    except PlaceholderSecret as exc:
        raise PiiError(str(exc)) from None
    return value.encode() if value else None


def pseudonym(value: Any, key: bytes) -> str:
    """A keyed hash of ``value``: the same value and key always give the same pseudonym."""
    digest = hmac.new(key, str(value).strip().encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:24]


def key_id(key: bytes) -> str:
    """A short fingerprint of the key (never the key), recorded in provenance."""
    return hmac.new(key, b"churn-pii-key-id", hashlib.sha256).hexdigest()[:8]


def protect_frame(
    frame: pd.DataFrame, rules: dict[str, Action], key: bytes | None, key_env: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``frame`` with its personal columns dropped or pseudonymised (a new frame).

    Returns
    -------
    (DataFrame, dict)
        The protected frame, and what was done (for the snapshot's provenance).

    Raises
    ------
    PiiError
        When a column is to be pseudonymised and ``key_env`` is not set.
    """
    present = {c: a for c, a in rules.items() if c in frame.columns}
    if any(a == "pseudonymise" for a in present.values()) and key is None:
        raise PiiError(
            f"collect.pii pseudonymises {sorted(c for c, a in present.items() if a != 'drop')} "
            f"but {key_env} is not set: export {key_env}=<a secret key> (docker compose reads it "
            "from .env), never in params.yaml"
        )
    out = frame.drop(columns=[c for c, a in present.items() if a == "drop"])
    for column, action in present.items():
        if action == "pseudonymise":
            values = out[column]
            out[column] = values.map(lambda v: pseudonym(v, key), na_action="ignore").where(
                values.notna(), None
            )
    record: dict[str, Any] = {"columns": present, "missing": sorted(set(rules) - set(present))}
    if key is not None and "pseudonymise" in present.values():
        record["key_id"] = key_id(key)
    return out, record


def protect_record(record: dict[str, Any], rules: dict[str, Action], key: bytes | None) -> dict:
    """One record with the same rules (a pseudonymised field without a key is dropped)."""
    out = {}
    for field, value in record.items():
        action = rules.get(field)
        if action is None:
            out[field] = value
        elif action == "pseudonymise" and key is not None and value not in (None, ""):
            out[field] = pseudonym(value, key)
    return out


def looks_personal(
    frame: pd.DataFrame, sample: int = 500, exclude: set[str] | None = None
) -> dict[str, str]:
    """Columns that look personal, with the reason (a name, or values like e-mails/phones).

    Values are judged on a sample of up to ``sample`` non-blank cells, and a shape must hold
    for at least :data:`MIN_SHARE` of them: a column of decimals, amounts, dates or
    coordinates is never taken for phone numbers. Columns of a numeric type are judged by
    their name only. ``exclude`` names columns never proposed (the target).
    """
    found = {}
    for column in frame.columns:
        if exclude and column in exclude:
            continue
        typed = frame[column]
        numeric = pd.api.types.is_numeric_dtype(typed) or pd.api.types.is_bool_dtype(typed)
        values = pd.Series([], dtype=str)
        if not numeric:
            values = typed.dropna().astype(str).str.strip()
            values = values[values != ""].head(sample)
        emails = values.str.match(_EMAIL).mean() if len(values) else 0.0
        phones = _phone_like(values).mean() if len(values) else 0.0
        if emails >= MIN_SHARE:
            found[str(column)] = f"{emails:.0%} of sampled values look like e-mail addresses"
        elif phones >= MIN_SHARE:
            found[str(column)] = f"{phones:.0%} of sampled values look like phone numbers"
        elif _NAMES.search(str(column)):
            found[str(column)] = "its name suggests personal data"
    return found
