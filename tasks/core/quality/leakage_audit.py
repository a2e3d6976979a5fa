"""The leakage audit's checks and report: the leakage suite run on the audit frame, each
check's result in plain words, and ``reports/leakage_audit.md``.

The audit frame itself is :mod:`tasks.core.quality.audit_frame`; the held-out copies
count, :mod:`tasks.core.quality.leakage`. The split step runs the audit before it writes
any split file.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.core.config import ProblemParams, SplitParams
from tasks.core.ml.objective import objective_for
from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.leakage import SINGLE_FEATURE, HeldOutCopies, SingleFeatureCheck
from tasks.core.quality.pages import md
from tasks.core.quality.validation import validate_frame

CHECK_NAMES = {
    "expect_ids_in_one_split": ("id in two splits", "id_n_splits"),
    "expect_held_out_copies_within_chance": ("held-out copies of training rows", "copy_excess"),
    "expect_splits_in_time_order": ("time order of splits", "split_time_ordered"),
    "expect_column_values_to_be_in_set": ("post-outcome columns absent", "post_outcome_present"),
    "expect_single_feature_auc_below": ("single-feature ROC-AUC", "feature_auc"),
}


def run_audit(
    audit: pd.DataFrame,
    cfg: SplitParams,
    suite: dict[str, Any],
    docs: DocsTarget | None,
    n_keys: int | None = None,
    single: SingleFeatureCheck = SINGLE_FEATURE["binary"],
) -> list[dict[str, Any]]:
    """Validate the audit frame with the leakage suite; one record per check.

    ``n_keys``: how many distinct ids the id check covered (its block has one row for all
    the ids in one split); default, the block's rows. ``single``: the problem type's
    single-feature check, whose ``split`` key is the suite's ``max_single_feature_auc``
    parameter (the limit of the ``feature_auc`` column, whatever the score).
    """
    results = validate_frame(
        audit,
        suite,
        "leakage",
        docs,
        index_column="subject",
        parameters={
            "max_single_feature_auc": getattr(cfg, single.key),
        },
    )
    out = []
    for r in results:
        check, column = CHECK_NAMES.get(r.expectation, (r.expectation, r.column))
        if column == "feature_auc":
            check = f"single-feature {single.label}"
        applies = audit[r.column].notna().sum() if r.column in audit else 0
        if column == "id_n_splits" and n_keys is not None:
            applies = n_keys
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
    single = SINGLE_FEATURE[objective_for(problem).type]
    if name == f"single-feature {single.label}":
        limit = getattr(cfg, single.key)
        bad = audit[audit["feature_auc"] >= limit]
        shown = ", ".join(
            f"'{s.removeprefix('feature:')}' ({a:.3f})"
            for s, a in zip(bad["subject"], bad["feature_auc"])
        )
        return (
            f"{name}: column(s) {shown} alone predict '{problem.target}' with {single.label} at "
            f"or above split.{single.key} {limit}: a column known only after the outcome? List "
            "it in problem.post_outcome_columns (or drop it)"
        )
    if name == "post-outcome columns absent":
        bad = audit.loc[audit["post_outcome_present"] > 0, "subject"].str.removeprefix("feature:")
        return f"{name}: column(s) {', '.join(bad)} are listed in problem.post_outcome_columns"
    return f"{name} (column {check['column']}): {check['observed']}"


def audit_markdown(
    checks: list[dict[str, Any]],
    strategy: str,
    counts: dict[str, int],
    top: pd.DataFrame,
    label: str = "ROC-AUC",
) -> str:
    """``reports/leakage_audit.md``: the checklist."""
    lines = [
        f"# Leakage audit\n\nSplit: **{strategy}**; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + "\n",
        "| | check | subjects checked | observed |",
        "|---|---|---|---|",
    ]
    for c in checks:
        mark = "[x]" if c["passed"] else "**[ ] FAILED**"
        lines.append(f"| {mark} | {c['check']} | {c['applies_to']} | {md(c['observed'])} |")
    lines += [
        "",
        "Subjects: what each check looks at (ids for the id check, features for the "
        "single-feature check, rows or groups of rows for the others).",
        "",
        f"## Strongest single features ({label} alone, on the training split)",
        "",
        f"| feature | {label} |",
        "|---|---|",
    ]
    lines += [
        f"| {md(s.removeprefix('feature:'))} | {a:.3f} |"
        for s, a in zip(top["subject"], top["feature_auc"])
    ]
    return "\n".join(lines) + "\n"
