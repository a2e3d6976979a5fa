"""Step 4, clean & explore: check the snapshot with Great Expectations, then clean it.

The source's suite (``expectations/<source>.raw.json``) holds each column's kind and the
checks: columns present, null ceilings, value ranges, allowed sets, id uniqueness. For a
new source with no suite yet, one is proposed from its first snapshot and written there to
review and commit; later snapshots are checked against it.

Cleaning coerces types (numbers stored as text, blank cells, dates in mixed formats),
normalises category spellings, fixes declared unit bugs, removes duplicates and unlabelled
rows. No statistical imputation: that is fitted on the training split, in the model.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import Params, ProblemParams
from tasks.core.data.eda import eda_html
from tasks.core.data.schema import Standardised, dedupe, kinds_for, standardise
from tasks.core.data.snapshots import current_snapshot
from tasks.core.errors import StepError
from tasks.core.io import write_json, write_parquet, write_text
from tasks.core.paths import PATHS
from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.suites import suite_path_for
from tasks.core.quality.validation import (
    failures_message,
    propose_suite,
    read_suite_file,
    save_suite,
    validate_frame,
    validate_partitioned,
)
from tasks.core.runtime.compute import engine
from tasks.core.step import run_step

log = logging.getLogger("churn.clean")
STEP = "clean"


def check_schema(data: pd.DataFrame, kinds: dict[str, str], suite_path: str) -> None:
    """Every column the suite knows must still be there."""
    gone = [c for c in kinds if c not in data.columns]
    if gone:
        raise StepError(
            STEP,
            "schema: column gone",
            f"column(s) {gone} of {suite_path} are not in this snapshot. If the source changed on "
            f"purpose, update or delete {suite_path} (a new one is proposed from the next run).",
        )


def check_parsing(std: Standardised, min_parse_share: float) -> None:
    """A numeric or date column where many cells do not parse is a schema break."""
    broken = {c: s for c, s in std.parse_share.items() if s < min_parse_share}
    if broken:
        detail = ", ".join(
            f"'{c}' ({s:.0%} parse, {std.unparsed[c]} cells did not)" for c, s in broken.items()
        )
        raise StepError(
            STEP,
            "schema: type changed",
            f"{detail}; clean.min_parse_share is {min_parse_share}. The column's type changed in "
            "the source.",
        )


def clean_frame(std: pd.DataFrame, problem: ProblemParams) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove duplicates and unlabelled rows from a standardised frame (returns a new frame)."""
    deduped, exact, repeats = dedupe(std, problem.id_column)
    labelled = deduped[deduped[problem.target].notna()].reset_index(drop=True)
    labelled[problem.target] = labelled[problem.target].astype("int8")
    counts = {
        "duplicate_rows_removed": exact,
        "repeated_ids_removed": repeats,
        "unlabelled_rows_removed": int(len(deduped) - len(labelled)),
    }
    if problem.id_column is None:
        counts["identical_rows_kept"] = int(std.duplicated(keep="first").sum())
    return labelled, counts


def copies_finding(std: pd.DataFrame, id_column: str | None) -> str | None:
    """Rows that are exact copies of others, in plain words (None when there are none)."""
    copies = int(std.duplicated(keep="first").sum())
    if not copies:
        return None
    share = copies / len(std)
    if id_column is None:
        return (
            f"{copies:,} rows ({share:.1%}) are identical to another row; with no id column they "
            "are kept, as different customers can share every value"
        )
    repeats = int(std.drop_duplicates()[id_column].duplicated().sum())
    text = (
        f"{copies:,} rows ({share:.1%}) are exact copies of other rows (same '{id_column}', "
        "same values): an export that concatenated overlapping files? The clean step keeps one "
        "of each"
    )
    if repeats:
        text += f"; {repeats:,} more rows repeat an id with different values (the first is kept)"
    return text


def main(root: Path, params: Params) -> None:
    """Validate, clean and explore the current snapshot."""
    cfg, problem = params.clean, params.problem
    snapshot = current_snapshot(root / PATHS.raw_dir)
    raw = snapshot.read()
    suite_rel = suite_path_for(cfg, params.collect)
    docs = DocsTarget(
        root / PATHS.data_docs_dir, "raw", f"snapshot {snapshot.snapshot_id}", cfg.data_docs_runs
    )
    suite_file = root / suite_rel
    proposed = not suite_file.exists()
    if proposed:
        kinds = kinds_for(raw, problem, cfg)
    else:
        spec = read_suite_file(suite_file)
        kinds = (spec.get("meta") or {}).get("column_kinds") or {}
        if not kinds:
            raise StepError(
                STEP,
                "suite",
                f"{suite_rel} has no meta.column_kinds; delete it to propose a new one",
            )
        check_schema(raw, kinds, suite_rel)
    with engine(params.compute, root, STEP) as eng:
        std = Standardised.combine(
            eng.map_partitions(
                standardise,
                raw,
                "raw",
                kinds=kinds,
                positive_label=problem.positive_label,
                date_formats=cfg.date_formats,
                aliases=cfg.category_aliases,
                unit_fixes=[f.model_dump() for f in cfg.unit_fixes],
            )
        )
        check_parsing(std, cfg.min_parse_share)
        finding = copies_finding(std.frame, problem.id_column)
        if finding:
            log.warning("%s", finding)
        if proposed:
            spec = propose_suite(
                std.frame,
                kinds,
                Path(suite_rel).stem,
                cfg.proposal.null_margin,
                cfg.proposal.mostly,
                {"snapshot_id": snapshot.snapshot_id, "source": snapshot.provenance.get("source")},
            )
            save_suite(suite_file, spec)
            log.warning(
                "no suite for this source yet: proposed %s from snapshot %s - review it and commit "
                "it",
                suite_rel,
                snapshot.snapshot_id,
            )
        if eng.is_dask:
            results = validate_partitioned(eng, std.frame, spec, "raw", docs)
        else:
            results = validate_frame(std.frame, spec, "raw", docs)
    if not all(r.success for r in results):
        raise StepError(STEP, "data quality", failures_message(results, suite_rel))
    log.info("data quality: all %d checks of %s passed", len(results), suite_rel)
    clean, counts = clean_frame(std.frame, problem)
    facts: dict[str, Any] = {
        "snapshot_id": snapshot.snapshot_id,
        "suite": suite_rel,
        "suite_proposed_now": proposed,
        "checks_passed": len(results),
        "rows_in": int(len(raw)),
        **counts,
        "rows_out": int(len(clean)),
        "unparsed_cells": {c: n for c, n in std.unparsed.items() if n},
        "unit_fixed_rows": std.unit_fixed,
        "positive_rate": round(float(clean[problem.target].mean()), 6),
    }
    write_parquet(root / PATHS.interim_clean, clean)
    write_json(root / PATHS.clean_json, facts)
    write_text(
        root / PATHS.eda_html,
        eda_html(
            std.frame, kinds, problem.target, problem.time_column, facts, f"EDA: {problem.name}"
        ),
    )
    log.info(
        "cleaned %d -> %d rows (%s); EDA at %s, Data Docs at %s/index.html",
        facts["rows_in"],
        facts["rows_out"],
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        PATHS.eda_html,
        PATHS.data_docs_dir,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
