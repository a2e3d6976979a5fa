"""The compiled per-record path held to the pandas path (the definition), record by record."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scoring.compiled import InputColumns
from scoring.fields import RecordError
from scoring.scoring import LoadedModel


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them (missing cells as null)."""
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


# values a source really sends, per kind of field: each replaces one field of a record
TRICKY: dict[str, list[Any]] = {
    "numeric": [
        "1,234.5",
        " 12 ",
        "1e3",
        "+5",
        ".5",
        "5.",
        "-0",
        "abc",
        "",
        "   ",
        "inf",
        "-Infinity",
        "NaN",
        "-",
        "1_000",
        "\uff11\uff12",
        "\u0661\u0662",
        3,
        3.5,
        -2,
        True,
        10**18,
        "12,34",
        "1,234,567",
        "0x10",
        "1 234",
        "1.5e400",
        1e300,
        "٣",
        "7,000",
        None,
    ],
    "datetime": [
        "2024-01-05",
        "1/5/2024",
        "01/05/2024",
        "Jan 05, 2024",
        "Jan 5, 2024",
        "2024-1-5",
        " 2024-01-05 ",
        "2024-01-05T10:00",
        "2024/01/05",
        "31/12/2024",
        "Feb 30, 2024",
        "jan 05, 2024",
        "JAN 05, 2024",
        20240105,
        2024.5,
        True,
        "",
        "\uff12024-01-05",
        "2024-01-05 ",
        "Sept 05, 2024",
        "1999-12-31",
        "2100-01-01",
        None,
        "0001-01-01",
    ],
    "categorical": [
        "Month to Month ",
        "MONTH-TO-MONTH",
        "month_to_month",
        "brand-new-plan",
        3,
        3.5,
        True,
        "",
        "  ",
        "\u00c4\u00d6",
        "credit card (automatic)",
        "Cr\u00e9dit",
        "--",
        None,
        0,
        -1.25,
        "credit-card-automatic",
        "CREDIT_CARD",
        "e\u0301",
        "\u0130stanbul",
    ],
    "text": [" padded ", "", None, 5, 2.5, False, "x" * 300],
    "any": [{"nested": 1}, [1, 2], float("nan"), float("inf"), "bell\x07", 2**70, 1e20],
}


def tricky_records(
    model: LoadedModel, base: list[dict[str, Any]], fields: int | None = None
) -> list[dict[str, Any]]:
    """One record per (field, tricky value): a base record with that field replaced.

    ``fields`` limits how many fields are tried (spread over the kinds, for wide data).
    """
    out: list[dict[str, Any]] = []
    k = 0
    chosen = [(f, kind) for f, kind in model.kinds.items() if kind != "target"]
    if fields is not None and len(chosen) > fields:
        by_kind = sorted(chosen, key=lambda fk: fk[1])
        chosen = by_kind[:: -(-len(by_kind) // fields)]
    for field, kind in chosen:
        for value in TRICKY.get(kind, TRICKY["text"]) + TRICKY["any"]:
            record = dict(base[k % len(base)])
            record[field] = value
            out.append(record)
            k += 1
    # records that are wrong as a whole, or lack fields
    out += [{}, {"unknown_field": 1}, dict(list(base[0].items())[:3])]
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(b))
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def assert_same_answers(
    model: LoadedModel,
    records: list[dict[str, Any]],
    batch: int = 5000,
    singles_every: int = 1,
    one_record_batches: bool | None = None,
) -> dict[str, int]:
    """Both paths on every record: identical decisions, probabilities to 1e-9, model inputs
    equal, and the same (record, field, reason) for each refused record.

    Every record goes through the compiled batch path and the pandas path; every
    ``singles_every``-th one also through the single-record path (XGBoost's call costs
    0.2 ms a row whatever the row, so its 100,000-record test scores one in ten singly).
    The pandas path scores the accepted records in batches of ``batch`` (tricky values of
    every field side by side: a harder test of its column-wise parsing than one record
    alone, and a fortieth of the time) and each refused record alone, as the issue asks.
    The compiled batch path reads a batch a column at a time, or record by record when one
    cell needs it; with ``one_record_batches`` (the default for up to 5,000 records) every
    record is also sent as a batch of its own, so that each tricky value is read column-wise
    however its neighbours are read, and every refused record gets the same 422 that way.
    """
    if one_record_batches is None:
        one_record_batches = len(records) <= 5000
    refused: dict[int, tuple[str, str]] = {}
    singles: dict[int, tuple[float, dict[str, Any]]] = {}  # by position in ``kept``
    kept: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        if i % singles_every and model.compiled.check(model.protect([record])[0]) is None:
            kept.append(record)  # accepted: scored in a batch below
            continue
        try:
            singles[len(kept)] = model.score_one(record)
        except RecordError as exc:
            assert exc.index == 0
            refused[i] = (exc.field, exc.reason)
        else:
            kept.append(record)
    fast: list[float] = []
    rows: list[dict[str, Any]] = []
    columns = 0  # records the batch path read a column at a time
    for k in range(0, len(kept), batch):
        proba, inputs = model.score_many(kept[k : k + batch])
        fast += proba
        rows += inputs
        columns += len(inputs) if isinstance(inputs, InputColumns) else 0
    slow: list[np.ndarray] = []
    frames: list[pd.DataFrame] = []
    for k in range(0, len(kept), batch):
        proba, X = model.score(kept[k : k + batch])  # raises if it refuses what fast accepted
        slow.append(proba)
        frames.append(X)
    expected = np.concatenate(slow) if slow else np.zeros(0)
    got = np.asarray(fast)
    assert got.shape == expected.shape
    if len(got):
        gap = np.abs(got - expected).reshape(len(got), -1).max(axis=1)  # a row's worst class
        worst = int(np.argmax(gap))
        assert gap[worst] <= 1e-9, (kept[worst], got[worst], expected[worst])
        decide = model.objective.logged_decisions  # 0/1, a class, or none (regression)
        assert (decide(got, model.threshold) == decide(expected, model.threshold)).all()
        wanted = pd.concat(frames, ignore_index=True).to_dict(orient="records")
        for j, (row, want) in enumerate(zip(rows, wanted)):
            bad = {c: (row[c], want[c]) for c in want if not _same(row[c], want[c])}
            assert not bad, (kept[j], bad)
    # the single-record path: exactly the batch path's answers
    for j, (probability, row) in singles.items():
        assert probability == fast[j] and row.keys() == rows[j].keys(), (kept[j], probability)
        assert all(_same(row[c], rows[j][c]) for c in row), (kept[j], row, rows[j])
    alone = 0  # records read column-wise in a batch of their own
    if one_record_batches:
        for j, record in enumerate(kept):
            (probability,), inputs = model.score_many([record])
            alone += isinstance(inputs, InputColumns)
            assert probability == fast[j], (record, probability, fast[j])
            assert all(_same(v, rows[j][c]) for c, v in inputs[0].items()), (record, inputs[0])
        for i, (field, reason) in refused.items():
            try:
                model.score_many([records[i]])
            except RecordError as exc:
                assert (exc.index, exc.field, exc.reason) == (0, field, reason), (records[i], exc)
            else:
                raise AssertionError(f"the batch path accepts a refused record: {records[i]!r}")
    # a batch's first error as pandas names it
    rng = np.random.default_rng(0)
    bad = sorted(refused)
    for _ in range(min(200, len(bad))):
        picks = list(rng.choice(len(records), 4)) + list(rng.choice(bad, 2))
        mixed = [records[int(i)] for i in rng.permutation(picks)]
        errors = []
        for path in (model.score, model.score_many):
            try:
                path(mixed)
            except RecordError as exc:
                errors.append((exc.index, exc.field, exc.reason))
        assert len(errors) == 2 and errors[0] == errors[1], (mixed, errors)
    for i, (field, reason) in refused.items():
        try:
            model.score([records[i]])
        except RecordError as exc:
            assert (exc.field, exc.reason) == (field, reason), (records[i], exc, reason)
        else:
            raise AssertionError(
                f"the pandas path accepts what the compiled path refused: "
                f"{records[i]!r} ({field}: {reason})"
            )
    return {"scored": len(got), "refused": len(refused), "columns": columns, "alone": alone}
