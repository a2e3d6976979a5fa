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
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import ComputeParams, Params
from tasks.core.io import atomic_path, read_json, write_json
from tasks.core.ml.costs import best_threshold
from tasks.core.ml.models import (
    build_pipeline,
    fit_pipeline,
    metric_fn,
    model_inputs,
    oriented,
    sample_params,
    save_model,
)
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import Engine, engine
from tasks.core.step import run_step

log = logging.getLogger("churn.train")
STEP = "train"


def trial_score(
    job: tuple[int, dict[str, Any]],
    kind: str,
    data: dict[str, Any],
    params: Params,
    keep: bool = False,
) -> dict[str, Any]:
    """Fit one trial's configuration and score it on validation (a task of its own on Dask).

    The fitted pipeline is returned only with ``keep`` (in-process); from a worker only
    the validation probabilities travel back.
    """
    number, config = job
    started = time.perf_counter()
    pipeline = build_pipeline(
        kind, data["numeric"], data["categorical"], config, params.train.random_state
    )
    fit_pipeline(
        pipeline,
        data["X_train"],
        data["y_train"],
        data["X_valid"],
        data["y_valid"],
        params.train.early_stopping_rounds,
    )
    proba = pipeline.predict_proba(data["X_valid"])[:, 1]
    return {
        "number": number,
        "config": config,
        "proba": proba,
        "seconds": time.perf_counter() - started,
        "best_iteration": getattr(pipeline.named_steps["model"], "best_iteration", None),
        "pipeline": pipeline if keep else None,
    }


def dask_xgboost_trials(
    eng: Engine, configs: list[dict[str, Any]], data: dict[str, Any], params: Params
) -> Iterator[dict[str, Any]]:
    """XGBoost trials trained with ``xgboost.dask`` over the workers' training partitions.

    The preprocessing has no hyperparameters: it is fitted once (on the training split) and
    the transformed splits are written to the shared storage as partitions. Each trial
    trains across all workers, stops early on validation, and becomes a plain
    ``XGBClassifier`` in the usual pipeline, so it is stored and served like any other.
    """
    from xgboost import XGBClassifier
    from xgboost import dask as dxgb

    prep = build_pipeline("xgboost", data["numeric"], data["categorical"], {}, 0).named_steps[
        "prep"
    ]
    prep.fit(data["X_train"], data["y_train"])
    matrices = {}
    for split in ("train", "valid"):
        values = pd.DataFrame(prep.transform(data[f"X_{split}"])).rename(columns=str)
        staged = eng.partitions(
            values.assign(label=data[f"y_{split}"]), f"{split}-matrix"
        ).to_dask_array(lengths=True)
        matrices[split] = (
            staged[:, :-1],
            staged[:, -1],
        )  # one array, so rows and labels share chunks
    for number, config in enumerate(configs):
        started = time.perf_counter()
        model = dxgb.DaskXGBClassifier(
            tree_method="hist",
            random_state=params.train.random_state,
            eval_metric="logloss",
            early_stopping_rounds=params.train.early_stopping_rounds or None,
            **config,
        )
        model.client = eng.client
        model.fit(*matrices["train"], eval_set=[matrices["valid"]], verbose=False)
        local = XGBClassifier()
        with tempfile.TemporaryDirectory() as folder:  # the same booster, as a local estimator
            model.save_model(Path(folder) / "model.json")
            local.load_model(Path(folder) / "model.json")
        pipeline = build_pipeline(
            "xgboost", data["numeric"], data["categorical"], config, params.train.random_state
        )
        pipeline.set_params(prep=prep, model=local)
        proba = pipeline.predict_proba(data["X_valid"])[:, 1]
        yield {
            "number": number,
            "config": config,
            "proba": proba,
            "seconds": time.perf_counter() - started,
            "best_iteration": getattr(local, "best_iteration", None),
            "pipeline": pipeline,
        }


def tune(
    kind: str,
    base: dict[str, Any],
    train: pd.DataFrame,
    valid: pd.DataFrame,
    params: Params,
    data_hashes: dict[str, str],
    eng: Engine | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Run the trials: the trial log, and the best ``(config, fitted pipeline, validation proba)``.

    Trials are independent: on the Dask engine they run in parallel (XGBoost instead
    trains each one across the workers with ``xgboost.dask``). From parallel trials only
    validation probabilities travel back; the best configuration is then fitted once more
    here, which gives the same model.
    """
    problem, cfg = params.problem, params.train
    eng = eng or Engine(ComputeParams())
    X_train, y_train, numeric, categorical = model_inputs(train, problem)
    X_valid, y_valid, _, _ = model_inputs(valid, problem)
    data = {
        "X_train": X_train,
        "y_train": y_train,
        "X_valid": X_valid,
        "y_valid": y_valid,
        "numeric": numeric,
        "categorical": categorical,
    }
    score = metric_fn(problem.primary_metric, problem.kpis.target_precision)
    rng = np.random.default_rng(cfg.random_state)
    configs = [dict(base)] + [sample_params(kind, rng) for _ in range(cfg.n_trials - 1)]
    jobs = list(enumerate(configs))
    if eng.is_dask and kind == "xgboost":
        done: Iterable[dict[str, Any]] = dask_xgboost_trials(eng, configs, data, params)
    elif eng.is_dask:
        done = eng.map(trial_score, jobs, kind=kind, data=data, params=params)
    else:  # one at a time, keeping only the best fitted pipeline in memory
        done = (trial_score(job, kind, data, params, keep=True) for job in jobs)
    trials, best, best_value = [], None, -np.inf
    for result in done:
        value = score(y_valid, result["proba"])
        trial = {
            "trial": result["number"],
            "model": kind,
            "config": json.dumps(result["config"], sort_keys=True),
            problem.primary_metric: round(value, 6),
            "pr_auc": round(metric_fn("pr_auc")(y_valid, result["proba"]), 6),
            "best_iteration": result["best_iteration"],
            "seconds": round(result["seconds"], 3),
            "train_sha256": data_hashes["train"][:16],
            "valid_sha256": data_hashes["valid"][:16],
        }
        trials.append(trial)
        log.info(
            "trial %2d/%d %s=%.4f %.1fs %s",
            result["number"] + 1,
            len(configs),
            problem.primary_metric,
            value,
            trial["seconds"],
            trial["config"],
        )
        if oriented(problem.primary_metric, value) > best_value:
            if best is not None:
                best["pipeline"] = None
            best_value, best = oriented(problem.primary_metric, value), result
        else:
            result["pipeline"] = None
    pipeline = best["pipeline"]
    if pipeline is None:  # trained on a worker: fit the best configuration again here
        pipeline = build_pipeline(kind, numeric, categorical, best["config"], cfg.random_state)
        fit_pipeline(pipeline, X_train, y_train, X_valid, y_valid, cfg.early_stopping_rounds)
    return trials, (best["config"], pipeline, best["proba"])


def main(root: Path, params: Params) -> None:
    """Tune the chosen model, store the best one and its validation threshold."""
    problem = params.problem
    chosen = read_json(root / PATHS.selection_json)["chosen"]
    manifest = read_json(root / PATHS.split_manifest)
    train, valid = pd.read_parquet(root / PATHS.train), pd.read_parquet(root / PATHS.valid)
    hashes = {"train": manifest["train"]["sha256"], "valid": manifest["valid"]["sha256"]}
    with engine(params.compute, root, STEP) as eng:
        trials, (config, pipeline, proba) = tune(
            chosen, params.choose.params.get(chosen, {}), train, valid, params, hashes, eng
        )
    y_valid = valid[problem.target].to_numpy(int)
    threshold, cost = best_threshold(y_valid, proba, params.evaluate.cost)
    numeric, categorical = (
        pipeline.named_steps["prep"].transformers[0][2],
        pipeline.named_steps["prep"].transformers[1][2],
    )
    save_model(pipeline, root / PATHS.model_file)
    best = max(trials, key=lambda t: oriented(problem.primary_metric, t[problem.primary_metric]))
    meta = {
        "model": chosen,
        "config": config,
        "best_iteration": best["best_iteration"],
        "threshold": threshold,
        "numeric_features": list(numeric),
        "categorical_features": list(categorical),
        "valid": {
            problem.primary_metric: best[problem.primary_metric],
            "pr_auc": best["pr_auc"],
            "expected_cost": round(cost, 6),
        },
        "data": hashes,
    }
    write_json(root / PATHS.model_meta, meta)
    log_frame = pd.DataFrame(trials)
    with atomic_path(root / PATHS.trials_csv) as tmp:  # runtimes vary from run to run: kept apart
        log_frame.drop(columns=["seconds"]).to_csv(tmp, index=False)
    with atomic_path(root / PATHS.timings_dir / "train.csv") as tmp:
        log_frame[["trial", "seconds"]].to_csv(tmp, index=False)
    write_json(
        root / PATHS.train_json,
        {
            "model": chosen,
            "n_trials": len(trials),
            "threshold": threshold,
            f"valid_{problem.primary_metric}": best[problem.primary_metric],
            "valid_expected_cost": round(cost, 6),
        },
    )
    log.info(
        "best of %d trials: %s=%.4f with %s; threshold %.2f (expected cost %.3f on validation)",
        len(trials),
        problem.primary_metric,
        best[problem.primary_metric],
        best["config"],
        threshold,
        cost,
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
