"""The data checks on real public data: no false alarm on clean data, a named finding on
spoiled data.

Each real dataset (``tests/data/real.py``) goes through the steps' functions as the pipeline
runs them; the spoiled copies plant one fault each (a post-outcome column, a column that turns
to text in a later export, rows copied under new ids) and the check must name it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from devtools.project import deep_merge
from tasks.clean import check_parsing, copies_finding
from tasks.core.config import ParamsError, parse_params
from tasks.core.data.features import build_features
from tasks.core.data.pii import protect_frame
from tasks.core.data.schema import kinds_for, standardise
from tasks.core.errors import StepError
from tasks.core.ml.gate import skipped_columns
from tasks.core.ml.objective import objective_for
from tasks.core.ml.report import model_card
from tasks.core.quality.audit_frame import audit_frame, copies_of
from tasks.core.quality.leakage_audit import finding, run_audit
from tasks.core.quality.validation import propose_suite, read_suite_file, validate_frame
from tasks.features import never_features
from tasks.problem import validate_problem
from tasks.split import assign_splits
from tests.conftest import REPO, default_params_dict
from tests.data.real import REAL, overrides
from tests.whole_frame import clean_frame


def params_for(name: str, extra: dict | None = None):
    raw = deep_merge(deep_merge(default_params_dict(), overrides(name)), extra or {})
    return parse_params(raw)


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request):
    """(name, raw frame as the CSV delivers it, params) for each real dataset."""
    name = request.param
    return name, REAL[name]["load"](), params_for(name)


def prepared(raw: pd.DataFrame, params) -> tuple[pd.DataFrame, dict, object]:
    """The collect, clean and features steps' functions on a raw frame."""
    raw, _ = protect_frame(raw, params.collect.pii, b"test-key", "CHURN_PII_KEY")
    p, c = params.problem, params.clean
    kinds = kinds_for(raw, p, c)
    std = standardise(raw, kinds, objective_for(p).read_target, c.date_formats, {}, [])
    clean, _ = clean_frame(std.frame, p)
    features, _ = build_features(clean, p, never_features(params.problem, params.collect))
    return features, kinds, std


def audit(features: pd.DataFrame, params):
    p, s = params.problem, params.split
    splits = assign_splits(features, s, p)
    strategy = "time" if p.time_column else "stratified"
    copies = copies_of(features, splits, p, s)
    frame = audit_frame(features, splits, p, s, strategy, copies)
    checks = run_audit(frame, s, read_suite_file(REPO / s.suite), None)
    return checks, frame, copies


# ---------------------------------------------------------------- clean real data: no alarm
def test_the_real_datasets_pass_every_data_check(real):
    name, raw, params = real
    validate_problem(raw, params.problem)
    features, kinds, std = prepared(raw, params)
    spec = propose_suite(std.frame, kinds, name, 0.05, 0.99, {"snapshot_id": "t"})
    failed = [r for r in validate_frame(std.frame, spec, "raw") if not r.success]
    assert not failed, f"{name}: the suite proposed from the data fails on it: {failed}"
    checks, frame, copies = audit(features, params)
    leaks = REAL[name].get("leaks")
    if leaks:  # a true finding: stopped, naming the columns, until they are declared
        failed = [c for c in checks if not c["passed"]]
        assert [c["check"] for c in failed] == ["single-feature ROC-AUC"], checks
        message = finding(failed[0], frame, copies, params.problem, params.split)
        assert all(f"'{column}'" in message for column in leaks), message
        params = params_for(name, {"problem": {"post_outcome_columns": leaks}})
        features, _, _ = prepared(raw, params)
        checks, _, copies = audit(features, params)
    assert all(c["passed"] for c in checks), (name, checks, copies.describe())


def test_identical_feature_rows_by_chance_are_not_a_leak():
    # a table of categories only: distinct customers share feature rows all the time
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "contract": rng.choice(["monthly", "yearly"], n),
            "tv": rng.choice(["yes", "no"], n),
            "phone": rng.choice(["yes", "no"], n),
            "tenure_months": rng.integers(1, 6, n),
            "churned": rng.integers(0, 2, n),
        }
    )
    params = parse_params(
        deep_merge(
            default_params_dict(),
            {
                "problem": {
                    "target": "churned",
                    "positive_label": 1,
                    "id_column": None,
                    "time_column": None,
                    "baseline": {"rule": None},
                }
            },
        )
    )
    checks, _, copies = audit(frame, params)
    assert copies.chance > 0.9 and copies.share > 0.9  # nearly every row has a twin
    assert all(c["passed"] for c in checks), copies.describe()


# ---------------------------------------------------------------- spoiled real data: named
def telco_with_dates(raw: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    days = rng.integers(0, 180, len(raw))
    out = raw.copy()
    out["snapshot_date"] = [str(dt.date(2024, 1, 1) + dt.timedelta(days=int(d))) for d in days]
    return out


def test_rows_copied_under_new_ids_across_the_split_are_found_and_named():
    raw = telco_with_dates(REAL["telco"]["load"]())
    early = raw[raw["snapshot_date"] < "2024-03-01"].sample(400, random_state=0)
    copies = early.assign(
        customerID=[f"NEW-{i}" for i in range(len(early))],
        snapshot_date=[
            str(dt.date(2024, 6, 20) + dt.timedelta(days=i % 10)) for i in range(len(early))
        ],
    )
    spoiled = pd.concat([raw, copies], ignore_index=True)
    params = params_for("telco", {"problem": {"time_column": "snapshot_date"}})
    features, _, _ = prepared(spoiled, params)
    checks, frame, found = audit(features, params)
    failed = [c for c in checks if not c["passed"]]
    assert [c["check"] for c in failed] == ["held-out copies of training rows"]
    message = finding(failed[0], frame, found, params.problem, params.split)
    assert "held-out rows" in message and "chance on this data gives" in message
    assert "Examples: held-out " in message and " = training " in message
    assert "np.float64" not in message and "row:" not in message


def test_a_post_outcome_column_in_real_data_is_named():
    raw = REAL["telco"]["load"]()
    rng = np.random.default_rng(2)
    reason = np.where(
        raw["churn"] == "Yes", rng.choice(["price", "moved", "service"], len(raw)), ""
    )
    spoiled = raw.assign(churn_reason=reason)
    params = params_for("telco")
    features, _, _ = prepared(spoiled, params)
    checks, frame, found = audit(features, params)
    failed = [c for c in checks if not c["passed"]]
    assert [c["check"] for c in failed] == ["single-feature ROC-AUC"]
    assert "'churn_reason'" in finding(failed[0], frame, found, params.problem, params.split)


def test_a_column_that_turns_to_text_in_a_later_export_is_named():
    raw = REAL["telco"]["load"]()
    params = params_for("telco")
    p, c = params.problem, params.clean
    kinds = kinds_for(raw, p, c)
    later = raw.assign(monthly_charges=raw["monthly_charges"].map(lambda v: f"{v:.2f} USD/month"))
    std = standardise(later, kinds, objective_for(p).read_target, c.date_formats, {}, [])
    with pytest.raises(StepError, match="'monthly_charges'"):
        check_parsing(std, c.min_parse_share)


# ---------------------------------------------------------------- items 2 to 5
def test_data_without_an_id_column_is_accepted_and_a_non_binary_target_refused():
    raw = REAL["credit"]["load"]()
    params = params_for("credit")
    assert params.problem.id_column is None
    assert validate_problem(raw, params.problem).notna().all()
    three = raw.assign(Status=np.where(raw["Income"] > 150, "review", raw["Status"]))
    with pytest.raises(StepError, match="holds 3 classes"):
        validate_problem(three, params.problem)


def test_a_suite_proposed_from_a_file_with_many_copies_passes_on_it_and_says_so():
    raw = REAL["telco"]["load"]()
    doubled = pd.concat([raw, raw.sample(frac=0.35, random_state=0)], ignore_index=True)
    params = params_for("telco")
    _, kinds, std = prepared(doubled, params)
    spec = propose_suite(std.frame, kinds, "telco", 0.05, 0.99, {"snapshot_id": "t"})
    assert all(r.success for r in validate_frame(std.frame, spec, "raw"))
    text = copies_finding(std.frame, "customerID")
    assert "2,465 rows (25.9%) are exact copies of other rows" in text
    assert "concatenated overlapping files" in text


def test_an_unquoted_yes_as_positive_label_means_the_yes_label():
    text = yaml.safe_dump(deep_merge(default_params_dict(), overrides("telco")))
    assert "positive_label: 'Yes'" in text
    text = text.replace("positive_label: 'Yes'", "positive_label: Yes")  # as people write it
    params = parse_params(yaml.safe_load(text))
    assert params.problem.positive_label is True  # what YAML 1.1 makes of it
    y = validate_problem(REAL["telco"]["load"](), params.problem)
    assert y.sum() == 1869  # the 'Yes' rows


def test_an_unquoted_yes_where_a_text_is_expected_says_to_quote_it():
    raw = yaml.safe_load("clean:\n  category_aliases:\n    partner:\n      Yes: 'yes'\n")
    with pytest.raises(ParamsError, match="quote the value"):
        parse_params(deep_merge(default_params_dict(), raw))


def test_slices_and_sensitive_columns_the_data_lacks_are_named_in_the_card():
    params = params_for(
        "credit", {"evaluate": {"slices": ["plan", "Home"], "sensitive": ["region"]}}
    )
    test = REAL["credit"]["load"]()
    skipped = skipped_columns(test, params.evaluate)
    assert [(s["key"], s["column"]) for s in skipped] == [
        ("evaluate.slices", "plan"),
        ("evaluate.sensitive", "region"),
    ]
    result = {
        "blessed": False,
        "gate_reasons": [],
        "test": {
            "roc_auc": 0.8,
            "pr_auc": 0.5,
            "brier": 0.1,
            "recall_at_precision": 0.5,
            "expected_cost": 1.0,
        },
        "baselines": {},
        "slices": [{"column": "Home", "checked": True}],
        "fairness": [],
        "skipped_columns": skipped,
        "top_features": [],
        "data": {"snapshot_id": "s", "test_sha256": "0" * 64, "test_rows": 10},
    }
    card = model_card(
        params.problem, {"model": "m", "config": {}, "threshold": 0.5}, result, "0" * 64, "v"
    )
    assert "**skipped** plan (evaluate.slices)" in card
    assert "**skipped** region (evaluate.sensitive)" in card
    assert "slices judged: Home" in card
