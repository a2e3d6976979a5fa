"""Whole-frame references for tests: what the clean step, which holds one part (or one bucket
of its id shuffle) at a time, keeps of a frame it could hold whole. The shuffle is held to
:func:`dedupe` (``tests/code/test_partitioned.py``), and tests that need cleaned rows, not
the step, take them from :func:`clean_frame`."""

from __future__ import annotations

from typing import Any

import pandas as pd


def dedupe(frame: pd.DataFrame, id_column: str | None) -> tuple[pd.DataFrame, int, int]:
    """Drop exact duplicate rows, then later rows of a repeated id.

    Without an id column nothing is dropped: two identical rows may be two customers with
    the same attributes (common in tables of categories), and nothing tells them apart.

    Returns
    -------
    (DataFrame, int, int)
        The frame, exact duplicates removed, and conflicting id repeats removed.
    """
    if id_column is None:
        return frame.reset_index(drop=True), 0, 0
    exact = frame.duplicated(keep="first")
    once = frame[~exact]
    repeat = once[id_column].duplicated(keep="first")
    return once[~repeat].reset_index(drop=True), int(exact.sum()), int(repeat.sum())


def clean_frame(std: Any, problem: Any) -> tuple[Any, dict[str, int]]:
    """The rows the clean step keeps of a standardised frame, whole (each id's first row
    once, labelled rows only, a binary target as 0/1), and the counts it reports; a quick
    stand-in where a test needs cleaned rows, not the step."""
    deduped, exact, repeats = dedupe(std, problem.id_column)
    labelled = deduped[deduped[problem.target].notna()].reset_index(drop=True)
    labelled[problem.target] = labelled[problem.target].astype("int8")
    counts = {
        "duplicate_rows_removed": exact,
        "repeated_ids_removed": repeats,
        "unlabelled_rows_removed": int(len(deduped) - len(labelled)),
    }
    return labelled, counts
