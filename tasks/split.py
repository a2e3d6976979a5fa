"""Step 6, split & leakage audit: train/validation/test, checked for leaks before anything trains.

The split is random stratified, time-based (on ``problem.time_column``) or grouped, per
``split.strategy``. The leakage audit runs here, so the test split is an output of this
stage and no later stage before evaluation needs to read it. It checks, with Great
Expectations over a derived audit frame (``expectations/leakage.json``): no id in two
splits, no more held-out copies of training rows than chance gives on the data
(:mod:`tasks.core.quality.leakage`), time order for time splits, post-outcome columns
absent, and no single feature that alone predicts the label suspiciously well. A failed
check stops the run naming the column and the check, and no split file is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from tasks.core.config import CleanParams, ProblemParams, SplitParams
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import (
    file_sha256,
    iter_parts,
    read_json,
    write_json,
    write_parts,
    write_text,
)
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS
from tasks.core.quality.audit_frame import SPLITS, audit_table
from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.leakage import SINGLE_FEATURE
from tasks.core.quality.leakage_audit import audit_markdown, finding, run_audit
from tasks.core.quality.validation import read_suite_file
from tasks.core.step import run_step

log = logging.getLogger("churn.split")
STEP = "split"
ROW_KEY = "row_key"
"""The splits file's key column when the data has no id (the row's position in the table)."""


def resolve_strategy(cfg: SplitParams, problem: ProblemParams) -> str:
    """``auto`` means time when there is a time column, else stratified."""
    if cfg.strategy == "auto":
        return "time" if problem.time_column else "stratified"
    if cfg.strategy == "time" and not problem.time_column:
        raise StepError(
            STEP, "time split", "split.strategy is 'time' but problem.time_column is not set"
        )
    return cfg.strategy


def assign_splits(frame: pd.DataFrame, cfg: SplitParams, problem: ProblemParams) -> pd.Series:
    """Split label (``train``/``valid``/``test``) for every row.

    Time splits cut on distinct timestamps, so rows of one day never straddle two splits.
    """
    strategy = resolve_strategy(cfg, problem)
    n = len(frame)
    labels = pd.Series("train", index=frame.index, dtype=object)
    if strategy == "time":
        times = frame[problem.time_column]
        ordered = np.sort(times.dropna().unique())
        counts = times.value_counts().reindex(ordered).to_numpy()
        share = np.cumsum(counts) / counts.sum()
        t_valid = ordered[
            min(np.searchsorted(share, 1 - cfg.valid_size - cfg.test_size), len(ordered) - 1)
        ]
        t_test = ordered[min(np.searchsorted(share, 1 - cfg.test_size), len(ordered) - 1)]
        labels[times > t_valid] = "valid"
        labels[times > t_test] = "test"
        return labels
    positions = np.arange(n)
    holdout = cfg.valid_size + cfg.test_size
    if strategy == "group":
        groups = frame[cfg.group_column].to_numpy()
        first = GroupShuffleSplit(1, test_size=holdout, random_state=cfg.random_state)
        _, rest = next(first.split(positions, groups=groups))
        second = GroupShuffleSplit(
            1, test_size=cfg.test_size / holdout, random_state=cfg.random_state
        )
        valid_idx, test_idx = next(second.split(rest, groups=groups[rest]))
        labels.iloc[rest[valid_idx]] = "valid"
        labels.iloc[rest[test_idx]] = "test"
        return labels
    y = objective_for(problem).strata(frame[problem.target].to_numpy())
    _, rest = train_test_split(
        positions, test_size=holdout, stratify=y, random_state=cfg.random_state
    )
    valid_idx, test_idx = train_test_split(
        rest, test_size=cfg.test_size / holdout, stratify=y[rest], random_state=cfg.random_state
    )
    labels.iloc[valid_idx] = "valid"
    labels.iloc[test_idx] = "test"
    return labels


def write_splits(
    root: Path, path: Path, splits: pd.Series, problem: ProblemParams
) -> dict[str, dict[str, str]]:
    """Write the split index and each split's rows, one part of the features file at a time.

    Each output is a partitioned file like its input (a row group per input part that has
    rows of that split). Returns each split's path, file hash and content hash; the content
    hash equals the one of the split's whole frame (row hashes, in order).
    """
    digests = {name: hashlib.sha256() for name in SPLITS}
    labels = splits.astype(str).to_numpy()
    with contextlib.ExitStack() as stack:
        index = stack.enter_context(write_parts(root / PATHS.split_indices))
        writers = {
            name: stack.enter_context(write_parts(root / getattr(PATHS, name))) for name in SPLITS
        }
        start = 0
        for part in iter_parts(path):
            label = labels[start : start + len(part)]
            keys = (
                part[problem.id_column]
                if problem.id_column
                else pd.RangeIndex(start, start + len(part))
            )
            index.write(pd.DataFrame({ROW_KEY: keys, "split": label}))
            for name in SPLITS:
                rows = part[label == name].reset_index(drop=True)
                if len(rows):
                    writers[name].write(rows)
                    digests[name].update(
                        pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()
                    )
            start += len(part)
        for writer in (index, *writers.values()):
            writer.close()
    return {
        name: {
            "path": getattr(PATHS, name),
            "sha256": file_sha256(root / getattr(PATHS, name)),
            "content_sha256": digests[name].hexdigest(),
        }
        for name in SPLITS
    }


def main(
    root: Path,
    cfg: SplitParams,
    problem: Annotated[
        ProblemParams, Keys("type", "target", "id_column", "time_column", "post_outcome_columns")
    ],
    clean: Annotated[CleanParams, Keys("data_docs_runs")],
) -> None:
    """Split, audit, and (only if the audit passes) write the splits.

    The features table is never loaded whole: the split reads the one column it cuts on,
    the audit hashes each part's rows, and the outputs are written part by part.
    """
    path = root / PATHS.features_table
    strategy = resolve_strategy(cfg, problem)
    cut_on = {"time": problem.time_column, "group": cfg.group_column}.get(strategy, problem.target)
    keys = pd.read_parquet(path, columns=[cut_on])
    splits = assign_splits(keys, cfg, problem).astype(pd.CategoricalDtype(SPLITS))
    counts = {s: int((splits == s).sum()) for s in SPLITS}
    if min(counts.values()) == 0:
        raise StepError(
            STEP, "split sizes", f"a split is empty: {counts}; adjust split.valid_size/test_size"
        )
    audit, copies, n_keys = audit_table(path, keys, splits, problem, cfg, strategy)
    snapshot_id = read_json(root / PATHS.clean_json)["snapshot_id"]
    docs = DocsTarget(
        root / PATHS.data_docs_dir,
        "leakage",
        f"{strategy} split of snapshot {snapshot_id}",
        clean.data_docs_runs,
    )
    single = SINGLE_FEATURE[objective_for(problem).type]
    suite = read_suite_file(root / cfg.suite)
    checks = run_audit(audit, cfg, suite, docs, n_keys or None, single)
    top = audit.dropna(subset=["feature_auc"]).nlargest(8, "feature_auc")
    write_text(root / PATHS.leakage_md, audit_markdown(checks, strategy, counts, top, single.label))
    failed = [c for c in checks if not c["passed"]]
    write_json(
        root / PATHS.leakage_json,
        {
            "passed": not failed,
            "strategy": strategy,
            **{f"rows_{k}": v for k, v in counts.items()},
            "failed_checks": [c["check"] for c in failed],
            single.key: round(float(top["feature_auc"].max()), 6),
        },
    )
    if failed:
        detail = "\n  ".join(finding(c, audit, copies, problem, cfg) for c in failed)
        raise StepError(
            STEP,
            "leakage audit",
            f"{detail}\n  See {PATHS.leakage_md}; no split was written.",
        )
    manifest: dict[str, Any] = {
        "strategy": strategy,
        "rows": counts,
        **write_splits(root, path, splits, problem),
    }
    write_json(root / PATHS.split_manifest, manifest)
    log.info(
        "%s split: %s; leakage audit passed (%d checks); %s",
        strategy,
        counts,
        len(checks),
        PATHS.leakage_md,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
