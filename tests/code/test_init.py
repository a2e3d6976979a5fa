"""make init: a ready collect/problem section for a user's own file."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import yaml

from tasks.core.config import parse_params
from tasks.core.quality.inspect import main, propose, read, sniff
from tests.conftest import make_project
from tests.data.real import REAL, write_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("external")
    return {name: write_csv(name, folder) for name in REAL}


def proposal_for(path):
    frame, fmt = read(path)
    return propose(frame, fmt, f"data/external/{path.name}")


def test_the_real_datasets_get_their_target_label_id_and_personal_columns(files):
    telco = proposal_for(files["telco"])
    assert telco["problem"]["target"] == "churn" and telco["problem"]["positive_label"] == "yes"
    assert telco["problem"]["id_column"] == "customerID"
    assert telco["collect"]["pii"] == {"email": "drop", "phone": "drop"}
    assert "female" in telco["evaluate"]["sensitive"]
    caravan = proposal_for(files["caravan"])
    assert caravan["problem"]["target"] == "Purchase" and caravan["problem"]["id_column"] is None
    credit = proposal_for(files["credit"])
    assert credit["problem"]["target"] == "Status" and credit["problem"]["positive_label"] == "bad"
    assert credit["problem"]["id_column"] is None and "Home" in credit["evaluate"]["slices"]
    card = proposal_for(files["creditcard"])  # spending exists only once the card was granted
    assert card["problem"]["post_outcome_columns"] == ["expenditure", "share"]


def test_separator_encoding_and_decimal_comma_are_detected(tmp_path):
    path = tmp_path / "export.csv"
    lines = ["Kunde;Vertrag;Gebühr;gekündigt"] + [
        f"K{i};{'monatlich' if i % 2 else 'jährlich'};{i},5;{'ja' if i % 3 else 'nein'}"
        for i in range(1, 60)
    ]
    path.write_bytes("\n".join(lines).encode("cp1252"))
    assert sniff(path) == {"sep": ";", "encoding": "cp1252", "decimal": ","}
    frame, _ = read(path)
    assert frame["Gebühr"].iloc[0] == "1.5" and frame["Vertrag"].iloc[1] == "jährlich"


def test_columns_known_only_after_the_outcome_are_flagged(files):
    raw = REAL["credit"]["load"]()
    rng = np.random.default_rng(0)
    raw["days_to_default"] = np.where(raw["Status"] == "bad", rng.integers(1, 90, len(raw)), 0)
    raw["cancel_reason"] = "n/a"
    path = files["credit"].with_name("credit_spoiled.csv")
    raw.to_csv(path, index=False)
    notes = "\n".join(proposal_for(path)["notes"])
    assert "post-outcome? days_to_default: alone it predicts Status with ROC-AUC" in notes
    assert "post-outcome? cancel_reason: its name suggests" in notes
    assert proposal_for(path)["problem"]["post_outcome_columns"] == [
        "cancel_reason",
        "days_to_default",
    ]


def test_nothing_is_written_unless_asked_and_the_written_params_are_valid(tmp_path, capsys):
    root = make_project(tmp_path / "proj", commit=False)
    write_csv("telco", root / "data" / "external")
    before = (root / "params.yaml").read_text()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["data/external/telco_churn.csv"]) == 0
        assert (root / "params.yaml").read_text() == before
        assert "positive_label: 'yes'" in capsys.readouterr().out  # quoted: YAML-safe
        assert main(["data/external/telco_churn.csv", "--write"]) == 0
    finally:
        os.chdir(cwd)
    after = (root / "params.yaml").read_text()
    params = parse_params(yaml.safe_load(after))
    assert params.collect.source == "csv" and params.problem.target == "churn"
    assert params.collect.pii == {"email": "drop", "phone": "drop"}
    assert params.evaluate.sensitive and all(c != "gender" for c in params.evaluate.sensitive)
    assert yaml.safe_load(after)["train"] == yaml.safe_load(before)["train"]


def test_a_file_with_no_two_valued_column_is_refused(tmp_path, capsys):
    root = make_project(tmp_path / "proj", commit=False)
    pd.DataFrame({"a": range(10), "b": list("abcdefghij")}).to_csv(
        root / "data" / "external" / "x.csv", index=False
    )
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["data/external/x.csv"]) == 1
    finally:
        os.chdir(cwd)
    assert "no two-valued column" in capsys.readouterr().err


def test_init_keeps_comments_notes_its_guesses_and_flags_the_defaults_it_kept(tmp_path):
    from tasks.core.quality.inspect import read_any, write_params
    from tests.conftest import REPO
    from tests.data.real import hmda

    params_file = tmp_path / "params.yaml"
    params_file.write_text((REPO / "params.yaml").read_text())
    path = tmp_path / "hmda.csv"
    hmda().to_csv(path, index=False)
    frame, fmt = read_any(path)
    proposal = propose(frame, fmt, "data/external/hmda.csv")
    assert "pii" not in proposal["collect"], "no decimal is a phone number"
    assert proposal["evaluate"]["sensitive"] == ["afam"]  # the race column
    written = proposal["evaluate"]["slices"]
    assert f"evaluate.slices: {written}" in "\n".join(proposal["notes"]), "writes what it prints"
    write_params(params_file, proposal)
    text = params_file.read_text()
    # a comment of a section init did not touch, and one of a key it rewrote, both kept
    assert "# step 5: row-wise engineered features" in text
    assert "# simulator | csv | parquet | sql" in text
    assert "# make init: floors from the best single column" in text
    assert "# make init: the churn defaults, kept" in text
    params = parse_params(yaml.safe_load(text))
    assert params.problem.target == "deny" and params.problem.positive_label == "yes"
    assert params.problem.kpis.roc_auc_min > 0.5 and params.problem.horizon_days is None
    assert params.evaluate.slices == written and params.collect.pii == {}


def test_a_sqlite_file_is_proposed_as_a_sql_source_and_another_file_is_refused(tmp_path, capsys):
    import sqlite3

    root = make_project(tmp_path / "proj", commit=False)
    with sqlite3.connect(root / "data" / "external" / "crm.sqlite") as conn:
        REAL["credit"]["load"]().to_sql("applicants", conn, index=False)
    (root / "data" / "external" / "book.xlsx").write_bytes(b"PK\x03\x04\x00\x00binary")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["data/external/crm.sqlite"]) == 0
        out = capsys.readouterr().out
        assert "source: sql" in out and 'SELECT * FROM "applicants"' in out
        assert "export CHURN_SQL_URL=sqlite:///" in out
        assert main(["data/external/book.xlsx"]) == 2
        assert "neither CSV, Parquet nor a SQLite database" in capsys.readouterr().err
    finally:
        os.chdir(cwd)


def test_columns_that_give_the_outcome_away_together_are_flagged(tmp_path):
    from tests.data.real import flights

    path = tmp_path / "flights.csv"
    flights(8000).to_csv(path, index=False)
    proposal = proposal_for(path)
    problem = proposal["problem"]
    assert problem["time_column"] == "time_hour"  # an ISO 8601 time stamp with a zone
    # arr_delay alone; the actual departure beside the scheduled one is the delay itself
    assert {"arr_delay", "dep_time", "arr_time"} <= set(problem["post_outcome_columns"])
    assert "sched_dep_time" not in problem["post_outcome_columns"]
    notes = "\n".join(proposal["notes"])
    assert "post-outcome? dep_time: a quick model predicts late with ROC-AUC" in notes
    assert "pii" not in proposal["collect"]


def test_a_numeric_target_with_many_values_is_proposed_as_regression(tmp_path, capsys):
    from flows.runtime.plots import mismatch
    from flows.runtime.plots import write as declare_plots

    root = make_project(tmp_path / "proj", commit=False)
    write_csv("deliveries", root / "data" / "external")
    pd.DataFrame({"a": range(30), "b": [i % 5 + 0.5 for i in range(30)]}).to_csv(
        root / "data" / "external" / "x.csv", index=False
    )
    cwd = os.getcwd()
    os.chdir(root)
    try:
        file = "data/external/deliveries.csv"
        assert main([file, "--target", "time_to_delivery", "--write"]) == 0
        out = capsys.readouterr().out
        assert "a quantity, so problem.type regression" in out
        assert mismatch(root) is not None  # the binary plots are still declared
        declare_plots(root)  # what make init runs after WRITE=1 (make plots)
        assert main(["data/external/x.csv", "--target", "b"]) == 1
        assert "5 distinct values: neither a yes/no outcome" in capsys.readouterr().err
        assert main([file, "--target", "nope"]) == 1
    finally:
        os.chdir(cwd)
    params = parse_params(yaml.safe_load((root / "params.yaml").read_text()))
    assert params.problem.type == "regression" and params.problem.positive_label is None
    assert params.problem.primary_metric == "rmse" and params.problem.kpis.bounds() == {}
    assert params.choose.candidates == ["ridge", "random_forest", "xgboost"]
    assert mismatch(root) is None


def test_a_few_labels_or_codes_are_proposed_as_multiclass_and_say_why(tmp_path, capsys):
    """hpc_data has no yes/no column: its ``class`` (four labels) is found by its name; WVS's
    ``poverty`` is named; whole-number codes are classes too, decimals are not."""
    from flows.runtime.plots import mismatch
    from flows.runtime.plots import write as declare_plots

    folder = tmp_path / "external"
    hpc = proposal_for(write_csv("hpc", folder))
    assert hpc["problem"]["type"] == "multiclass" and hpc["problem"]["target"] == "class"
    assert "4 distinct labels (F, L, M, VF): one of several classes" in hpc["notes"][1]
    assert hpc["problem"]["primary_metric"] == "log_loss" and hpc["problem"]["kpis"] == {}
    assert hpc["choose"]["candidates"] == ["logistic_regression", "random_forest", "xgboost"]
    codes = pd.DataFrame({"a": range(60), "grade": [i % 4 + 1 for i in range(60)]})
    codes.to_csv(folder / "codes.csv", index=False)
    frame, fmt = read(folder / "codes.csv")
    found = propose(frame, fmt, "data/external/codes.csv", chosen="grade")
    assert found["problem"]["type"] == "multiclass"
    assert "4 distinct whole-number codes (1, 2, 3, 4)" in found["notes"][1]
    root = make_project(tmp_path / "proj", commit=False)
    write_csv("wvs", root / "data" / "external")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["data/external/wvs.csv", "--target", "poverty", "--write"]) == 0
        assert "one of several classes, so problem.type multiclass" in capsys.readouterr().out
        declare_plots(root)  # what make init runs after WRITE=1 (make plots)
    finally:
        os.chdir(cwd)
    params = parse_params(yaml.safe_load((root / "params.yaml").read_text()))
    assert params.problem.type == "multiclass" and params.problem.target == "poverty"
    assert params.problem.positive_label is None and params.problem.kpis.bounds() == {}
    assert mismatch(root) is None
