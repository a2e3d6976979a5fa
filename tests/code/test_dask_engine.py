"""The Dask engine on a local cluster of two workers gives the local engine's results.

Data steps (standardise, features, the data-quality suite) and slices must match exactly; candidate
cross-validation and parallel tuning trials too (same folds, same seeds); XGBoost trained
with ``xgboost.dask`` within noise.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import ComputeParams
from tasks.core.data.features import build_features, features_only
from tasks.core.data.schema import Standardised, kinds_for, standardise
from tasks.core.data.simulator import simulate
from tasks.core.metrics import metric as metric_named
from tasks.core.ml.crossval import cross_validate
from tasks.core.ml.models import load_model, save_model
from tasks.core.ml.objective import objective_for
from tasks.core.ml.tuning import Tuning, tune
from tasks.core.quality.validation import propose_suite, validate_frame, validate_parts
from tasks.core.runtime.compute import engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_engine(tmp_path_factory):
    cfg = ComputeParams(engine="dask", n_workers=2, threads_per_worker=1, partition_rows=1000)
    root = tmp_path_factory.mktemp("dask")
    with engine(cfg, root, "test") as eng:
        assert eng.is_dask and len(eng.client.scheduler_info()["workers"]) == 2
        yield eng
    assert not (root / ".dask-scratch" / "test").exists()


@pytest.fixture(scope="module")
def raw_and_kinds(params):
    p, c = params.problem, params.clean
    raw = simulate(dt.date(2024, 1, 1), dt.date(2024, 2, 15), 80, seed=5).data
    kinds = kinds_for(raw, p, c)
    return raw, kinds


def _standardise(raw, kinds, params):
    c = params.clean
    return dict(
        kinds=kinds,
        read_target=objective_for(params.problem).read_target,
        date_formats=c.date_formats,
        aliases=c.category_aliases,
        unit_fixes=[f.model_dump() for f in c.unit_fixes],
    )


def test_standardise_and_features_per_partition_match_local(dask_engine, raw_and_kinds, params):
    raw, kinds = raw_and_kinds
    kwargs = _standardise(raw, kinds, params)
    whole = standardise(raw, **kwargs)
    parts = dask_engine.map_partitions(standardise, raw, "raw", **kwargs)
    assert len(parts) == -(-len(raw) // 1000) > 1
    combined = Standardised.combine(parts)
    pd.testing.assert_frame_equal(combined.frame, whole.frame)
    assert combined.unparsed == whole.unparsed and combined.unit_fixed == whole.unit_fixed
    assert combined.parse_share == pytest.approx(whole.parse_share)

    problem = params.problem
    local, _ = build_features(whole.frame, problem, [])
    spread = pd.concat(
        dask_engine.map_partitions(features_only, whole.frame, "clean", problem=problem, drop=[])
    )
    pd.testing.assert_frame_equal(spread, local)


def test_partitioned_checks_match_great_expectations_on_all_rows(
    dask_engine, raw_and_kinds, params, tmp_path
):
    def in_parts(frame):  # the checks clean runs: row-level ones part by part on the workers
        path = tmp_path / "frame.parquet"
        frame.to_parquet(path, row_group_size=max(1, len(frame) // 4))
        return validate_parts(dask_engine, path, spec, "t", None, None, [])

    raw, kinds = raw_and_kinds
    frame = standardise(raw, **_standardise(raw, kinds, params)).frame
    spec = propose_suite(frame, kinds, "t", 0.05, 0.99, {})
    good_local = validate_frame(frame, spec, "t")
    assert all(r.success for r in good_local)
    assert in_parts(frame) == good_local

    # break it: nulls above the ceiling in one partition only, values out of range spread
    # thin (below `mostly` in every partition but above it overall), a repeated id block
    bad = frame.copy()
    bad.loc[bad.index[:600], "monthly_charges"] = np.nan
    step = max(1, len(bad) // 300)
    bad.loc[bad.index[::step], "tenure_months"] = -5.0
    bad.loc[bad.index[-400:], "customer_id"] = bad["customer_id"].iloc[0]
    local = validate_frame(bad, spec, "t")
    spread = in_parts(bad)
    assert [(r.expectation, r.column, r.success) for r in spread] == [
        (r.expectation, r.column, r.success) for r in local
    ]
    failed = {(r.expectation, r.column) for r in local if not r.success}
    assert ("expect_column_values_to_be_between", "tenure_months") in failed
    assert ("expect_column_values_to_be_unique", "customer_id") in failed
    assert any(column == "monthly_charges" for _, column in failed)


def test_cross_validation_in_parallel_matches_local(dask_engine, params, splits):
    train = splits["train"]
    cfg = params.choose
    local = cross_validate(train, params.problem, cfg)
    spread = cross_validate(train, params.problem, cfg, dask_engine)
    # the fold scores are rounded to six places; a worker's BLAS may sum in another order and
    # land a score on the other side of a rounding edge (0.8473335), so one unit of the last place
    assert [r["model"] for r in spread] == [r["model"] for r in local]
    for far, near in zip(spread, local, strict=True):
        assert far["folds"] == pytest.approx(near["folds"], abs=1.5e-6)


def test_tuning_on_dask_matches_local(dask_engine, params, splits, split_files, tmp_path):
    tuning = Tuning.of(params)
    valid = splits["valid"]
    train, valid_file = split_files["train"], split_files["valid"]
    hashes = {"train": "0" * 16, "valid": "0" * 16}
    # logistic regression: parallel trials, then the best refitted here - the same model exactly
    local_trials, (_, _, local_proba) = tune(
        "logistic_regression", {}, train, valid_file, tuning, hashes
    )
    dask_trials, (_, pipeline, dask_proba) = tune(
        "logistic_regression", {}, train, valid_file, tuning, hashes, dask_engine
    )
    assert [t["roc_auc"] for t in dask_trials] == [t["roc_auc"] for t in local_trials]
    np.testing.assert_allclose(pipeline.predict_proba(_x(valid, params))[:, 1], dask_proba)

    # xgboost.dask: trained across both workers; the same search within noise
    base = params.choose.params.get("xgboost", {})
    local_trials, (_, _, local_proba) = tune("xgboost", base, train, valid_file, tuning, hashes)
    dask_trials, (_, pipeline, dask_proba) = tune(
        "xgboost", base, train, valid_file, tuning, hashes, dask_engine
    )
    roc = metric_named("roc_auc")
    y_valid = valid[params.problem.target].to_numpy(int)
    assert abs(roc(y_valid, dask_proba) - roc(y_valid, local_proba)) < 0.02
    # the result is an ordinary pipeline: stored, loaded and scored like a local one
    save_model(pipeline, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    np.testing.assert_allclose(loaded.predict_proba(_x(valid, params))[:, 1], dask_proba, rtol=1e-6)


def _x(frame, params):
    from tasks.core.ml.models import model_inputs

    return model_inputs(frame, params.problem)[0]


def test_slices_in_parallel_match_local(dask_engine, params, splits):
    from tasks.core.ml.gate import slice_metrics

    valid = splits["valid"]
    y = valid[params.problem.target].to_numpy(int)
    proba = np.linspace(0, 1, len(valid))
    cfg = params.evaluate
    local = slice_metrics(valid, y, proba, cfg, params.problem)
    assert {r["column"] for r in local} == set(cfg.slices) and len(local) > len(cfg.slices)
    assert slice_metrics(valid, y, proba, cfg, params.problem, dask_engine) == local
