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

import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from tasks.core.config import Params, ProblemParams, SplitParams
from tasks.core.errors import StepError
from tasks.core.io import file_sha256, read_json, write_json, write_parquet, write_text
from tasks.core.paths import PATHS
from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.leakage import HeldOutCopies, held_out_copies, single_feature_auc
from tasks.core.quality.validation import read_suite_file, validate_frame
from tasks.core.step import run_step

log = logging.getLogger("churn.split")
STEP = "split"
SPLITS = ("train", "valid", "test")
ROW_KEY = "row_key"
"""The splits file's key column when the data has no id (the row's position in the table)."""
CHECK_NAMES = {
    "expect_ids_in_one_split": ("id in two splits", "id_n_splits"),
    "expect_held_out_copies_within_chance": ("held-out copies of training rows", "copy_excess"),
    "expect_splits_in_time_order": ("time order of splits", "split_time_ordered"),
    "expect_column_values_to_be_in_set": ("post-outcome columns absent", "post_outcome_present"),
    "expect_single_feature_auc_below": ("single-feature ROC-AUC", "feature_auc"),
}


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
    y = frame[problem.target].to_numpy()
    _, rest = train_test_split(
        positions, test_size=holdout, stratify=y, random_state=cfg.random_state
    )
    valid_idx, test_idx = train_test_split(
        rest, test_size=cfg.test_size / holdout, stratify=y[rest], random_state=cfg.random_state
    )
    labels.iloc[valid_idx] = "valid"
    labels.iloc[test_idx] = "test"
    return labels


def copies_of(
    frame: pd.DataFrame, splits: pd.Series, problem: ProblemParams, cfg: SplitParams
) -> HeldOutCopies:
    """Held-out rows with the features of a training row, against the chance rate."""
    return held_out_copies(
        frame,
        splits,
        {problem.id_column, problem.time_column, problem.target},
        cfg.max_cross_split_duplicate_share,
        frame[problem.id_column] if problem.id_column else None,
    )


def audit_frame(
    frame: pd.DataFrame,
    splits: pd.Series,
    problem: ProblemParams,
    cfg: SplitParams,
    strategy: str,
    copies: HeldOutCopies | None = None,
) -> pd.DataFrame:
    """The derived frame the leakage suite checks: one block of rows per check.

    Columns: ``subject`` (what a row is about), ``id_n_splits``, ``copy_excess``,
    ``split_time_ordered``, ``post_outcome_present``, ``feature_auc``. Without an id column
    (and not a group split) there is no id block: the held-out copy check covers rows.
    """
    blocks = []
    group_key = cfg.group_column if strategy == "group" else problem.id_column
    if group_key:
        per_id = (
            pd.DataFrame({"key": frame[group_key].astype(str), "split": splits})
            .groupby("key")["split"]
            .nunique()
        )
        blocks.append(
            pd.DataFrame({"subject": "id:" + per_id.index, "id_n_splits": per_id.to_numpy(float)})
        )
    copies = copies or copies_of(frame, splits, problem, cfg)
    blocks.append(
        pd.DataFrame(
            {"subject": ["rows: held-out copies of training rows"], "copy_excess": [copies.excess]}
        )
    )
    if strategy == "time":
        times = frame[problem.time_column]
        for prev, cur in (("train", "valid"), ("valid", "test")):
            ok = times[splits == cur].min() > times[splits == prev].max()
            blocks.append(
                pd.DataFrame(
                    {"subject": [f"split:{cur} after {prev}"], "split_time_ordered": [float(ok)]}
                )
            )
    features = [
        c
        for c in frame.columns
        if c not in {problem.id_column, problem.target, problem.time_column}
    ]
    post = set(problem.post_outcome_columns)
    train = frame[splits == "train"]
    if len(train) > cfg.audit_sample_rows:
        train = train.sample(cfg.audit_sample_rows, random_state=cfg.random_state)
    y = train[problem.target].to_numpy(int)
    aucs = [single_feature_auc(train[c], y, cfg.random_state) for c in features]
    blocks.append(
        pd.DataFrame(
            {
                "subject": [f"feature:{c}" for c in features],
                "post_outcome_present": [float(c in post) for c in features],
                "feature_auc": aucs,
            }
        )
    )
    audit = pd.concat(blocks, ignore_index=True)
    for column in (
        "id_n_splits",
        "copy_excess",
        "split_time_ordered",
        "post_outcome_present",
        "feature_auc",
    ):
        if column not in audit:
            audit[column] = np.nan
    return audit


def run_audit(
    audit: pd.DataFrame, cfg: SplitParams, suite: dict[str, Any], docs: DocsTarget | None
) -> list[dict[str, Any]]:
    """Validate the audit frame with the leakage suite; one record per check."""
    results = validate_frame(
        audit,
        suite,
        "leakage",
        docs,
        index_column="subject",
        parameters={
            "max_single_feature_auc": cfg.max_single_feature_auc,
        },
    )
    out = []
    for r in results:
        check, column = CHECK_NAMES.get(r.expectation, (r.expectation, r.column))
        applies = audit[r.column].notna().sum() if r.column in audit else 0
        out.append(
            {
                "check": check,
                "column": column,
                "passed": r.success,
                "applies_to": int(applies),
                "observed": r.observed,
            }
        )
    return out


def finding(
    check: dict[str, Any],
    audit: pd.DataFrame,
    copies: HeldOutCopies,
    problem: ProblemParams,
    cfg: SplitParams,
) -> str:
    """A failed check in plain words: what was found, the limit, and what to do."""
    name = check["check"]
    if name == "held-out copies of training rows":
        return (
            f"{name}: {copies.describe()}. The same entity, or rows copied under new ids, on "
            "both sides of the split make the test score optimistic: remove the copies from the "
            "source, split by entity (split.strategy: group, split.group_column), or raise "
            "split.max_cross_split_duplicate_share if these rows really are different entities."
        )
    if name == "id in two splits":
        ids = audit.loc[audit["id_n_splits"] > 1, "subject"].str.removeprefix("id:")
        key = cfg.group_column or problem.id_column
        return (
            f"{name}: {len(ids):,} values of '{key}' occur in more than one split "
            f"(e.g. {', '.join(ids[:5])}); each must stay in one split"
        )
    if name == "single-feature ROC-AUC":
        bad = audit[audit["feature_auc"] >= cfg.max_single_feature_auc]
        shown = ", ".join(
            f"'{s.removeprefix('feature:')}' ({a:.3f})"
            for s, a in zip(bad["subject"], bad["feature_auc"])
        )
        return (
            f"{name}: column(s) {shown} alone predict '{problem.target}' with ROC-AUC at or above "
            f"split.max_single_feature_auc {cfg.max_single_feature_auc}: a column known only after "
            "the outcome? List it in problem.post_outcome_columns (or drop it)"
        )
    if name == "post-outcome columns absent":
        bad = audit.loc[audit["post_outcome_present"] > 0, "subject"].str.removeprefix("feature:")
        return f"{name}: column(s) {', '.join(bad)} are listed in problem.post_outcome_columns"
    return f"{name} (column {check['column']}): {check['observed']}"


def audit_markdown(
    checks: list[dict[str, Any]], strategy: str, counts: dict[str, int], top: pd.DataFrame
) -> str:
    """``reports/leakage_audit.md``: the checklist."""
    lines = [
        f"# Leakage audit\n\nSplit: **{strategy}**; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + "\n",
        "| | check | rows checked | observed |",
        "|---|---|---|---|",
    ]
    for c in checks:
        mark = "[x]" if c["passed"] else "**[ ] FAILED**"
        lines.append(f"| {mark} | {c['check']} | {c['applies_to']} | {c['observed']} |")
    lines += [
        "",
        "## Strongest single features (ROC-AUC alone, on the training split)",
        "",
        "| feature | ROC-AUC |",
        "|---|---|",
    ]
    lines += [
        f"| {s.removeprefix('feature:')} | {a:.3f} |"
        for s, a in zip(top["subject"], top["feature_auc"])
    ]
    return "\n".join(lines) + "\n"


def _sha(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()


def main(root: Path, params: Params) -> None:
    """Split, audit, and (only if the audit passes) write the splits."""
    cfg, problem = params.split, params.problem
    frame = pd.read_parquet(root / PATHS.features_table)
    strategy = resolve_strategy(cfg, problem)
    splits = assign_splits(frame, cfg, problem)
    counts = {s: int((splits == s).sum()) for s in SPLITS}
    if min(counts.values()) == 0:
        raise StepError(
            STEP, "split sizes", f"a split is empty: {counts}; adjust split.valid_size/test_size"
        )
    copies = copies_of(frame, splits, problem, cfg)
    audit = audit_frame(frame, splits, problem, cfg, strategy, copies)
    snapshot_id = read_json(root / PATHS.clean_json)["snapshot_id"]
    docs = DocsTarget(
        root / PATHS.data_docs_dir,
        "leakage",
        f"{strategy} split of snapshot {snapshot_id}",
        params.clean.data_docs_runs,
    )
    checks = run_audit(audit, cfg, read_suite_file(root / cfg.suite), docs)
    top = audit.dropna(subset=["feature_auc"]).nlargest(8, "feature_auc")
    write_text(root / PATHS.leakage_md, audit_markdown(checks, strategy, counts, top))
    failed = [c for c in checks if not c["passed"]]
    write_json(
        root / PATHS.leakage_json,
        {
            "passed": not failed,
            "strategy": strategy,
            **{f"rows_{k}": v for k, v in counts.items()},
            "failed_checks": [c["check"] for c in failed],
            "max_single_feature_auc": round(float(top["feature_auc"].max()), 6),
        },
    )
    if failed:
        detail = "\n  ".join(finding(c, audit, copies, problem, cfg) for c in failed)
        raise StepError(
            STEP,
            "leakage audit",
            f"{detail}\n  See {PATHS.leakage_md}; no split was written.",
        )
    write_parquet(
        root / PATHS.split_indices,
        pd.DataFrame(
            {
                ROW_KEY: frame[problem.id_column] if problem.id_column else frame.index,
                "split": splits.astype(str),
            }
        ),
    )
    manifest: dict[str, Any] = {"strategy": strategy, "rows": counts}
    for name in SPLITS:
        part = frame[splits == name].reset_index(drop=True)
        path = root / getattr(PATHS, name)
        write_parquet(path, part)
        manifest[name] = {
            "path": getattr(PATHS, name),
            "sha256": file_sha256(path),
            "content_sha256": _sha(part),
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
