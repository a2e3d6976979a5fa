"""The champion comparison: a challenger against the champion on the same labelled rows.

The challenger's gain in the primary metric over the champion, as a paired bootstrap
interval on the same rows, and the slices where it loses more than a tolerance. Promotion
(:mod:`tasks.promote`) asks it; the metric and what counts as a judgeable slice come from
the problem's objective.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import Params
from tasks.core.ml.evaluation import paired_bootstrap_lift, slice_groups
from tasks.core.ml.models import model_matrix
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.ml.parts import predict_parts


def score_version(
    model: Any, card: dict[str, Any], rows: pd.DataFrame | Path, objective: Objective
) -> np.ndarray:
    """The objective's scores of a registered model on raw feature rows (its own input
    columns): a frame, or a split file scored part by part."""
    numeric, categorical = card["numeric_features"], card["categorical_features"]
    if isinstance(rows, Path):
        return predict_parts(model, rows, numeric, categorical, objective)
    return objective.scores(model, model_matrix(rows, numeric, categorical))


def compare(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, frame: pd.DataFrame, params: Params
) -> dict[str, Any]:
    """Challenger against champion on the same rows: paired bootstrap gain and slice regressions."""
    objective = objective_for(params.problem)
    cfg, metric = params.promote, objective.primary
    gain = paired_bootstrap_lift(
        y, challenger, champion, metric, cfg.bootstrap_samples, cfg.confidence, cfg.random_state
    )
    regressions = []
    for column in params.evaluate.slices:
        if column not in frame:
            continue
        for value, idx in slice_groups(frame[column].reset_index(drop=True)).items():
            ys = y[idx]
            if len(idx) < params.evaluate.slice_min_rows or not objective.judgeable(ys):
                continue
            loss = objective.worse_by(
                objective.score(metric.name, ys, champion[idx]),
                objective.score(metric.name, ys, challenger[idx]),
                metric.name,
            )
            if loss > cfg.slice_tolerance:
                regressions.append(
                    {"slice": f"{column}={value}", "rows": int(len(idx)), "loss": round(loss, 4)}
                )
    promote = gain["lower"] > cfg.promotion_margin and not regressions
    reasons = [
        f"{metric.name} gain over the champion {gain['lift']:+.4f}, {cfg.confidence:.0%} interval "
        f"[{gain['lower']:+.4f}, {gain['upper']:+.4f}], margin {cfg.promotion_margin}: "
        + ("clears it" if gain["lower"] > cfg.promotion_margin else "does not clear it")
    ]
    reasons += [
        f"slice {r['slice']} ({r['rows']} rows) loses {r['loss']} > tolerance {cfg.slice_tolerance}"
        for r in regressions
    ]
    return {
        "promote": promote,
        "metric": metric.name,
        "gain": gain,
        "slice_regressions": regressions,
        "rows": int(len(y)),
        "reasons": reasons,
    }
