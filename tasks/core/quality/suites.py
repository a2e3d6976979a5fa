"""Where each data-quality suite lives, and which suite a snapshot is validated with: the
committed one (checked against the snapshot's columns) or a proposal to write."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import CleanParams, CollectParams, ProblemParams
from tasks.core.data.schema import kinds_for
from tasks.core.data.snapshots import Snapshot
from tasks.core.errors import StepError
from tasks.core.paths import PATHS
from tasks.core.quality.validation import read_suite_file, save_suite

log = logging.getLogger("churn.clean")  # the clean step reads and proposes suites
STEP = "clean"


def suite_path_for(clean: CleanParams, collect: CollectParams) -> str:
    """``clean.suite``, or ``expectations/<source name>.raw.json`` derived from the source.

    A file's name, ``simulator``, or for SQL ``sql-<table>-<hash of the query>``: two
    queries never share a suite.
    """
    if clean.suite:
        return clean.suite
    if collect.source == "simulator":  # each simulated outcome has its own columns
        target = collect.simulator.target
        stem = "simulator" if target == "churned_30d" else f"simulator-{target.replace('_', '-')}"
    elif collect.source == "sql":
        # one suite per query: the first table it reads, and a hash of the query's words
        words = " ".join(collect.sql.query.lower().split())
        table = re.search(r"\bfrom\s+([\w.\"]+)", words)
        name = re.sub(r"[^a-z0-9]+", "-", table.group(1) if table else "").strip("-")
        stem = f"sql-{name + '-' if name else ''}{hashlib.sha256(words.encode()).hexdigest()[:8]}"
    elif collect.path:
        stem = (
            re.sub(r"[^a-z0-9]+", "-", Path(collect.path).stem.lower()).strip("-") or collect.source
        )
    else:
        stem = collect.source
    return f"{PATHS.expectations_dir}/{stem}.raw.json"


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


@dataclass
class Suite:
    """The source's suite (None until proposed) and the column kinds it reads with."""

    rel: str
    file: Path
    proposed: bool
    kinds: dict[str, str]
    spec: dict[str, Any] | None = None
    # columns of this snapshot the committed suite does not know, typed by inference
    new_columns: dict[str, str] = field(default_factory=dict)


def suite_for(
    root: Path,
    clean: CleanParams,
    problem: ProblemParams,
    collect: CollectParams,
    sample: pd.DataFrame,
) -> Suite:
    """The suite to validate with: the committed one (checked against ``sample``'s columns),
    or the kinds to propose one with, inferred from ``sample``."""
    rel = suite_path_for(clean, collect)
    file = root / rel
    if not file.exists():
        return Suite(rel, file, True, kinds_for(sample, problem, clean))
    spec = read_suite_file(file)
    kinds = (spec.get("meta") or {}).get("column_kinds") or {}
    if not kinds:
        raise StepError(
            STEP,
            "suite",
            f"{rel} has no meta.column_kinds; delete it to propose a new one",
        )
    check_schema(sample, kinds, rel)
    unknown = [c for c in sample.columns if c not in kinds]
    new = {}
    if unknown:  # typed as a proposal would type them, never silently as text
        new = kinds_for(sample[unknown], problem, clean)
        log.warning(
            "new column(s) %s: %s does not know them, so no check judges them; typed by "
            "inference. Add them to the suite (or delete it: a new one is proposed from the "
            "next run)",
            ", ".join(f"'{c}' ({k})" for c, k in new.items()),
            rel,
        )
    return Suite(rel, file, False, {**kinds, **new}, spec, new)


def proposal_source(snapshot: Snapshot) -> dict[str, Any]:
    """Where a proposed suite came from (stored in its ``meta``)."""
    return {"snapshot_id": snapshot.snapshot_id, "source": snapshot.provenance.get("source")}


def save_proposal(suite: Suite, spec: dict[str, Any], snapshot: Snapshot) -> None:
    """Write a proposed suite where the source's suite belongs, and say so."""
    save_suite(suite.file, spec)
    log.warning(
        "no suite for this source yet: proposed %s from snapshot %s - review it and commit it",
        suite.rel,
        snapshot.snapshot_id,
    )
