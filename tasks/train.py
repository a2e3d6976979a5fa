"""Step 8, train & tune: random search for the chosen model, scored on the validation split.

The budget is a fixed number of seeded trials (``train.n_trials``), so a run reproduces.
XGBoost stops early on the validation split. Every trial is logged with the data hashes,
its configuration and its validation metrics (``reports/tuning_trials.csv``, a DVC plot) and
its runtime (in the log and ``reports/timings/train.csv``, outside DVC, since runtimes never
reproduce). The best trial's pipeline (fitted on the training split only, early-stopped
on validation) is stored with the decision threshold that minimises the expected cost on
validation. The search itself, and the ways it runs by data size and engine:
:mod:`tasks.core.ml.tuning`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

from tasks.core.config import (
    ChooseParams,
    CleanParams,
    ComputeParams,
    EvaluateParams,
    ProblemParams,
    TrainParams,
)
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import (
    atomic_path,
    read_json,
    write_json,
)
from tasks.core.ml.models import (
    save_model,
)
from tasks.core.ml.objective import TRIALS_Y
from tasks.core.ml.parts import target_column, training_objective
from tasks.core.ml.tuning import Tuning, tune
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import engine
from tasks.core.step import run_step

log = logging.getLogger("churn.train")
STEP = "train"


def search(
    root: Path,
    tuning: Tuning,
    base: dict[str, Any],
    compute: ComputeParams,
    chosen: str,
    hashes: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, Any], Any, np.ndarray]:
    """The trials of the chosen kind from its starting parameters ``base``: ``(trial log,
    best config, its pipeline, its validation scores)``."""
    with engine(compute, root, STEP) as eng:
        train, valid = root / PATHS.train, root / PATHS.valid
        trials, best = tune(chosen, base, train, valid, tuning, hashes, eng)
    return trials, *best


def write_trials(root: Path, trials: list[dict[str, Any]]) -> None:
    """The trial log (a DVC plot) and, apart from it, the trials' runtimes (never the same)."""
    log_frame = pd.DataFrame(trials)
    with atomic_path(root / PATHS.trials_csv) as tmp:
        log_frame.drop(columns=["seconds"]).to_csv(tmp, index=False)
    with atomic_path(root / PATHS.timings_dir / "train.csv") as tmp:
        log_frame[["trial", "seconds"]].to_csv(tmp, index=False)


def main(
    root: Path,
    cfg: TrainParams,
    problem: Annotated[
        ProblemParams,
        Keys("type", "target", "id_column", "time_column", "primary_metric"),
    ],
    choose: Annotated[ChooseParams, Keys("params")],
    clean: Annotated[CleanParams, Keys("max_categories")],
    evaluate: Annotated[EvaluateParams, Keys("cost", "cost_matrix")],
    compute: ComputeParams,
) -> None:
    """Tune the chosen model, store the best one and its validation threshold."""
    objective = training_objective(root / PATHS.train, problem)
    primary = objective.primary.name
    chosen = read_json(root / PATHS.selection_json)["chosen"]
    manifest = read_json(root / PATHS.split_manifest)
    hashes = {"train": manifest["train"]["sha256"], "valid": manifest["valid"]["sha256"]}
    tuning = Tuning(problem, cfg, clean.max_categories, objective.classes)
    base = choose.params.get(chosen, {})
    trials, config, pipeline, scores = search(root, tuning, base, compute, chosen, hashes)
    y_valid = target_column(root / PATHS.valid, objective)
    try:
        threshold, cost = objective.decision_rule(y_valid, scores, evaluate)
    except ValueError as exc:  # a cost matrix that does not fit the classes
        raise StepError(STEP, "decision rule", str(exc)) from None
    save_model(pipeline, root / PATHS.model_file)
    best = max(trials, key=lambda t: objective.primary.oriented(t[TRIALS_Y]))
    prep = pipeline.named_steps["prep"]
    meta = {
        "model": chosen,
        "config": config,
        "best_iteration": best["best_iteration"],
        "threshold": threshold,
        **({} if objective.classes is None else {"classes": list(objective.classes)}),
        "numeric_features": list(prep.transformers[0][2]),
        "categorical_features": list(prep.transformers[1][2]),
        "valid": {
            primary: best[TRIALS_Y],
            **{name: best[name] for name in objective.SUMMARY if name != primary},
            **({} if cost is None else {"expected_cost": round(cost, 6)}),
        },
        "data": hashes,
    }
    write_json(root / PATHS.model_meta, meta)
    write_trials(root, trials)
    summary = {"model": chosen, "n_trials": len(trials), "threshold": threshold}
    summary[f"valid_{primary}"] = best[TRIALS_Y]
    if cost is not None:
        summary["valid_expected_cost"] = round(cost, 6)
    write_json(root / PATHS.train_json, summary)
    described = objective.describe_rule(threshold)
    rule = (
        ""
        if described is None or cost is None
        else f"; {described[0].lower()} {described[1]}, expected cost {cost:.3f} on validation"
    )
    log.info(
        "best of %d trials: %s=%.4f with %s%s",
        len(trials),
        primary,
        best[TRIALS_Y],
        best["config"],
        rule,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
