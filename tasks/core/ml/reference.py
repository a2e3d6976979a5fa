"""The monitoring reference sample: the rows live traffic is compared with, scored by the model.

Registered with each version (``reference.parquet``); drift checks compare a window with its
inputs, and the performance estimate before labels calibrates on its scores
(:mod:`tasks.monitor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.io import sample_positions
from tasks.core.ml.models import model_inputs
from tasks.core.ml.objective import Objective, objective_for

MIN_REFERENCE_ROWS = 500


def reference_sample(
    train: pd.DataFrame, holdout: dict[str, pd.DataFrame], model: Any, params: Params
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows monitoring compares live traffic with, scored by the model, and their record.

    ``promote.reference_split: holdout`` (the default) takes them from the validation and
    test splits: with a time split they are the latest period the model was validated and
    tested on, so after a retraining on drifted data the reference is the drifted period the
    new champion was chosen on, not the mostly older training rows (whose drift would go on
    alerting). The model's scores on rows it did not train on are also what live scores look
    like, which the performance estimate calibrates on; on training rows they are more
    confident. ``valid`` takes the validation split alone, ``train`` the training rows.
    """
    frames = {"train": train, **holdout}
    return reference_from(
        {name: len(f) for name, f in frames.items()},
        lambda name, rows: frames[name].iloc[rows],
        model,
        params,
    )


def reference_from(
    sizes: dict[str, int],
    rows_of: Callable[[str, np.ndarray], pd.DataFrame],
    model: Any,
    params: Params,
    objective: Objective | None = None,
    threshold: Any = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`reference_sample` from splits that need not be in memory.

    ``sizes``: rows per split; ``rows_of(split, positions)``: those rows of a split. The
    sample is the one ``DataFrame.sample`` draws from the splits put together. ``objective``:
    the model's (multiclass: with its classes), by default the problem's; ``threshold``: its
    decision rule (multiclass: the decided class is kept).
    """
    cfg = params.promote
    split = cfg.reference_split
    names = {"holdout": ["valid", "test"], "valid": ["valid"]}.get(split, ["train"])
    if sum(sizes[n] for n in names) < MIN_REFERENCE_ROWS:
        split, names = "train", ["train"]
    total = sum(sizes[n] for n in names)
    drawn = sample_positions(total, min(total, cfg.reference_rows), cfg.random_state)
    pieces, offset = [], 0
    for name in names:  # each split's drawn rows, then put back in the order drawn
        mine = (drawn >= offset) & (drawn < offset + sizes[name])
        pieces.append(rows_of(name, drawn[mine] - offset).set_axis(np.flatnonzero(mine)))
        offset += sizes[name]
    sample = pd.concat(pieces).sort_index()
    objective = objective or objective_for(params.problem)
    X, _, _, _ = model_inputs(sample, params.problem, objective)
    scores = objective.scores(model, X)
    columns = objective.reference_columns(scores, threshold)
    reference = sample.assign(**columns).reset_index(drop=True)
    record: dict[str, Any] = {"split": split, "rows": int(len(reference))}
    time_column = params.problem.time_column
    if time_column and time_column in sample:
        times = pd.to_datetime(sample[time_column], errors="coerce")
        record["from"], record["to"] = (
            str(t.date()) if pd.notna(t) else None for t in (times.min(), times.max())
        )
    return reference, record
