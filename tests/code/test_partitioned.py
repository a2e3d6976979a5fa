"""Data read part by part gives the same results as data read whole.

collect writes a snapshot as row groups of ``compute.partition_rows`` rows; clean and
features then hold one part (or one bucket of the id shuffle) at a time. The outputs must
equal the whole-frame path's, on the test profile, row for row.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from devtools.project import SMALL, make_project
from tasks.core.data.schema import dedupe
from tasks.core.data.shuffle import Copies, keep_mask, shuffle
from tasks.core.paths import PATHS

pytestmark = pytest.mark.slow


def run_stages(root, *stages):
    for stage in stages:
        done = subprocess.run(
            [sys.executable, "-m", f"tasks.{stage}"], cwd=root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("propose", [False, True], ids=["committed-suite", "proposed-suite"])
def test_collect_clean_and_features_in_parts_equal_the_whole_frame_path(tmp_path, propose):
    roots = {}
    for name, rows in (("whole", 250_000), ("parts", 1000)):
        root = make_project(
            tmp_path / name, {"compute": {"partition_rows": rows}}, profile=SMALL, commit=False
        )
        if propose:
            (root / "expectations" / "simulator.raw.json").unlink()
        run_stages(root, "collect", "clean", "features")
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
    if propose:
        suites = [
            json.loads((r / "expectations" / "simulator.raw.json").read_text())
            for r in (whole, parts)
        ]
        for s in suites:
            s["meta"]["proposed_from"].pop("snapshot_id")
        assert suites[0] == suites[1]


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


def test_the_dask_engine_on_a_snapshot_in_parts_gives_the_local_outputs(tmp_path):
    """Each part goes to the workers under its own scratch name (parts never mix)."""
    roots = {}
    for engine in ("local", "dask"):
        overrides = {"compute": {"partition_rows": 1000, "engine": engine}}
        roots[engine] = make_project(tmp_path / engine, overrides, profile=SMALL, commit=False)
        run_stages(roots[engine], "collect", "clean", "features")
    for rel in (PATHS.interim_clean, PATHS.features_table):
        pd.testing.assert_frame_equal(*(pd.read_parquet(r / rel) for r in roots.values()))
