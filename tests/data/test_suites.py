"""Each suite against good and broken data; each leakage check against exactly its leak."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import parse_params
from tasks.core.data.features import build_features
from tasks.core.data.schema import standardise
from tasks.core.data.simulator import simulate
from tasks.core.ml.objective import objective_for
from tasks.core.quality.audit_frame import audit_frame
from tasks.core.quality.leakage_audit import run_audit
from tasks.core.quality.validation import load_suite, read_suite_file, validate_frame
from tasks.split import assign_splits
from tasks.suites import SuiteEditError, accept_values
from tasks.suites import main as suites_main
from tests.conftest import REPO, default_params_dict
from tests.whole_frame import clean_frame

PARAMS = parse_params(default_params_dict())
SUITES = sorted((REPO / "expectations").glob("*.json"))


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_every_suite_loads_with_as_many_expectations_as_its_file(path: Path):
    _, suite, spec = load_suite(path)
    assert len(spec["expectations"]) > 0
    assert len(suite.expectations) == len(json.loads(path.read_text())["expectations"])


def test_a_suite_with_an_unknown_expectation_type_is_refused_not_silently_shortened(tmp_path):
    spec = read_suite_file(REPO / "expectations" / "leakage.json")
    spec["expectations"].append(
        {"type": "expect_something_nobody_registered", "kwargs": {"column": "x"}}
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    with pytest.raises(Exception, match="expect_something_nobody_registered|not found|unknown"):
        load_suite(bad)


# ------------------------------------------------------------------ raw data suite
@pytest.fixture(scope="module")
def raw_std() -> pd.DataFrame:
    spec = read_suite_file(REPO / "expectations" / "simulator.raw.json")
    kinds = spec["meta"]["column_kinds"]
    raw = simulate(dt.date(2024, 3, 1), dt.date(2024, 3, 20), 60, seed=21).data
    c = PARAMS.clean
    return standardise(
        raw,
        kinds,
        objective_for(PARAMS.problem).read_target,
        c.date_formats,
        c.category_aliases,
        [f.model_dump() for f in c.unit_fixes],
    ).frame


def raw_results(frame):
    return validate_frame(
        frame, read_suite_file(REPO / "expectations" / "simulator.raw.json"), "raw"
    )


def failed(results):
    return {(r.expectation, r.column): r.observed for r in results if not r.success}


def test_raw_suite_passes_on_a_fresh_simulator_snapshot(raw_std):
    assert failed(raw_results(raw_std)) == {}


def test_raw_suite_names_a_null_spike_a_new_category_and_out_of_range_values(raw_std):
    bad = raw_std.copy()
    bad.loc[bad.index[: len(bad) // 3], "age"] = np.nan
    bad.loc[bad.index[: len(bad) // 2], "payment_method"] = "crypto-wallet"
    bad.loc[bad.index[:50], "tenure_months"] = 999
    fails = failed(raw_results(bad))
    assert set(fails) == {
        ("expect_column_values_to_not_be_null", "age"),
        ("expect_column_values_to_be_in_set", "payment_method"),
        ("expect_column_values_to_be_between", "tenure_months"),
    }
    assert "crypto-wallet" in fails[("expect_column_values_to_be_in_set", "payment_method")]
    assert "%" in fails[("expect_column_values_to_not_be_null", "age")], (
        "observed share is reported"
    )


def test_an_accepted_category_passes_the_suite_and_is_recorded(raw_std):
    bad = raw_std.copy()
    bad.loc[bad.index[: len(bad) // 2], "payment_method"] = "crypto-wallet"
    spec = read_suite_file(REPO / "expectations" / "simulator.raw.json")
    accepted, added = accept_values(
        spec, "payment_method", ["Crypto Wallet", "  crypto_wallet "], who="op", when="now"
    )
    assert added == ["crypto-wallet"], "spelled as the clean step normalises it, once"
    assert failed(validate_frame(bad, accepted, "raw-accepted")) == {}
    assert accepted["meta"]["accepted"] == [
        {"column": "payment_method", "values": ["crypto-wallet"], "by": "op", "at": "now"}
    ]
    assert "crypto-wallet" not in json.dumps(spec), "the caller's spec is not changed"
    assert accept_values(accepted, "payment_method", ["crypto-wallet"])[1] == []
    with pytest.raises(SuiteEditError, match="numeric column"):
        accept_values(spec, "tenure_months", ["5"])
    with pytest.raises(SuiteEditError, match="no column 'nope'"):
        accept_values(spec, "nope", ["x"])


def test_the_accept_command_edits_the_project_suite_and_says_to_commit_it(
    tmp_path, monkeypatch, capsys
):
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    (tmp_path / "expectations").mkdir()
    suite = tmp_path / "expectations" / "simulator.raw.json"
    suite.write_text((REPO / "expectations" / "simulator.raw.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert suites_main(["accept", "payment_method", "Crypto Wallet"]) == 0
    assert "git commit" in capsys.readouterr().out
    check = next(
        e
        for e in read_suite_file(suite)["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set"
        and e["kwargs"]["column"] == "payment_method"
    )
    assert "crypto-wallet" in check["kwargs"]["value_set"]
    assert suites_main(["accept", "region", ""]) == 1
    assert "no value to accept" in capsys.readouterr().err


def test_raw_suite_catches_a_missing_column(raw_std):
    fails = failed(raw_results(raw_std.drop(columns=["region"])))
    assert ("expect_column_to_exist", "region") in fails


# ------------------------------------------------------------------ leakage suite
@pytest.fixture(scope="module")
def model_frame(raw_std) -> pd.DataFrame:
    clean, _ = clean_frame(raw_std, PARAMS.problem)
    features, _ = build_features(clean, PARAMS.problem, [])
    return features


def audit_checks(frame, split_cfg=None, problem=None, splits=None, strategy="time"):
    cfg = split_cfg or PARAMS.split
    problem = problem or PARAMS.problem
    splits = assign_splits(frame, cfg, problem) if splits is None else splits
    audit = audit_frame(frame, splits, problem, cfg, strategy)
    return {c["check"]: c for c in run_audit(audit, cfg, read_suite_file(REPO / cfg.suite), None)}


def only_failure(checks):
    return [name for name, c in checks.items() if not c["passed"]]


def test_leakage_suite_passes_on_a_clean_time_split(model_frame):
    assert only_failure(audit_checks(model_frame)) == []


def test_id_in_two_splits_fails(model_frame):
    frame = model_frame.copy()
    splits = assign_splits(frame, PARAMS.split, PARAMS.problem)
    test_row = splits[splits == "test"].index[0]
    frame.loc[test_row, "customer_id"] = frame.loc[
        splits[splits == "train"].index[0], "customer_id"
    ]
    checks = audit_checks(frame, splits=splits)
    assert only_failure(checks) == ["id in two splits"]
    assert "id:" in checks["id in two splits"]["observed"]


def test_duplicate_rows_across_splits_fail(model_frame):
    frame = model_frame.copy()
    splits = assign_splits(frame, PARAMS.split, PARAMS.problem)
    train_rows = splits[splits == "train"].index[:20]
    test_rows = splits[splits == "test"].index[:20]
    cols = [c for c in frame.columns if c not in ("customer_id", "snapshot_date")]
    for column in cols:
        frame.loc[test_rows, column] = frame.loc[train_rows, column].to_numpy()
    assert only_failure(audit_checks(frame, splits=splits)) == ["held-out copies of training rows"]


def test_time_order_violation_fails(model_frame):
    frame = model_frame.copy()
    splits = assign_splits(frame, PARAMS.split, PARAMS.problem)
    frame.loc[splits[splits == "test"].index[:5], "snapshot_date"] = pd.Timestamp("2024-01-01")
    assert only_failure(audit_checks(frame, splits=splits)) == ["time order of splits"]


def test_a_post_outcome_column_present_fails(model_frame):
    frame = model_frame.assign(
        cancellation_reason=np.where(model_frame["churned_30d"] == 1, "price", "none")
    )
    checks = audit_checks(frame)
    assert "post-outcome columns absent" in only_failure(checks)
    assert "cancellation_reason" in checks["post-outcome columns absent"]["observed"]


def test_a_single_feature_that_predicts_the_label_fails_naming_it(model_frame):
    rng = np.random.default_rng(0)
    frame = model_frame.assign(
        billing_flag=model_frame["churned_30d"] * 10 + rng.normal(0, 0.5, len(model_frame))
    )
    checks = audit_checks(frame)
    assert only_failure(checks) == ["single-feature ROC-AUC"]
    assert "feature:billing_flag" in checks["single-feature ROC-AUC"]["observed"]


def test_a_column_the_committed_suite_does_not_know_is_typed_by_inference_and_reported(
    tmp_path, caplog
):
    from tasks.core.quality.suites import suite_for

    suite = tmp_path / "expectations" / "mine.raw.json"
    suite.parent.mkdir()
    kinds = {"customer_id": "id", "churned_30d": "target", "plan": "categorical"}
    suite.write_text(json.dumps({"expectations": [], "meta": {"column_kinds": kinds}}))
    params = parse_params(
        {**default_params_dict(), "clean": {**default_params_dict()["clean"], "suite": str(suite)}}
    )
    sample = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "churned_30d": ["yes", "no", "no"],
            "plan": ["basic", "pro", "basic"],
            "monthly_spend": ["12.5", "30", "7.25"],  # new: numbers, as a CSV holds them
            "signed_up": ["2024-01-02", "2024-02-03", "2024-03-04"],  # new: dates
        }
    )
    with caplog.at_level("WARNING", logger="churn.clean"):
        found = suite_for(tmp_path, params.clean, params.problem, params.collect, sample)
    assert found.new_columns == {"monthly_spend": "numeric", "signed_up": "datetime"}
    assert found.kinds["monthly_spend"] == "numeric" and found.kinds["plan"] == "categorical"
    assert "new column(s) 'monthly_spend' (numeric), 'signed_up' (datetime)" in caplog.text
