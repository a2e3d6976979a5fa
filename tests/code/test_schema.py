from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.project import deep_merge
from tasks.clean import check_parsing
from tasks.core.config import ProblemParams, parse_params
from tasks.core.data.schema import (
    infer_kinds,
    normalise_category,
    parse_dates,
    parse_numbers,
    standardise,
)
from tasks.core.errors import StepError
from tasks.core.ml.objective import objective_for
from tasks.core.quality.suites import check_schema, suite_path_for
from tests.conftest import default_params_dict
from tests.whole_frame import dedupe

FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%b %d, %Y"]
READ_YES = objective_for(ProblemParams(target="y", positive_label="yes")).read_target


def test_category_spellings_collapse_and_aliases_apply():
    raw = pd.Series(
        [
            "Month-to-month",
            "month to month",
            "MONTH-TO-MONTH",
            "Month to Month ",
            " ",
            None,
            "Credit Card (automatic)",
        ]
    )
    out = normalise_category(raw, {"credit-card-automatic": "credit-card"})
    assert out[:4].tolist() == ["month-to-month"] * 4
    assert out[4:6].isna().all() and out[6] == "credit-card"


def test_numbers_stored_as_text_with_blanks_and_separators():
    numbers, failed = parse_numbers(pd.Series(["12.5", " ", "1,234.50", "n/a", None, "7"]))
    assert numbers[0] == 12.5 and np.isnan(numbers[1]) and numbers[2] == 1234.5 and numbers[5] == 7
    assert failed == 1, "only 'n/a' counts as unparseable; blanks are just missing"


def test_mixed_date_formats_parse_and_failures_are_counted():
    dates, failed = parse_dates(
        pd.Series(["2024-03-01", "03/01/2024", "Mar 01, 2024", "soon", ""]), FORMATS
    )
    assert dates[:3].nunique() == 1 and dates[0] == pd.Timestamp("2024-03-01")
    assert failed == 1


def test_kinds_are_inferred_and_standardise_never_touches_its_input():
    raw = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "y": ["Yes", "no", "yes", None],
            "fee": ["1", "2.5", " ", "4"],
            "when": ["2024-01-01", "01/02/2024", "2024-01-03", "2024-01-04"],
            "plan": ["Gold", "gold ", "SILVER", "silver"],
            "cents": [10.0, 2000.0, 30.0, None],
        }
    )
    kinds = infer_kinds(raw, "id", "y", None, FORMATS, 0.9, 50)
    assert kinds == {
        "id": "id",
        "y": "target",
        "fee": "numeric",
        "when": "datetime",
        "plan": "categorical",
        "cents": "numeric",
    }
    before = raw.copy()
    std = standardise(
        raw,
        kinds,
        READ_YES,
        FORMATS,
        unit_fixes=[{"column": "cents", "above": 1000, "divide_by": 100}],
    )
    pd.testing.assert_frame_equal(raw, before)
    f = std.frame
    assert f["y"].tolist()[:3] == [1.0, 0.0, 1.0] and np.isnan(f["y"][3])
    assert f["plan"].tolist() == ["gold", "gold", "silver", "silver"]
    assert f["cents"][1] == 20.0 and std.unit_fixed == {"cents": 1}
    assert std.parse_share["fee"] == 1.0


def test_dedupe_removes_exact_duplicates_then_repeated_ids():
    frame = pd.DataFrame({"id": ["a", "a", "b", "b"], "x": [1, 1, 2, 3]})
    out, exact, repeats = dedupe(frame, "id")
    assert out["id"].tolist() == ["a", "b"] and (exact, repeats) == (1, 1)


def test_the_clean_step_drops_copies_repeats_and_unlabelled_rows_and_counts_each(
    project, monkeypatch
):
    """The clean step itself on a CSV of 60 accounts, 3 of them sent twice, 2 ids sent
    again with other values (the first kept) and 4 without a label."""
    import json

    from tasks import clean, collect
    from tasks.core.paths import PATHS
    from tasks.core.step import run_step
    from tests.data.foreign import FOREIGN_PARAMS, foreign_frame, write_csv

    root = project(FOREIGN_PARAMS, commit=False)
    frame = foreign_frame(60).iloc[:60].reset_index(drop=True)
    frame.loc[:3, "Left?"] = ""
    again = frame.iloc[[10, 11]].assign(**{"Support Calls": "9"})
    write_csv(root / "data/external/telco_like.csv", pd.concat([frame, frame[20:23], again]))
    monkeypatch.chdir(root)
    assert run_step("collect", collect.main) == 0
    assert run_step("clean", clean.main) == 0
    facts = json.loads((root / PATHS.clean_json).read_text())
    assert (facts["rows_in"], facts["rows_out"]) == (65, 56), facts
    assert facts["duplicate_rows_removed"] == 3 and facts["repeated_ids_removed"] == 2
    assert facts["unlabelled_rows_removed"] == 4
    cleaned = pd.read_parquet(root / PATHS.interim_clean)
    assert cleaned["AcctNo"].is_unique and set(cleaned["Left?"].unique()) <= {0, 1}
    assert cleaned.loc[cleaned["AcctNo"] == frame["AcctNo"][10], "Support Calls"].item() != 9


def test_schema_breaks_name_the_column():
    with pytest.raises(StepError, match=r"column gone.*\['fee'\]"):
        check_schema(
            pd.DataFrame({"id": [1]}), {"id": "id", "fee": "numeric"}, "expectations/x.raw.json"
        )
    std = standardise(
        pd.DataFrame({"fee": ["1", "x", "y", "z"]}), {"fee": "numeric"}, READ_YES, FORMATS
    )
    with pytest.raises(StepError, match=r"type changed: 'fee' \(25% parse, 3 cells did not\)"):
        check_parsing(std, 0.9)


def test_the_suite_is_named_after_the_source():
    p = parse_params(default_params_dict())
    assert suite_path_for(p.clean, p.collect) == "expectations/simulator.raw.json"
    csv = parse_params(
        deep_merge(
            default_params_dict(),
            {"collect": {"source": "csv", "path": "data/external/My Churn.csv"}},
        )
    )
    assert suite_path_for(csv.clean, csv.collect) == "expectations/my-churn.raw.json"


def test_iso_8601_time_stamps_parse_with_their_zone_turned_to_utc():
    from tasks.core.config import CleanParams
    from tasks.core.data.schema import parse_dates

    values = pd.Series(["2017-01-01T06:00:42Z", "2013-01-01 05:00:00+01:00", "2013-01-02", ""])
    dates, failed = parse_dates(values, CleanParams().date_formats)
    assert failed == 0
    assert list(dates[:3]) == [
        pd.Timestamp("2017-01-01 06:00:42"),
        pd.Timestamp("2013-01-01 04:00:00"),
        pd.Timestamp("2013-01-02"),
    ]
    assert pd.isna(dates[3])
