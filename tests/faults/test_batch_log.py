"""Batch scoring logs its predictions only once the output is complete, once (issue 40,
case 7).

Before: each chunk was logged as it was scored, so a file with a bad row near its end left
the chunks before it in the prediction log with no output; fixing the row and rerunning
logged them again (45,000 rows in the log for 25,000 records).
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from flows.batch_scoring import batch_scoring
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS, PREDICTIONS_DB
from tests.conftest import without_served_state

pytestmark = pytest.mark.slow


def logged_rows(root) -> int:
    database = root / "registry" / PREDICTIONS_DB
    if not database.exists():
        return 0
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]


def test_a_failed_batch_logs_nothing_and_a_rerun_logs_each_row_once(
    trained_project, tmp_path, prefect_api
):
    root = tmp_path / "proj"
    # without what other tests scored in the shared project (its outputs and inputs)
    shutil.copytree(
        trained_project, root, ignore=without_served_state("06_predictions", "to_score.csv")
    )
    raw = current_snapshot(root / PATHS.raw_dir).read().drop_duplicates("customer_id").head(900)
    raw = raw.drop(columns=["churned_30d", "cancellation_reason"]).reset_index(drop=True)
    bad = raw.astype(object)
    bad.loc[800, "monthly_charges"] = "not a number"  # row 801 of the file, in the last chunk
    (root / "data/external").mkdir(parents=True, exist_ok=True)
    path = root / "data/external/to_score.csv"
    bad.to_csv(path, index=False)
    before = logged_rows(root)
    with pytest.raises(Exception, match="monthly_charges"):
        batch_scoring("data/external/to_score.csv", project_dir=str(root), chunk_rows=200)
    assert logged_rows(root) == before, "a failed batch leaves nothing in the log"
    assert not list((root / PATHS.predictions_dir).glob("*.parquet")), "nor an output"
    raw.to_csv(path, index=False)  # the row fixed
    for _ in range(2):  # and a rerun of the same file and model logs nothing twice
        result = batch_scoring("data/external/to_score.csv", project_dir=str(root), chunk_rows=200)
        assert result["rows"] == 900
        assert logged_rows(root) == before + 900
