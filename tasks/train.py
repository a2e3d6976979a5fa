"""Step 8, train & tune: random search for the chosen model, scored on the validation split.

The budget is a fixed number of seeded trials (``train.n_trials``), so a run reproduces.
XGBoost stops early on the validation split. Every trial is logged with the data hashes,
its configuration and its validation metrics (``reports/tuning_trials.csv``, a DVC plot) and
its runtime (in the log and ``reports/timings/train.csv``, outside DVC, since runtimes never
reproduce). The best trial's pipeline (fitted on the training split only, early-stopped
on validation) is stored with the decision threshold that minimises the expected cost on
validation.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.choose_model import model_inputs
from tasks.core.config import CostMatrix, Params
from tasks.core.io import atomic_path, read_json, write_json
from tasks.core.models import build_pipeline, fit_pipeline, metric_fn, oriented, sample_params, save_model
from tasks.core.paths import PATHS
from tasks.core.step import run_step

log = logging.getLogger("churn.train")
STEP = "train"


def expected_cost(y: np.ndarray, proba: np.ndarray, threshold: float, cost: CostMatrix) -> float:
    """Mean cost per row of acting on ``proba >= threshold``."""
    act = proba >= threshold
    total = (cost.true_positive * (act & (y == 1)).sum() + cost.false_positive * (act & (y == 0)).sum()
             + cost.false_negative * (~act & (y == 1)).sum() + cost.true_negative * (~act & (y == 0)).sum())
    return float(total / len(y))


def best_threshold(y: np.ndarray, proba: np.ndarray, cost: CostMatrix) -> tuple[float, float]:
    """The threshold (on a 0.01 grid) with the lowest expected cost, and that cost."""
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    costs = [expected_cost(y, proba, t, cost) for t in grid]
    k = int(np.argmin(costs))
    return float(grid[k]), float(costs[k])


def tune(kind: str, base: dict[str, Any], train: pd.DataFrame, valid: pd.DataFrame, params: Params,
         data_hashes: dict[str, str]) -> tuple[list[dict[str, Any]], Any]:
    """Run the trials; return the trial log and the best fitted pipeline."""
    problem, cfg = params.problem, params.train
    X_train, y_train, numeric, categorical = model_inputs(train, problem)
    X_valid, y_valid, _, _ = model_inputs(valid, problem)
    score = metric_fn(problem.primary_metric, problem.kpis.target_precision)
    rng = np.random.default_rng(cfg.random_state)
    configs = [dict(base)] + [sample_params(kind, rng) for _ in range(cfg.n_trials - 1)]
    trials, best, best_value = [], None, -np.inf
    for number, config in enumerate(configs):
        started = time.perf_counter()
        pipeline = build_pipeline(kind, numeric, categorical, config, cfg.random_state)
        fit_pipeline(pipeline, X_train, y_train, X_valid, y_valid, cfg.early_stopping_rounds)
        proba = pipeline.predict_proba(X_valid)[:, 1]
        value = score(y_valid, proba)
        model = pipeline.named_steps["model"]
        trial = {"trial": number, "model": kind, "config": json.dumps(config, sort_keys=True),
                 problem.primary_metric: round(value, 6), "pr_auc": round(metric_fn("pr_auc")(y_valid, proba), 6),
                 "best_iteration": getattr(model, "best_iteration", None), "seconds": round(time.perf_counter() - started, 3),
                 "train_sha256": data_hashes["train"][:16], "valid_sha256": data_hashes["valid"][:16]}
        trials.append(trial)
        log.info("trial %2d/%d %s=%.4f %.1fs %s", number + 1, len(configs), problem.primary_metric, value,
                 trial["seconds"], trial["config"])
        if oriented(problem.primary_metric, value) > best_value:
            best_value, best = oriented(problem.primary_metric, value), (config, pipeline, proba)
    return trials, best


def main(root: Path, params: Params) -> None:
    """Tune the chosen model, store the best one and its validation threshold."""
    problem = params.problem
    chosen = read_json(root / PATHS.selection_json)["chosen"]
    manifest = read_json(root / PATHS.split_manifest)
    train, valid = pd.read_parquet(root / PATHS.train), pd.read_parquet(root / PATHS.valid)
    hashes = {"train": manifest["train"]["sha256"], "valid": manifest["valid"]["sha256"]}
    trials, (config, pipeline, proba) = tune(chosen, params.choose.params.get(chosen, {}), train, valid, params, hashes)
    y_valid = valid[problem.target].to_numpy(int)
    threshold, cost = best_threshold(y_valid, proba, params.evaluate.cost)
    numeric, categorical = pipeline.named_steps["prep"].transformers[0][2], pipeline.named_steps["prep"].transformers[1][2]
    save_model(pipeline, root / PATHS.model_file)
    best = max(trials, key=lambda t: oriented(problem.primary_metric, t[problem.primary_metric]))
    meta = {"model": chosen, "config": config, "best_iteration": best["best_iteration"], "threshold": threshold,
            "numeric_features": list(numeric), "categorical_features": list(categorical),
            "valid": {problem.primary_metric: best[problem.primary_metric], "pr_auc": best["pr_auc"],
                      "expected_cost": round(cost, 6)}, "data": hashes}
    write_json(root / PATHS.model_meta, meta)
    log_frame = pd.DataFrame(trials)
    with atomic_path(root / PATHS.trials_csv) as tmp:  # runtimes vary from run to run: kept apart
        log_frame.drop(columns=["seconds"]).to_csv(tmp, index=False)
    with atomic_path(root / PATHS.timings_dir / "train.csv") as tmp:
        log_frame[["trial", "seconds"]].to_csv(tmp, index=False)
    write_json(root / PATHS.train_json, {"model": chosen, "n_trials": len(trials), "threshold": threshold,
                                         f"valid_{problem.primary_metric}": best[problem.primary_metric],
                                         "valid_expected_cost": round(cost, 6)})
    log.info("best of %d trials: %s=%.4f with %s; threshold %.2f (expected cost %.3f on validation)", len(trials),
             problem.primary_metric, best[problem.primary_metric], best["config"], threshold, cost)


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
