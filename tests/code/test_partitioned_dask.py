"""The Dask engine on a snapshot in parts gives the local engine's outputs.

Its own file so that ``make test`` (``--dist loadfile``) runs it beside
``test_partitioned.py`` rather than after it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from devtools.project import SMALL, make_project
from tasks.core.paths import PATHS
from tests.code.test_partitioned import read_json, run_stages

pytestmark = pytest.mark.slow


def test_the_dask_engine_on_a_snapshot_in_parts_gives_the_local_outputs(tmp_path):
    """Each part goes to the workers under its own scratch name (parts never mix); a training
    split over train.in_memory_rows trains with xgboost.dask from its staged parts."""
    roots = {}
    for engine in ("local", "dask"):
        overrides = {
            "compute": {"partition_rows": 1000, "engine": engine},
            "train": {"n_trials": 2, "in_memory_rows": 1000},
        }
        root = roots[engine] = make_project(
            tmp_path / engine, overrides, profile=SMALL, commit=False
        )
        run_stages(root, "collect", "clean", "features", "split")
        # XGBoost as if chosen (what the choice picks is not the point here)
        (root / PATHS.selection_json).write_text(json.dumps({"chosen": "xgboost"}))
        logs = run_stages(root, "train")
    assert "xgboost.dask on" in logs
    for rel in (PATHS.interim_clean, PATHS.features_table, PATHS.train, PATHS.test):
        pd.testing.assert_frame_equal(*(pd.read_parquet(r / rel) for r in roots.values()))
    valid = [read_json(r, PATHS.train_json)["valid_roc_auc"] for r in roots.values()]
    assert abs(valid[0] - valid[1]) < 0.02, valid
    assert not (roots["dask"] / ".dask-scratch").exists() or not any(
        (roots["dask"] / ".dask-scratch").iterdir()
    )
