"""The readers that let a stage work on a file it never loads whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.io import parquet_rows, sample_positions, take_rows, write_parts
from tasks.core.quality.audit_frame import id_block
from tasks.promote import schema_of_parts, training_schema


def parted(tmp_path, frame, rows):
    path = tmp_path / "t.parquet"
    with write_parts(path) as out:
        for start in range(0, len(frame), rows):
            out.write(frame.iloc[start : start + rows])
        out.close()
    return path


def test_take_rows_gives_the_rows_dataframe_sample_draws(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=1000), "c": rng.choice(["a", "b", None], 1000), "k": range(1000)}
    )
    path = parted(tmp_path, frame, 128)
    assert parquet_rows(path) == 1000
    for size, seed in ((10, 1), (999, 2), (1000, 3)):
        expected = frame.sample(size, random_state=seed)
        got = take_rows(path, sample_positions(1000, size, seed))
        pd.testing.assert_frame_equal(got, expected)
    assert take_rows(path, np.array([], dtype=int)).empty


def test_the_id_check_is_exact_when_two_keys_share_a_hash():
    keys = pd.Series(["a", "b", "c", "c"])
    splits = pd.Series(["train", "test", "train", "valid"])
    collide = np.array([7, 7, 9, 9], dtype=np.uint64)  # a and b collide; c is in two splits
    block, n_keys = id_block(collide, splits, lambda rows: keys.iloc[rows])
    assert list(block.loc[block["id_n_splits"] > 1, "subject"]) == ["id:c"]
    assert n_keys == 2  # counted by hash: the collision merges a and b
    assert block["subject"].iloc[-1].startswith("ids: the other")


def test_the_training_schema_merged_over_parts_is_the_whole_frames(params):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 70, 500).astype(float),
            "contract": rng.choice(["monthly", "annual", None], 500),
            "churned_30d": rng.integers(0, 2, 500),
        }
    )
    frame.loc[::7, "tenure_months"] = np.nan
    parts = [frame.iloc[s : s + 64] for s in range(0, 500, 64)]
    assert schema_of_parts(parts, params) == training_schema(frame, params)


@pytest.mark.parametrize("repeats", [0, 40], ids=["unique-ids", "repeated-ids"])
def test_id_uniqueness_counted_on_the_shuffle_equals_gx_on_the_whole_column(
    tmp_path, repeats, monkeypatch
):
    """clean's id check reads the buckets of the id shuffle, never the whole id column."""
    from tasks.core.config import ComputeParams
    from tasks.core.data.shuffle import shuffle
    from tasks.core.quality.validation import (
        UNIQUE,
        partition_counts,
        validate_frame,
        validate_parts,
    )
    from tasks.core.runtime.compute import Engine

    rng = np.random.default_rng(repeats)
    ids = [f"c{i}" for i in range(2000)]
    for k in range(repeats):  # repeated ids, far apart in the file
        ids[1999 - k] = ids[k * 7]
    frame = pd.DataFrame({"id": ids, "x": rng.normal(size=2000)})
    unique = {"type": UNIQUE, "kwargs": {"column": "id", "mostly": 0.99}}
    spec = {
        "name": "t",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            unique,
        ],
    }
    path = parted(tmp_path, frame, 300)
    counts = []
    with shuffle(5, "id", tmp_path) as sh:
        for start in range(0, 2000, 300):
            sh.add(frame.iloc[start : start + 300])
        for bucket in sh.buckets():
            counts.append(partition_counts(bucket[["id"]], {"expectations": [unique]})[0])

    def whole_column(*args, **kwargs):
        raise AssertionError(f"a whole column was read: {args} {kwargs}")

    with monkeypatch.context() as patch:
        patch.setattr(pd, "read_parquet", whole_column)
        got = validate_parts(Engine(ComputeParams()), path, spec, "t", None, "id", counts)
    whole = validate_frame(frame, spec, "t")

    def verdict(r):  # the examples come in bucket order, not row order
        return r.expectation, r.column, r.success, r.observed.split(", e.g.")[0]

    assert [verdict(r) for r in got] == [verdict(r) for r in whole]
    assert got[1].success == (repeats == 0)
    if repeats:
        assert "4.00% unexpected" in got[1].observed and "'c7'" in got[1].observed


def test_text_columns_read_compact_keep_their_values_and_give_the_same_rule_scores(tmp_path):
    from tasks.core.config import RuleBaseline
    from tasks.core.io import read_compact
    from tasks.core.ml.baselines import rule_scores

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "label": pd.Series(rng.choice(["yes", "no", " Yes", None], 1000), dtype="string"),
            "tenure": pd.Series(rng.choice(["1,200", "3", " 7 ", "", None, "x"], 1000)),
            "n": rng.integers(0, 9, 1000),
        }
    )
    path = parted(tmp_path, frame, 128)
    compact = read_compact(path, ["label", "tenure", "n"])
    assert isinstance(compact["label"].dtype, pd.CategoricalDtype)
    assert compact["n"].dtype == frame["n"].dtype
    whole = pd.read_parquet(path)
    for c in ("label", "tenure"):
        assert (
            compact[c].astype(object).where(compact[c].notna(), None).tolist()
            == whole[c].astype(object).where(whole[c].notna(), None).tolist()
        )
    from tasks.core.data.schema import parse_numbers

    parsed, whole_parsed = parse_numbers(compact["tenure"]), parse_numbers(whole["tenure"])
    pd.testing.assert_series_equal(parsed[0], whole_parsed[0])
    assert parsed[1] == whole_parsed[1] > 0  # the same cells counted as not numbers
    rule = RuleBaseline(column="tenure", higher_is_positive=False)
    np.testing.assert_array_equal(
        rule_scores(compact["tenure"], rule), rule_scores(whole["tenure"], rule)
    )


def test_the_training_parts_keep_the_fitted_rows_matrix_in_place(tmp_path, params):
    """XGBoost's training matrix, part by part: the sampled rows the preprocessing was
    fitted on take their rows of its fit_transform (a cross-fitted encoding), wherever they
    fall among the parts; the other rows are transformed."""
    from tasks.core.ml.objective import objective_for
    from tasks.core.ml.parts import FitRows, prepared_parts

    class Prep:  # transform: the row's k, negated; the fit's rows are told apart by sign
        def transform(self, X):
            return -X[["k"]].to_numpy(float)

    frame = pd.DataFrame({"k": np.arange(1000.0), "churned_30d": np.arange(1000) % 2})
    path = parted(tmp_path, frame, 128)
    objective = objective_for(params.problem.model_copy(update={"target": "churned_30d"}))
    rows = FitRows.read(path, objective, limit=300, random_state=4)
    assert rows.positions is not None and len(rows.y) == 300
    Z_fit = rows.X[["k"]].to_numpy(float)  # the fit's matrix: the row's k itself
    parts = list(prepared_parts(path, Prep(), ["k"], [], objective, (rows, Z_fit)))
    assert [len(z) for z, _ in parts] == [128] * 7 + [104]
    Z = np.concatenate([z for z, _ in parts])[:, 0]
    fitted = np.zeros(1000, bool)
    fitted[rows.positions] = True
    assert np.array_equal(Z[fitted], np.arange(1000.0)[fitted])
    assert np.array_equal(Z[~fitted], -np.arange(1000.0)[~fitted])
    assert np.array_equal(np.concatenate([y for _, y in parts]), frame["churned_30d"])
    whole = FitRows.read(path, objective, limit=1000, random_state=4)
    assert whole.positions is None and len(whole.y) == 1000
