"""Data read part by part gives the same results as data read whole.

collect writes a snapshot as row groups of ``compute.partition_rows`` rows; every later
stage holds one part (or one bucket of the id shuffle, or a sample) at a time. A snapshot of
many parts must give what the same snapshot in one part gives (clean has one path for both;
features, split and the later stages read the parts they are given), on the test profile,
row for row and metric for metric.
A training split over ``train.in_memory_rows`` has its preprocessing fitted on a sample: an
XGBoost model within the noise of the one fitted with every row.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from devtools.project import SMALL, make_project
from flows.runtime.processes import tool_env
from flows.runtime.warm import active_env, warm_steps
from tasks.core.data.shuffle import Copies, keep_mask, shuffle
from tasks.core.paths import PATHS
from tests.whole_frame import dedupe

pytestmark = pytest.mark.slow


def run_stages(root, *stages):
    """Run each stage's module in ``root`` as ``dvc repro`` does in the training flow: a
    ``python -m tasks.<stage>`` process each, through the flow's warm step process (the
    heavy imports paid once, not per stage); returns the last one's log (stderr)."""
    env = tool_env()  # its PATH leads to this interpreter, as DVC's does in the flow
    with warm_steps(root, env):
        env = {**env, **active_env()}  # the warm process's shim first on PATH, when it is on
        for stage in stages:
            done = subprocess.run(
                ["python", "-m", f"tasks.{stage}"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.mark.parametrize("propose", [False, True], ids=["committed-suite", "proposed-suite"])
def test_collect_clean_and_features_in_parts_equal_the_whole_frame_path(tmp_path, propose):
    roots = {}
    for name, rows in (("whole", 250_000), ("parts", 1000)):
        root = make_project(
            tmp_path / name, {"compute": {"partition_rows": rows}}, profile=SMALL, commit=False
        )
        if propose:
            (root / "expectations" / "simulator.raw.json").unlink()
        if propose:
            run_stages(root, "collect", "clean", "features")
        else:  # the whole DAG once
            run_stages(root, *DAG)
        roots[name] = root
    whole, parts = roots["whole"], roots["parts"]
    raw = {
        n: json.loads((r / PATHS.raw_dir / "current.json").read_text()) for n, r in roots.items()
    }
    assert raw["whole"]["content_sha256"] == raw["parts"]["content_sha256"]
    snapshot = parts / PATHS.raw_dir / raw["parts"]["snapshot_id"] / "data.parquet"
    assert pq.ParquetFile(snapshot).num_row_groups > 1, "the test profile must make several parts"
    assert pq.ParquetFile(parts / PATHS.interim_clean).num_row_groups > 1
    for rel in (PATHS.interim_clean, PATHS.features_table):
        pd.testing.assert_frame_equal(pd.read_parquet(whole / rel), pd.read_parquet(parts / rel))
    facts = {n: json.loads((r / PATHS.clean_json).read_text()) for n, r in roots.items()}
    for f in facts.values():
        f.pop("snapshot_id")
    assert facts["whole"] == facts["parts"]
    assert (whole / PATHS.features_md).read_text() == (parts / PATHS.features_md).read_text()
    if not propose:
        later_stages_equal(whole, parts)
    if propose:
        suites = [
            json.loads((r / "expectations" / "simulator.raw.json").read_text())
            for r in (whole, parts)
        ]
        for s in suites:
            s["meta"]["proposed_from"].pop("snapshot_id")
        assert suites[0] == suites[1]


DAG = (
    "collect",
    "problem",
    "feasibility",
    "clean",
    "features",
    "split",
    "choose_model",
    "train",
    "evaluate",
)


def read_json(root, rel):
    return json.loads((root / rel).read_text())


def later_stages_equal(whole, parts):
    """problem to evaluate: the same facts, splits, audit, choice and test metrics."""
    for rel in (PATHS.problem_json, PATHS.feasibility_json, PATHS.leakage_json):
        a, b = read_json(whole, rel), read_json(parts, rel)
        a.pop("snapshot_id", None), b.pop("snapshot_id", None)
        assert a == b, rel
    assert (whole / PATHS.leakage_md).read_text() == (parts / PATHS.leakage_md).read_text()
    assert pq.ParquetFile(parts / PATHS.train).num_row_groups > 1
    for rel in (PATHS.train, PATHS.valid, PATHS.test, PATHS.split_indices):
        pd.testing.assert_frame_equal(pd.read_parquet(whole / rel), pd.read_parquet(parts / rel))
    manifests = [read_json(r, PATHS.split_manifest) for r in (whole, parts)]
    for split in ("train", "valid", "test"):
        assert manifests[0][split]["content_sha256"] == manifests[1][split]["content_sha256"]
    assert read_json(whole, PATHS.selection_json) == read_json(parts, PATHS.selection_json)
    assert read_json(whole, PATHS.metrics_json) == read_json(parts, PATHS.metrics_json)
    metrics = [read_json(r, PATHS.evaluation_json) for r in (whole, parts)]
    for key in ("test", "baselines", "lift", "slices", "fairness", "top_features", "blessed"):
        assert metrics[0][key] == metrics[1][key], key

    # XGBoost trained from the parts (the split over train.in_memory_rows): close to in memory.
    (parts / PATHS.selection_json).write_text(json.dumps({"chosen": "xgboost"}))
    valid = {}
    for rows in (250_000, 1000):
        params = yaml.safe_load((parts / "params.yaml").read_text())
        params["train"]["in_memory_rows"] = rows
        (parts / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        logs = run_stages(parts, "train")
        assert ("XGBoost reads it part by part" in logs) == (rows == 1000)
        valid[rows] = read_json(parts, PATHS.train_json)["valid_roc_auc"]
    assert abs(valid[1000] - valid[250_000]) < 0.02, valid
    run_stages(parts, "evaluate")
    assert read_json(parts, PATHS.evaluation_json)["model"] == "xgboost"


def test_the_shuffle_finds_exactly_the_copies_and_repeats_dedupe_finds(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"id": rng.integers(0, 400, 2000).astype(str), "x": rng.integers(0, 3, 2000) * 1.0}
    )
    frame.loc[::97, "x"] = np.nan
    frame.loc[5, "x"] = -0.0
    kept, exact, repeats = dedupe(frame, "id")
    copies = Copies()
    with shuffle(7, "id", tmp_path) as sh:
        for start in range(0, len(frame), 300):  # parts that cut through repeated ids
            sh.add(frame.iloc[start : start + 300])
        for bucket in sh.buckets():
            copies.add(bucket, "id")
    assert (copies.exact, copies.repeats) == (exact, repeats) and exact and repeats
    assert copies.ids_in_repeated_groups == int(frame["id"].duplicated(keep=False).sum())
    dropped = copies.dropped()
    ours = pd.concat(
        frame.iloc[s : s + 300][keep_mask(dropped, s, len(frame.iloc[s : s + 300]))]
        for s in range(0, len(frame), 300)
    ).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, kept)
