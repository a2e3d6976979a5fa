"""Bad input ends with a clear message naming step, check and column, exit 1, and loses nothing."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import clean, collect
from tasks.core.io import file_sha256
from tasks.core.paths import PATHS
from tasks.core.step import run_step
from tests.data.foreign import FOREIGN_PARAMS, foreign_frame, write_csv


@pytest.fixture
def collected_once(project, monkeypatch):
    root = project(FOREIGN_PARAMS)
    write_csv(root / "data/external/telco_like.csv", foreign_frame())
    monkeypatch.chdir(root)
    assert run_step("collect", collect.main) == 0
    assert run_step("clean", clean.main) == 0
    assert (root / "expectations" / "telco-like.raw.json").exists(), (
        "a suite was proposed for the new source"
    )
    return root


def rerun_with(root, frame, capsys):
    write_csv(root / "data/external/telco_like.csv", frame)
    raw = root / PATHS.raw_dir
    before = {p: file_sha256(p) for p in raw.rglob("*.parquet")}
    clean_before = file_sha256(root / PATHS.interim_clean)
    assert run_step("collect", collect.main) == 0
    code = run_step("clean", clean.main)
    err = capsys.readouterr().err
    assert code == 1
    assert {p: file_sha256(p) for p in before} == before, "earlier snapshots unchanged"
    assert file_sha256(root / PATHS.interim_clean) == clean_before, (
        "the cleaned data of the last good run is kept"
    )
    return err


def test_a_column_gone_is_a_schema_break(collected_once, capsys):
    err = rerun_with(collected_once, foreign_frame(seed=1).drop(columns=["Support Calls"]), capsys)
    assert "FAILED step 'clean', check 'schema: column gone'" in err and "Support Calls" in err


def test_a_column_whose_type_changed_stops_the_run_naming_it(collected_once, capsys):
    frame = foreign_frame(seed=2)
    frame["Monthly Fee"] = np.where(np.arange(len(frame)) % 3 == 0, frame["Monthly Fee"], "premium")
    err = rerun_with(collected_once, frame, capsys)
    assert "check 'schema: type changed'" in err and "'Monthly Fee'" in err


def test_a_null_spike_beyond_the_ceiling_names_the_check_and_observed_share(collected_once, capsys):
    frame = foreign_frame(seed=3)
    frame.loc[frame.sample(frac=0.4, random_state=0).index, "Support Calls"] = ""
    err = rerun_with(collected_once, frame, capsys)
    assert "check 'data quality'" in err
    assert "expect_column_values_to_not_be_null(Support Calls)" in err and "% unexpected" in err
