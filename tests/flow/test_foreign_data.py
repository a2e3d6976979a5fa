"""The whole data pipeline on a foreign CSV, changing only collect.* and problem.* in
params.yaml."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest
import yaml

from flows.runtime.processes import dvc_executable, tool_env
from tasks.core.paths import PATHS
from tests.data.foreign import FOREIGN_PARAMS, foreign_frame, write_csv

pytestmark = pytest.mark.slow


def repro(root):
    return subprocess.run(
        [dvc_executable(), "repro"], cwd=root, capture_output=True, text=True, env=tool_env()
    )


def test_foreign_csv_runs_end_to_end_and_a_leaking_column_stops_the_split(project):
    root = project(FOREIGN_PARAMS)
    write_csv(root / "data/external/telco_like.csv", foreign_frame(leak=True))

    failed = repro(root)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "FAILED step 'split', check 'leakage audit'" in out and "'Exit Survey Score'" in out
    assert not (root / PATHS.train).exists() and not (root / PATHS.test).exists(), (
        "no split written"
    )

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["problem"]["post_outcome_columns"] = ["Exit Survey Score"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ok = repro(root)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]

    suite = json.loads((root / "expectations" / "telco-like.raw.json").read_text())
    kinds = suite["meta"]["column_kinds"]
    assert kinds["Monthly Fee"] == "numeric" and kinds["Total Billed"] == "numeric"
    assert (
        kinds["Contract Kind"] == "categorical"
        and kinds["Joined"] == "datetime"
        and kinds["AcctNo"] == "id"
    )
    report = json.loads((root / PATHS.clean_json).read_text())
    assert report["duplicate_rows_removed"] == 30 and report["unparsed_cells"]["Monthly Fee"] > 0
    train = pd.read_parquet(root / PATHS.train)
    assert set(train["Contract Kind"].dropna()) == {"monthly", "annual", "biennial"}
    assert (
        train["Total Billed"].dtype == float
        and "Exit Survey Score" not in train
        and "Joined" not in train
    )
    audit = json.loads((root / PATHS.leakage_json).read_text())
    assert audit["passed"] and audit["strategy"] == "stratified"
    manifest = json.loads((root / PATHS.split_manifest).read_text())
    assert sum(manifest["rows"].values()) == report["rows_out"]
    assert (root / PATHS.eda_html).stat().st_size > 10_000
    assert (root / PATHS.data_docs_dir / "index.html").exists()

    again = repro(root)
    # only collect runs (it always does), and finds the file unchanged
    assert again.returncode == 0, again.stdout
    assert re.findall(r"Running stage '(\w+)'", again.stdout) == ["collect"], again.stdout
