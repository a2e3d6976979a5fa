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
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from tasks.core.config import ComputeParams, EvaluateParams, Params, ProblemParams
from tasks.core.data.snapshots import current_snapshot
from tasks.core.errors import StepError
from tasks.core.io import (
    atomic_path,
    column_names,
    file_sha256,
    iter_parts,
    read_json,
    sample_positions,
    take_rows,
    write_json,
    write_text,
)
from tasks.core.ml.evaluation import column_slices, paired_bootstrap_lift, slice_groups
from tasks.core.ml.models import UntrustedModel, load_model, model_matrix
from tasks.core.ml.objective import objective_for
from tasks.core.ml.parts import predict_parts
from tasks.core.paths import PATHS
from tasks.core.quality.pages import md
from tasks.core.runtime.compute import Engine, engine
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
    y: np.ndarray, proba: np.ndarray, threshold: float, params: Params
) -> dict[str, float]:
    """Every reported metric of the problem type on one set of predictions, and the expected
    cost of the decisions at ``threshold``."""
    objective = objective_for(params.problem)
    return {
        **objective.headline(y, proba),
        "expected_cost": objective.expected_cost(y, proba, threshold, params.evaluate.cost),
    }


def slice_metrics(
    test: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    cfg: EvaluateParams,
    problem: ProblemParams,
    eng: Engine | None = None,
) -> list[dict[str, Any]]:
    """The objective's summary metrics per value of each slice column (one task per column on
    the Dask engine)."""
    columns = [test[c].reset_index(drop=True) for c in cfg.slices if c in test]
    done = (eng or Engine(ComputeParams())).map(
        column_slices,
        columns,
        y=y,
        proba=proba,
        min_rows=cfg.slice_min_rows,
        objective=objective_for(problem),
    )
    return [row for rows in done for row in rows]


def skipped_columns(test: pd.DataFrame, cfg: EvaluateParams) -> list[dict[str, str]]:
    """``evaluate.slices`` and ``sensitive`` columns this data does not have, and why."""
    out = []
    for key, columns in (("evaluate.slices", cfg.slices), ("evaluate.sensitive", cfg.sensitive)):
        for column in columns:
            if column not in test:
                out.append(
                    {
                        "key": key,
                        "column": column,
                        "reason": "not a column of this data (set your own in params.yaml)",
                    }
                )
    return out


def unjudged_slices(slices: list[dict[str, Any]], cfg: EvaluateParams) -> list[dict[str, str]]:
    """Slice columns with groups the gate could not judge (too few rows, or one class)."""
    out = []
    for column in dict.fromkeys(s["column"] for s in slices):
        groups = [s for s in slices if s["column"] == column]
        left = [s for s in groups if not s["checked"]]
        if not left:
            continue
        largest = max(s["rows"] for s in left)
        out.append(
            {
                "key": "evaluate.slices",
                "column": column,
                "reason": f"{len(left)} of {len(groups)} groups not judged: under "
                f"evaluate.slice_min_rows={cfg.slice_min_rows} or of one class (largest of "
                f"them {largest} rows)"
                + ("; no group of this column was judged" if len(left) == len(groups) else ""),
            }
        )
    return out


def fairness(
    test: pd.DataFrame, y: np.ndarray, decision: np.ndarray, cfg: EvaluateParams
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """TPR and FPR gaps and the selection-rate ratio across groups of each sensitive column.

    Returns the judged columns, and those that could not be judged with the reason (fewer
    than two groups of ``evaluate.fairness.min_group_rows``). A numeric column with many
    values is judged in ranges (:func:`tasks.core.ml.evaluation.slice_groups`).
    """
    out, skipped = [], []
    for column in cfg.sensitive:
        if column not in test:
            continue
        groups, small = {}, {}
        for value, idx in slice_groups(test[column].reset_index(drop=True)).items():
            if len(idx) < cfg.fairness.min_group_rows:
                small[str(value)] = int(len(idx))
                continue
            ys, ds = y[idx], decision[idx]
            groups[str(value)] = {
                "rows": int(len(idx)),
                "tpr": float(ds[ys == 1].mean()) if (ys == 1).any() else 0.0,
                "fpr": float(ds[ys == 0].mean()) if (ys == 0).any() else 0.0,
                "selection_rate": float(ds.mean()),
            }
        if len(groups) < 2:
            sizes = ", ".join(f"{v}: {n}" for v, n in list(small.items())[:6])
            skipped.append(
                {
                    "key": "evaluate.sensitive",
                    "column": column,
                    "reason": f"{len(groups)} group(s) of at least "
                    f"evaluate.fairness.min_group_rows={cfg.fairness.min_group_rows} rows, two "
                    f"needed (smaller groups: {sizes or 'none'})",
                }
            )
            continue
        g = groups.values()
        rates = [v["selection_rate"] for v in g]
        out.append(
            {
                "column": column,
                "groups": groups,
                "small_groups": small,
                "tpr_gap": max(v["tpr"] for v in g) - min(v["tpr"] for v in g),
                "fpr_gap": max(v["fpr"] for v in g) - min(v["fpr"] for v in g),
                "selection_rate_ratio": min(rates) / max(rates) if max(rates) > 0 else 1.0,
            }
        )
    return out, skipped


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: blessed or not, with one reason per check (``PASS``/``FAIL``)."""

    blessed: bool
    reasons: tuple[str, ...]

    @property
    def failed(self) -> list[str]:
        """The checks that failed."""
        return [r for r in self.reasons if r.startswith("FAIL")]


def gate(
    metrics: dict[str, float],
    lift: dict[str, Any],
    slices: list[dict[str, Any]],
    fair: list[dict[str, Any]],
    params: Params,
    skipped: list[dict[str, str]] | None = None,
) -> GateDecision:
    """Bless or refuse, with one reason per check: passed, failed or skipped.

    A skipped check says why (``SKIP``); a sensitive column whose fairness could not be
    judged fails the gate while ``evaluate.fairness.block_when_skipped`` is on.
    """
    objective, cfg = objective_for(params.problem), params.evaluate
    block_skipped = cfg.fairness.block_when_skipped
    reasons, ok = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        reasons.append(("PASS " if passed else "FAIL ") + text)

    for s in skipped or []:
        if s["key"] == "evaluate.sensitive" and block_skipped:
            check(
                False,
                f"fairness on '{s['column']}' could not be judged: {s['reason']} (a fairness "
                "check that did not run is not a pass; evaluate.fairness.block_when_skipped)",
            )
        else:
            reasons.append(f"SKIP {s['key']} '{s['column']}': {s['reason']}")

    check(
        lift["lower"] > cfg.min_lift_over_baseline,
        f"beats {lift['baseline']} on {lift['metric']}: lift {lift['lift']:.4f}, "
        f"{cfg.confidence:.0%} lower bound "
        f"{lift['lower']:.4f} vs margin {cfg.min_lift_over_baseline}",
    )
    for floor in objective.floors():
        found = metrics[floor.metric.name]
        bound = "floor" if floor.metric.higher_is_better else "ceiling"
        check(floor.met(found), f"{floor.label} {found:.4f} vs {bound} {floor.value}")
    judged = objective.metric(objective.FLOOR_METRIC)
    for s in slices:
        if s["checked"]:
            check(
                s[judged.name] >= cfg.slice_roc_auc_floor,
                f"slice {s['column']}={s['value']} ({s['rows']} rows) {judged.label} "
                f"{s[judged.name]:.4f} vs floor {cfg.slice_roc_auc_floor}",
            )
    for f in fair:
        lim = cfg.fairness
        check(
            f["tpr_gap"] <= lim.max_tpr_gap,
            f"{f['column']}: TPR gap {f['tpr_gap']:.4f} vs limit {lim.max_tpr_gap}",
        )
        check(
            f["fpr_gap"] <= lim.max_fpr_gap,
            f"{f['column']}: FPR gap {f['fpr_gap']:.4f} vs limit {lim.max_fpr_gap}",
        )
        check(
            f["selection_rate_ratio"] >= lim.min_selection_rate_ratio,
            f"{f['column']}: selection-rate ratio {f['selection_rate_ratio']:.4f} vs minimum "
            f"{lim.min_selection_rate_ratio}",
        )
    return GateDecision(ok, tuple(reasons))


def oracle_auc(
    root: Path, test: pd.DataFrame, problem: ProblemParams, y: np.ndarray
) -> float | None:
    """ROC-AUC of the simulator's true probabilities on the test rows (None for other sources)."""
    snapshot = current_snapshot(root / PATHS.raw_dir)
    if snapshot.oracle_path is None or problem.id_column is None:
        return None
    ids = set(test[problem.id_column])  # the oracle covers every row: read the test rows' only
    oracle = pd.concat(
        part[part[problem.id_column].isin(ids)] for part in iter_parts(snapshot.oracle_path)
    ).drop_duplicates(problem.id_column)
    merged = test[[problem.id_column]].merge(oracle, on=problem.id_column, how="left")
    if merged["oracle_proba"].isna().any():
        return None
    return objective_for(problem).score("roc_auc", y, merged["oracle_proba"].to_numpy())


def _figures(y: np.ndarray, proba: np.ndarray, decision: np.ndarray, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    cm = confusion_matrix(y, decision)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), dpi=90)
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].plot(recall, precision)
    axes[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    axes[2].plot(mean_pred, frac_pos, marker="o")
    axes[2].plot([0, 1], [0, 1], ":", color="grey")
    axes[2].set(title="Calibration", xlabel="mean predicted", ylabel="observed rate")
    axes[3].imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        axes[3].text(
            j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black"
        )
    axes[3].set(
        title="Confusion matrix", xlabel="predicted", ylabel="actual", xticks=[0, 1], yticks=[0, 1]
    )
    fig.tight_layout()
    with atomic_path(folder / "evaluation.png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _curves(y: np.ndarray, proba: np.ndarray, decision: np.ndarray, root: Path) -> None:
    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    step = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 400)).astype(int))
    with atomic_path(root / PATHS.confusion_csv) as tmp:
        pd.DataFrame({"actual": y, "predicted": decision}).to_csv(tmp, index=False)
    for path, frame in (
        (PATHS.roc_csv, pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})),
        (PATHS.pr_csv, pd.DataFrame({"recall": recall[step], "precision": precision[step]})),
        (
            PATHS.calibration_csv,
            pd.DataFrame({"mean_predicted": mean_pred, "observed_rate": frac_pos}),
        ),
    ):
        with atomic_path(root / path) as tmp:
            frame.round(6).to_csv(tmp, index=False)


def model_card(
    params: Params, meta: dict[str, Any], result: dict[str, Any], env_hash: str, version: str
) -> str:
    """``reports/model_card.md``."""
    t, base, data = result["test"], result["baselines"], result["data"]
    base_rows = "\n".join(
        f"| {name} | {b['roc_auc']:.4f} | {b['pr_auc']:.4f} |" for name, b in base.items()
    )
    reasons = "\n".join(f"- {md(r)}" for r in result["gate_reasons"])
    slices = result["slices"]
    judged = {s["column"] for s in slices if s["checked"]}
    checked = "\n".join(
        [
            f"- slices judged: {', '.join(md(c) for c in sorted(judged)) or 'none'}",
            "- fairness judged: "
            + (", ".join(md(f["column"]) for f in result["fairness"]) or "none"),
            *[
                f"- **skipped** {md(s['column'])} ({s['key']}): {md(s['reason'])}"
                for s in result.get("skipped_columns", [])
            ],
        ]
    )
    top = "\n".join(
        f"| {md(f['feature'])} | {f['importance']:.4f} |" for f in result["top_features"]
    )
    oracle = (
        f"{t['oracle_roc_auc']:.4f}"
        if t.get("oracle_roc_auc") is not None
        else "n/a (not simulator data)"
    )
    return f"""# Model card: {params.problem.name}

**Status: {"BLESSED" if result["blessed"] else "NOT BLESSED"}**

| | |
|---|---|
| Model | {meta["model"]} `{meta["config"]}` |
| Decision threshold | {meta["threshold"]} (lowest expected cost on validation) |
| Data | snapshot `{data["snapshot_id"]}`; test sha256 `{data["test_sha256"][:16]}` |
| Code version | `{version}` |
| Locked environment | `requirements.lock` sha256 `{env_hash[:16]}` |

## Test metrics (sealed test set, {result["data"]["test_rows"]:,} rows)

| metric | value |
|---|---|
| ROC-AUC | {t["roc_auc"]:.4f} |
| PR-AUC | {t["pr_auc"]:.4f} |
| Brier score | {t["brier"]:.4f} |
| Recall at precision {params.problem.kpis.target_precision} | {t["recall_at_precision"]:.4f} |
| Expected cost per row (`evaluate.cost`) | {t["expected_cost"]:.4f} |
| Oracle ROC-AUC (best achievable) | {oracle} |

| baseline | ROC-AUC | PR-AUC |
|---|---|---|
{base_rows}

## Gate
{reasons}

## Slices and fairness

{checked}

## Top features (permutation importance on test, drop in ROC-AUC)

| feature | importance |
|---|---|
{top}

Plots: `reports/figures/evaluation.png`; slices and fairness in `reports/evaluation.json`.
"""


def main(root: Path, params: Params) -> None:
    """Evaluate the trained model on the sealed test set and decide the blessing."""
    problem, cfg = params.problem, params.evaluate
    meta = read_json(root / PATHS.model_meta)
    try:
        pipeline = load_model(root / PATHS.model_file)
    except UntrustedModel as exc:
        raise StepError(STEP, "model file", str(exc)) from None
    # The test split is scored part by part; the checks read only the columns they need.
    path = root / PATHS.test
    test = read_sealed_test(root, columns_read(column_names(path), problem, cfg))
    numeric, categorical = meta["numeric_features"], meta["categorical_features"]
    objective = objective_for(problem)
    y = objective.labels(test[problem.target])
    proba = predict_parts(pipeline, path, numeric, categorical, objective)
    decision = objective.decide(proba, meta["threshold"])
    log.info("scored the %d test rows part by part; now the baselines and the lift", len(y))
    metrics = headline(y, proba, meta["threshold"], params)
    metrics["oracle_roc_auc"] = oracle_auc(root, test, problem, y)
    baselines = objective.baseline_scores(test)
    base_metrics = {
        n: {m: objective.score(m, y, s) for m in objective.SUMMARY} for n, s in baselines.items()
    }
    metric = objective.lift_metric
    best_name = max(base_metrics, key=lambda n: metric.oriented(base_metrics[n][metric.name]))
    lift = {
        "baseline": best_name,
        "metric": metric.name,
        **paired_bootstrap_lift(
            y,
            proba,
            baselines[best_name],
            metric,
            cfg.bootstrap_samples,
            cfg.confidence,
            cfg.random_state,
        ),
    }
    log.info(
        "lift over %s: %+.4f %s (%d bootstrap samples); now the slices",
        best_name,
        lift["lift"],
        metric.name,
        cfg.bootstrap_samples,
    )
    with engine(params.compute, root, STEP) as eng:
        slices = slice_metrics(test, y, proba, cfg, problem, eng)
    fair, unfair = fairness(test, y, decision, cfg)
    skipped = skipped_columns(test, cfg) + unjudged_slices(slices, cfg) + unfair
    for s in skipped:
        log.warning("%s: '%s' skipped: %s", s["key"], s["column"], s["reason"])
    if not any(s["checked"] for s in slices) and not fair:
        log.warning("no slice or fairness check ran: set evaluate.slices and evaluate.sensitive")
    verdict = gate(metrics, lift, slices, fair, params, skipped)
    blessed, reasons = verdict.blessed, list(verdict.reasons)
    rows = sample_positions(len(y), min(len(y), cfg.importance_rows), cfg.random_state)
    log.info("slices and fairness checked; now permutation importance on %d rows", len(rows))
    X = model_matrix(take_rows(path, rows), numeric, categorical)  # the rows X.sample draws
    imp = permutation_importance(
        pipeline,
        X,
        y[rows],
        scoring=objective.IMPORTANCE_SCORER,
        n_repeats=3,
        random_state=cfg.random_state,
        n_jobs=1,
    )
    order = np.argsort(imp.importances_mean)[::-1][: cfg.top_features]
    top = [
        {"feature": str(X.columns[i]), "importance": float(imp.importances_mean[i])} for i in order
    ]
    env_hash = file_sha256(root / PATHS.env_lock) if (root / PATHS.env_lock).exists() else "unknown"
    snapshot = current_snapshot(root / PATHS.raw_dir)
    result = {
        "blessed": blessed,
        "gate_reasons": reasons,
        "model": meta["model"],
        "threshold": meta["threshold"],
        "test": metrics,
        "baselines": base_metrics,
        "lift": lift,
        "slices": slices,
        "fairness": fair,
        "skipped_columns": skipped,
        "top_features": top,
        "environment_sha256": env_hash,
        "data": {
            "snapshot_id": snapshot.snapshot_id,
            "test_sha256": file_sha256(root / PATHS.test),
            "test_rows": int(len(test)),
        },
    }
    write_json(root / PATHS.evaluation_json, result)
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    write_json(
        root / PATHS.metrics_json,
        {
            "blessed": blessed,
            "model": meta["model"],
            "test": rounded,
            "baseline": {
                n: {k: round(v, 6) for k, v in b.items()} for n, b in base_metrics.items()
            },
            "lift_lower_bound": round(lift["lower"], 6),
            "checks": {
                "passed": sum(r.startswith("PASS") for r in reasons),
                "failed": sum(r.startswith("FAIL") for r in reasons),
                "skipped": len(skipped),
            },
            "skipped": [f"{s['key']} '{s['column']}': {s['reason']}" for s in skipped],
        },
    )
    _curves(y, proba, decision, root)
    _figures(y, proba, decision, root / PATHS.figures_dir)
    write_text(
        root / PATHS.model_card, model_card(params, meta, result, env_hash, code_version(root))
    )
    log.info(
        "test ROC-AUC %.4f (oracle %s), PR-AUC %.4f; %s",
        metrics["roc_auc"],
        f"{metrics['oracle_roc_auc']:.4f}" if metrics["oracle_roc_auc"] else "n/a",
        metrics["pr_auc"],
        "BLESSED"
        if blessed
        else "NOT blessed: " + "; ".join(r for r in reasons if r.startswith("FAIL")),
    )


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
