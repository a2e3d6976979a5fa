"""The prediction log's writer: its fast paths store exactly what their definitions would."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.compiled import InputColumns
from scoring.scoring import LoadedModel
from scoring.segments import _input_array, input_columns
from scoring.store import PREDICTIONS, PredictionStore, _sqlalchemy_insert
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry


def test_the_sqlite_writer_stores_rows_as_sqlalchemy_does(tmp_path):
    """The driver's multi-row INSERT against SQLAlchemy's own, on a batch larger than one
    statement holds, with times in another zone than UTC and every optional column."""
    when = dt.datetime(2026, 3, 1, 9, 5, 7, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    n = 7_000  # several statements: SQLite binds at most 32,766 values in one
    texts = {}
    for name, fast in (("driver", True), ("sqlalchemy", False)):
        store = PredictionStore(f"sqlite:///{tmp_path / name}.db", lambda: when)
        if not fast:
            store._insert_rows = _sqlalchemy_insert
        try:
            store.log(
                "r1",
                "v0001",
                [f"C{i}" if i % 3 else None for i in range(n)],
                [{"x": float(i)} for i in range(n)],
                [i / n for i in range(n)],
                [i % 2 for i in range(n)],
                shadow_version="v0000",
                shadow_scores=[0.5] * n,
            )
            store.log("r2", "v0001", ["a"], [{"x": 1.0}], [0.25], [0])
            store.flush()
            with store.engine.connect() as conn:
                texts[name] = conn.exec_driver_sql(
                    "SELECT * FROM predictions ORDER BY request_id, row"
                ).all()
                typed = conn.execute(sa.select(PREDICTIONS.c.created_at).limit(1)).scalar_one()
            assert typed == when.replace(tzinfo=None), "read back as SQLAlchemy wrote it"
            window = store.window(when - dt.timedelta(seconds=1), when + dt.timedelta(seconds=1))
            assert len(window) == n + 1
        finally:
            store.close()
    assert len(texts["driver"]) == n + 1
    assert texts["driver"] == texts["sqlalchemy"]


INPUTS = {
    "floats with NaN and None": [1.5, math.nan, None, 2.0],
    "integers": [1, 2, None, 3],
    "integers and floats": [1, 2.5, 3, None],
    "text": ["a", None, "b", "c"],
    "all missing": [None, None, None, None],
    "all NaN": [math.nan, math.nan, math.nan, math.nan],
    "booleans": [True, False, None, True],
    "text and numbers": ["a", 1.5, None, 2],
    "dates": [dt.date(2024, 1, 1), None, dt.date(2024, 2, 1), dt.date(2024, 3, 1)],
    "huge integers": [2**70, 1, 2, 3],
    "pandas NA": [pd.NA, 1.0, 2.0, 3.0],
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_input_columns_type_each_input_as_the_definition_does(kind):
    """Arrow's one-call conversion of the model inputs against :func:`_input_array`, the
    definition, column by column (a column of mixed kinds beside a clean one too)."""
    values = INPUTS[kind]
    rows = [{"clean": float(i), "x": v} for i, v in enumerate(values)]
    got = input_columns([rows[:1], rows[1:]])  # two requests' inputs
    assert list(got) == ["clean", "x"]
    for name in got:
        expected = _input_array([row[name] for row in rows])
        assert got[name].type == expected.type, (kind, name, got[name].type, expected.type)
        assert got[name].equals(expected), (kind, name, got[name], expected)


@pytest.mark.parametrize(
    "categories",
    [["a", None, "b", "c"], [None, None, None, None], ["x", "y", "z", "w"]],
    ids=["text", "all missing", "no missing"],
)
def test_the_batch_paths_columns_are_typed_as_its_rows(categories):
    """Requests read column-wise (:class:`InputColumns`) go to the log as Arrow arrays
    without a row in between: the same types and values as their rows would give."""
    numbers = np.array([1.5, np.nan, -0.0, 2.0])
    parts = [
        InputColumns({"n": numbers[:2]}, {"c": categories[:2]}, 2),
        InputColumns({"n": numbers[2:]}, {"c": categories[2:]}, 2),
    ]
    got = input_columns(parts)
    want = input_columns([[row for part in parts for row in part]])
    assert list(got) == list(want) == ["n", "c"]
    for name in want:
        assert got[name].type == want[name].type and got[name].equals(want[name]), name


def test_input_columns_when_records_have_different_fields():
    rows = [{"a": 1.0}, {"b": "x"}, {"a": 2.0, "b": None}]
    got = input_columns([rows])
    assert got["a"].to_pylist() == [1.0, None, 2.0]
    assert got["b"].to_pylist() == [None, "x", None]


def test_the_writer_scores_a_flush_in_shadow_together_in_every_form(trained_project, tmp_path):
    """One flush holding a batch read column-wise, single records (rows) and a request
    whose rows came from the pandas path (no signature: the shadow reads its records): each
    row's shadow score is the shadow's own score of that record. The champion stands in as
    its own shadow, so every shadow score equals the logged score."""
    registry = Registry(trained_project / "registry")
    model = LoadedModel.load(registry, registry.champion())
    raw = current_snapshot(trained_project / PATHS.raw_dir).read().head(40)
    records = json.loads(raw.drop(columns=["churned_30d"]).to_json(orient="records"))
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", log_dir=tmp_path / "log", flush_s=1)
    signature = model.compiled.signature
    try:
        proba, inputs = model.score_many(records[:30])
        assert isinstance(inputs, InputColumns)
        requests = [("batch", proba, inputs, records[:30], signature)]
        for i, record in enumerate(records[30:35]):
            p, row = model.score_one(record)
            requests.append((f"one-{i}", [p], [row], [record], signature))
        scores, X = model.score(records[35:])
        requests.append(("pandas", scores.tolist(), X.to_dict("records"), records[35:], None))
        for request_id, p, rows, recs, sig in requests:
            ids = model.record_ids(recs)
            store.log(
                request_id,
                "v0001",
                ids,
                rows,
                p,
                [1] * len(p),
                shadow=model,
                records=recs,
                signature=sig,
            )
        store.flush()
        assert store.shadow_skipped == 0
        for request_id, p, *_ in requests:
            got = store.get(request_id)
            assert [r["shadow_version"] for r in got] == [model.version.version] * len(p)
            np.testing.assert_allclose([r["shadow_score"] for r in got], p, rtol=0, atol=1e-12)
    finally:
        store.close()
