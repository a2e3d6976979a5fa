"""Step 9, evaluate: the sealed test set, read once, and the gate that blesses a model.

The test split is read only here (no earlier stage depends on it) and only after its hash
matches the one the split stage recorded. Reported: the KPI metrics (ROC-AUC, PR-AUC,
recall at the target precision, Brier score and calibration, expected cost at the
validation threshold), the baselines side by side, metrics per slice, fairness gaps, the
top features, and for simulator data the oracle's ROC-AUC on the same rows. The gate
blesses the model only if it beats the best baseline with confidence (the lower bound of
a paired bootstrap interval of the lift clears the margin), meets the KPI floors, has no
slice below its floor and keeps fairness gaps within limits.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from tasks.core.config import ComputeParams, EvaluateParams, ProblemParams
from tasks.core.data.snapshots import current_snapshot
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import (
    column_names,
    file_sha256,
    iter_parts,
    read_json,
    sample_positions,
    take_rows,
    write_json,
    write_text,
)
from tasks.core.ml.evaluation import paired_bootstrap_lift
from tasks.core.ml.gate import fairness, gate, skipped_columns, slice_metrics, unjudged_slices
from tasks.core.ml.models import UntrustedModel, load_model, model_matrix
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.ml.parts import predict_parts
from tasks.core.ml.report import draw, metrics_summary, model_card
from tasks.core.paths import PATHS
from tasks.core.runtime.compute import engine
from tasks.core.step import code_version, run_step

log = logging.getLogger("churn.evaluate")
STEP = "evaluate"


def read_sealed_test(root: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the test split (or some of its columns) after checking it has the hash the split
    stage recorded."""
    recorded = read_json(root / PATHS.split_manifest)["test"]["sha256"]
    actual = file_sha256(root / PATHS.test)
    if actual != recorded:
        raise StepError(
            STEP,
            "sealed test",
            f"{PATHS.test} has sha256 {actual[:12]}..., the split stage recorded "
            f"{recorded[:12]}...: the test set changed after the split; rerun `dvc repro split`",
        )
    return pd.read_parquet(root / PATHS.test, columns=columns)


def columns_read(columns: list[str], problem: ProblemParams, cfg: EvaluateParams) -> list[str]:
    """The test columns the checks read beside the model's scores: target, id (the oracle),
    the rule baseline's, slices and sensitive columns (those present)."""
    rule = problem.baseline.rule
    wanted = [problem.target, problem.id_column, rule.column if rule else None]
    return [c for c in dict.fromkeys([*wanted, *cfg.slices, *cfg.sensitive]) if c in columns]


def headline(
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float | None,
    objective: Objective,
    cfg: EvaluateParams,
) -> dict[str, float]:
    """Every reported metric of the problem type on one set of predictions, and the expected
    cost of the decisions at ``threshold`` (a problem type with a decision rule)."""
    cost = objective.expected_cost(y, proba, threshold, cfg)
    return {**objective.headline(y, proba), **({} if cost is None else {"expected_cost": cost})}


def oracle_score(root: Path, scored: Scored, problem: ProblemParams) -> float | None:
    """The ranking metric of the simulator's truth (its probabilities, for binary) on the test
    rows (None for other sources)."""
    test, y, objective = scored.test, scored.y, scored.objective
    snapshot = current_snapshot(root / PATHS.raw_dir)
    if snapshot.oracle_path is None or problem.id_column is None:
        return None
    ids = set(test[problem.id_column])  # the oracle covers every row: read the test rows' only
    oracle = pd.concat(
        part[part[problem.id_column].isin(ids)] for part in iter_parts(snapshot.oracle_path)
    ).drop_duplicates(problem.id_column)
    merged = test[[problem.id_column]].merge(oracle, on=problem.id_column, how="left")
    truth = objective.oracle(merged)
    return None if truth is None else objective.score(objective.FLOOR_METRIC, y, truth)


@dataclass(frozen=True)
class Scored:
    """The sealed test rows as the checks see them."""

    test: pd.DataFrame  # the columns the checks read
    train: pd.DataFrame  # the training split's target and rule column (the baselines fit)
    y: np.ndarray
    scores: np.ndarray
    decision: np.ndarray
    objective: Objective  # with the classes recorded with the model (multiclass)
    threshold: Any  # the model's decision rule
    positions: np.ndarray  # of these rows in the test split (a label unseen in training: left out)
    unseen: dict[str, int]  # the labels left out, with their rows


def score_test(
    root: Path, problem: ProblemParams, cfg: EvaluateParams, pipeline: Any, meta: dict[str, Any]
) -> Scored:
    """Score the sealed test split part by part; read only the columns the checks need. A
    test row whose label is no class of the model (a class the training split lacks) is
    left out of the checks, and named."""
    objective = objective_for(problem, meta.get("classes"))
    path = root / PATHS.test
    test = read_sealed_test(root, columns_read(column_names(path), problem, cfg))
    scores = predict_parts(
        pipeline, path, meta["numeric_features"], meta["categorical_features"], objective
    )
    y = objective.labels(test[problem.target])
    positions, unseen = np.arange(len(y)), objective.unseen(test[problem.target])
    if unseen:
        log.warning("test rows of classes the training split lacks, left out: %s", unseen)
        positions = np.flatnonzero(y >= 0)
        test, y, scores = (
            test.iloc[positions].reset_index(drop=True),
            y[positions],
            scores[positions],
        )
    log.info("scored the %d test rows part by part; now the baselines and the lift", len(y))
    rule, train_path = problem.baseline.rule, root / PATHS.train
    wanted = (problem.target, rule.column if rule else None)
    train = pd.read_parquet(
        train_path, columns=[c for c in wanted if c in column_names(train_path)]
    )
    decision = objective.decide(scores, meta["threshold"])
    return Scored(test, train, y, scores, decision, objective, meta["threshold"], positions, unseen)


def baselines_and_lift(
    scored: Scored, problem: ProblemParams, cfg: EvaluateParams
) -> tuple[dict[str, dict[str, float]], dict[str, Any], dict[str, Any]]:
    """Each baseline's summary metrics, the lift over the best of them (paired bootstrap), and
    each baseline's per-class figures (multiclass)."""
    objective = scored.objective
    baselines = objective.baseline_scores(scored.test, scored.train)
    base_metrics = {
        n: {m: objective.score(m, scored.y, s) for m in objective.SUMMARY}
        for n, s in baselines.items()
    }
    per_class = {
        n: objective.per_class(scored.y, objective.decide(s, scored.threshold))
        for n, s in baselines.items()
    }
    metric = objective.lift_metric
    best = max(base_metrics, key=lambda n: metric.oriented(base_metrics[n][metric.name]))
    lift = {
        "baseline": best,
        "metric": metric.name,
        **paired_bootstrap_lift(
            scored.y,
            scored.scores,
            baselines[best],
            metric,
            cfg.bootstrap_samples,
            cfg.confidence,
            cfg.random_state,
        ),
    }
    log.info(
        "lift over %s: %+.4f %s (%d bootstrap samples); now the slices",
        best,
        lift["lift"],
        metric.name,
        cfg.bootstrap_samples,
    )
    return base_metrics, lift, per_class


def slices_and_fairness(
    root: Path, scored: Scored, problem: ProblemParams, cfg: EvaluateParams, compute: ComputeParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """The slices, the fairness of each sensitive column, and what could not be judged."""
    test = scored.test
    with engine(compute, root, STEP) as eng:
        slices = slice_metrics(test, scored.y, scored.scores, cfg, problem, eng)
    fair, unfair = fairness(test, scored.y, scored.decision, cfg, scored.objective)
    skipped = skipped_columns(test, cfg) + unjudged_slices(slices, cfg, scored.objective) + unfair
    for s in skipped:
        log.warning("%s: '%s' skipped: %s", s["key"], s["column"], s["reason"])
    if not any(s["checked"] for s in slices) and not fair:
        log.warning("no slice or fairness check ran: set evaluate.slices and evaluate.sensitive")
    return slices, fair, skipped


def top_features(
    root: Path,
    scored: Scored,
    objective: Objective,
    cfg: EvaluateParams,
    pipeline: Any,
    meta: dict[str, Any],
) -> list[dict[str, Any]]:
    """Permutation importance on a seeded sample of the test rows (drop in the objective's
    importance metric)."""
    rows = sample_positions(
        len(scored.y), min(len(scored.y), cfg.importance_rows), cfg.random_state
    )
    log.info("slices and fairness checked; now permutation importance on %d rows", len(rows))
    X = model_matrix(  # the rows X.sample draws
        take_rows(root / PATHS.test, scored.positions[rows]),
        meta["numeric_features"],
        meta["categorical_features"],
    )
    imp = permutation_importance(
        pipeline,
        X,
        scored.y[rows],
        scoring=objective.IMPORTANCE_SCORER,
        n_repeats=3,
        random_state=cfg.random_state,
        n_jobs=1,
    )
    order = np.argsort(imp.importances_mean)[::-1][: cfg.top_features]
    return [
        {"feature": str(X.columns[i]), "importance": float(imp.importances_mean[i])} for i in order
    ]


def load_trained(root: Path) -> tuple[Any, dict[str, Any]]:
    """The trained pipeline (trusted types only) and its meta."""
    try:
        return load_model(root / PATHS.model_file), read_json(root / PATHS.model_meta)
    except UntrustedModel as exc:
        raise StepError(STEP, "model file", str(exc)) from None


def main(
    root: Path,
    cfg: EvaluateParams,
    problem: Annotated[
        ProblemParams,
        Keys("type", "target", "id_column", "name", "primary_metric", "kpis", "baseline"),
    ],
    compute: ComputeParams,
) -> None:
    """Evaluate the trained model on the sealed test set and decide the blessing."""
    pipeline, meta = load_trained(root)
    scored = score_test(root, problem, cfg, pipeline, meta)
    objective = scored.objective
    metrics = headline(scored.y, scored.scores, meta.get("threshold"), objective, cfg)
    metrics[f"oracle_{objective.FLOOR_METRIC}"] = oracle_score(root, scored, problem)
    base_metrics, lift, base_per_class = baselines_and_lift(scored, problem, cfg)
    per_class = objective.per_class(scored.y, scored.decision)
    slices, fair, skipped = slices_and_fairness(root, scored, problem, cfg, compute)
    verdict = gate(metrics, lift, slices, fair, problem, cfg, skipped)
    env_lock = root / PATHS.env_lock
    env_hash = file_sha256(env_lock) if env_lock.exists() else "unknown"
    result = {
        "blessed": verdict.blessed,
        "gate_reasons": list(verdict.reasons),
        "model": meta["model"],
        "threshold": meta["threshold"],
        "test": metrics,
        "baselines": base_metrics,
        "lift": lift,
        "slices": slices,
        "fairness": fair,
        "skipped_columns": skipped,
        "top_features": top_features(root, scored, objective, cfg, pipeline, meta),
        **({} if per_class is None else {"per_class": {"model": per_class, **base_per_class}}),
        **({"unseen_classes": scored.unseen} if scored.unseen else {}),
        "environment_sha256": env_hash,
        "data": {
            "snapshot_id": current_snapshot(root / PATHS.raw_dir).snapshot_id,
            "test_sha256": file_sha256(root / PATHS.test),
            "test_rows": int(len(scored.test)),
        },
    }
    write_json(root / PATHS.evaluation_json, result)
    write_json(root / PATHS.metrics_json, metrics_summary(result))
    draw(objective, scored.y, scored.scores, scored.decision, root)
    card = model_card(problem, meta, result, env_hash, code_version(root))
    write_text(root / PATHS.model_card, card)
    summary = ", ".join(f"{objective.metric(m).label} {metrics[m]:.4f}" for m in objective.SUMMARY)
    oracle = metrics[f"oracle_{objective.FLOOR_METRIC}"]
    log.info(
        "test %s (oracle %s); %s",
        summary,
        f"{oracle:.4f}" if oracle else "n/a",
        "BLESSED" if verdict.blessed else "NOT blessed: " + "; ".join(verdict.failed),
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
