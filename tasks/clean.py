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

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from tasks.core.config import CleanParams, CollectParams, ComputeParams, ProblemParams
from tasks.core.data.eda import eda_html
from tasks.core.data.schema import Standardised, standardise
from tasks.core.data.shuffle import Copies, keep_mask, shuffle
from tasks.core.data.snapshots import Snapshot, current_snapshot
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import (
    PartWriter,
    iter_parts,
    write_json,
    write_parts,
    write_text,
)
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS
from tasks.core.quality.data_docs import DocsTarget
from tasks.core.quality.suites import Suite, proposal_source, save_proposal, suite_for
from tasks.core.quality.validation import (
    UNIQUE,
    failures_message,
    merge_profiles,
    partition_counts,
    profile,
    propose_from_profile,
    validate_parts,
)
from tasks.core.runtime.compute import engine
from tasks.core.step import run_step

log = logging.getLogger("churn.clean")
STEP = "clean"


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


def copies_finding(std: pd.DataFrame, id_column: str | None) -> str | None:
    """Rows that are exact copies of others, in plain words (None when there are none)."""
    copies = int(std.duplicated(keep="first").sum())
    repeats = int(std.drop_duplicates()[id_column].duplicated().sum()) if id_column else 0
    return copies_text(copies, repeats, len(std), id_column)


def copies_text(copies: int, repeats: int, rows: int, id_column: str | None) -> str | None:
    """:func:`copies_finding` from the counts."""
    if not copies:
        return None
    share = copies / rows
    if id_column is None:
        return (
            f"{copies:,} rows ({share:.1%}) are identical to another row; with no id column they "
            "are kept, as two different customers (or applicants, or flights) can share every value"
        )
    text = (
        f"{copies:,} rows ({share:.1%}) are exact copies of other rows (same '{id_column}', "
        "same values): an export that concatenated overlapping files? The clean step keeps one "
        "of each"
    )
    if repeats:
        text += f"; {repeats:,} more rows repeat an id with different values (the first is kept)"
    return text


def standardise_kwargs(
    cfg: CleanParams, problem: ProblemParams, kinds: dict[str, str]
) -> dict[str, Any]:
    """The arguments :func:`standardise` takes besides the data."""
    return {
        "kinds": kinds,
        "read_target": objective_for(problem).read_target,
        "date_formats": cfg.date_formats,
        "aliases": cfg.category_aliases,
        "unit_fixes": [f.model_dump() for f in cfg.unit_fixes],
    }


def main(
    root: Path,
    cfg: CleanParams,
    problem: Annotated[
        ProblemParams,
        Keys(
            "type",
            "target",
            "id_column",
            "time_column",
            "positive_label",
            "class_aliases",
            "name",
        ),
    ],
    collect: Annotated[CollectParams, Keys("source", "path", "sql.query", "simulator.target")],
    compute: ComputeParams,
) -> None:
    """Validate, clean and explore the current snapshot, one part at a time (a snapshot of
    one part is read as one part: there is no second, whole-frame path)."""
    snapshot = current_snapshot(root / PATHS.raw_dir)
    docs = DocsTarget(
        root / PATHS.data_docs_dir,
        "raw",
        f"snapshot {snapshot.snapshot_id}",
        cfg.data_docs_runs,
    )
    clean_in_parts(root, cfg, problem, collect, compute, snapshot, docs)


def check_results(results: list[Any], suite_rel: str, unchecked: int = 0) -> None:
    """Stop on any failed check, naming each with its observed value."""
    if not all(r.success for r in results):
        raise StepError(STEP, "data quality", failures_message(results, suite_rel))
    log.info(
        "data quality: all %d checks of %s passed%s",
        len(results),
        suite_rel,
        f"; {unchecked} new column(s) it has no checks for" if unchecked else "",
    )


def clean_facts(
    snapshot: Snapshot,
    suite: Suite,
    results: list[Any],
    rows_in: int,
    counts: dict[str, int],
    rows_out: int,
    std: Standardised,
) -> dict[str, Any]:
    """``reports/clean.json`` (the positive rate is added by the caller)."""
    return {
        "snapshot_id": snapshot.snapshot_id,
        "suite": suite.rel,
        "suite_proposed_now": suite.proposed,
        "checks_passed": len(results),
        "new_columns": suite.new_columns,
        "rows_in": int(rows_in),
        **counts,
        "rows_out": int(rows_out),
        "unparsed_cells": {c: n for c, n in std.unparsed.items() if n},
        "unit_fixed_rows": std.unit_fixed,
    }


def report(
    root: Path,
    problem: ProblemParams,
    facts: dict[str, Any],
    counts: dict[str, int],
    eda_frame: pd.DataFrame,
    kinds: dict[str, str],
    eda_extra: dict[str, Any],
) -> None:
    """Write ``reports/clean.json`` and the EDA report, and log the summary."""
    write_json(root / PATHS.clean_json, facts)
    write_text(
        root / PATHS.eda_html,
        eda_html(
            eda_frame,
            kinds,
            problem.target,
            problem.time_column,
            {**facts, **eda_extra},
            f"EDA: {problem.name}",
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


EDA_ROWS = 200_000
"""The EDA report of a snapshot read in parts draws its figures from about this many rows
(an even share of every part); its summary numbers are of all rows."""


def clean_in_parts(
    root: Path,
    cfg: CleanParams,
    problem: ProblemParams,
    collect: CollectParams,
    compute: ComputeParams,
    snapshot: Snapshot,
    docs: DocsTarget,
) -> None:
    """The clean step, holding one part (or bucket) of the snapshot at a time.

    1. Each raw part is standardised and written to a temporary file, and its rows are
       shuffled to buckets by id (:mod:`tasks.core.data.shuffle`).
    2. Each bucket gives its exact copies, id repeats and id uniqueness counts (GX on the
       bucket); a proposed suite is made from the parts' profiles and those counts.
    3. The suite is checked part by part (:func:`validate_parts`).
    4. The cleaned parts are written, in the snapshot's order: each id's first row once,
       labelled rows only (what ``tests/whole_frame.py`` keeps of the frame whole).
    """
    suite = suite_for(root, cfg, problem, collect, next(iter_parts(snapshot.data_path)))
    kinds, id_column, target = suite.kinds, problem.id_column, problem.target
    total = int(snapshot.provenance["rows"])
    buckets = max(1, -(-total // compute.partition_rows))
    every = max(1, -(-total // EDA_ROWS))
    out_path = root / PATHS.interim_clean
    folder = out_path.parent
    counters, sample, facts_profile = [], [], None
    with engine(compute, root, STEP) as eng, shuffle(buckets, id_column, folder) as sh:
        std_path = sh.folder / "standardised.parquet"
        writer = PartWriter(std_path)
        for k, raw in enumerate(snapshot.parts()):
            std = Standardised.combine(
                eng.map_partitions(
                    standardise, raw, f"raw-{k}", **standardise_kwargs(cfg, problem, kinds)
                )
            )
            writer.write(std.frame)
            sh.add(std.frame)
            if suite.proposed:
                part_profile = profile(std.frame, kinds)
                facts_profile = (
                    part_profile
                    if facts_profile is None
                    else merge_profiles(facts_profile, part_profile)
                )
            # a copy: a slice is a view that would keep the whole part alive
            sample.append(std.frame.iloc[::every].copy())
            counters.append(dataclasses.replace(std, frame=pd.DataFrame()))
            log.info("standardised part %d (%d of %d rows)", k + 1, sh.rows, total)
        writer.close()
        totals = Standardised.totals(counters)
        check_parsing(totals, cfg.min_parse_share)
        copies, unique = Copies(), []
        id_spec = {"expectations": [{"type": UNIQUE, "kwargs": {"column": id_column}}]}
        for b, bucket in enumerate(sh.buckets()):
            copies.add(bucket, id_column)
            if id_column is not None:
                for counts in eng.map_partitions(
                    partition_counts, bucket[[id_column]], f"ids-{b}", spec=id_spec
                ):
                    unique.append(counts[0])
        finding = copies_text(copies.exact, copies.repeats, sh.rows, id_column)
        if finding:
            log.warning("%s", finding)
        spec = suite.spec
        if suite.proposed:
            if id_column is not None and id_column in facts_profile:
                facts_profile[id_column]["ids"] = copies.ids
                facts_profile[id_column]["ids_in_repeated_groups"] = copies.ids_in_repeated_groups
            spec = propose_from_profile(
                facts_profile,
                kinds,
                Path(suite.rel).stem,
                cfg.proposal.null_margin,
                cfg.proposal.mostly,
                proposal_source(snapshot),
                objective_for(problem).STORED_VALUES,
            )
            save_proposal(suite, spec, snapshot)
        results = validate_parts(eng, std_path, spec, "raw", docs, id_column, unique)
        check_results(results, suite.rel, len(suite.new_columns))
        dropped = copies.dropped()
        objective = objective_for(problem)
        rows_out = unlabelled = start = 0
        targets = []
        with write_parts(out_path) as out:
            for part in iter_parts(std_path):
                kept = part[keep_mask(dropped, start, len(part))]
                start += len(part)
                labelled = kept[kept[target].notna()].reset_index(drop=True)
                labelled[target] = objective.stored(labelled[target])
                out.write(labelled)
                rows_out += len(labelled)
                targets.append(labelled[target])
                unlabelled += len(kept) - len(labelled)
            out.close()
    counts = {
        "duplicate_rows_removed": copies.exact if id_column is not None else 0,
        "repeated_ids_removed": copies.repeats,
        "unlabelled_rows_removed": unlabelled,
    }
    if id_column is None:
        counts["identical_rows_kept"] = copies.exact
    facts = clean_facts(snapshot, suite, results, sh.rows, counts, rows_out, totals)
    facts |= objective.clean_facts(pd.concat(targets) if targets else pd.Series([], dtype=float))
    eda = pd.concat(sample, ignore_index=True)
    report(root, problem, facts, counts, eda, kinds, {"eda_sample_rows": len(eda)})


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
