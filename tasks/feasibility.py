"""Step 2, feasibility: a go/no-go decision before any modelling effort.

Checks that there are enough labelled and minority-class rows, that few labels are
missing, and that the features carry signal: a quick cross-validated model must beat the
dummy baseline, and a label-permutation test must show the lift is not chance. Writes
``reports/feasibility.md`` and ``reports/feasibility.json``; a no-go fails the stage, which
stops the flow.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

from tasks.core.config import FeasibilityParams, ProblemParams
from tasks.core.data.snapshots import current_snapshot
from tasks.core.declare import Keys
from tasks.core.errors import StepError
from tasks.core.io import take_rows, write_json, write_text
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.ml.objectives.base import threshold_check
from tasks.core.ml.signal import quick_matrix, signal_check, signal_sample
from tasks.core.paths import PATHS
from tasks.core.step import run_step

log = logging.getLogger("churn.feasibility")
STEP = "feasibility"


def label_checks(
    y: pd.Series, cfg: FeasibilityParams, objective: Objective
) -> list[dict[str, Any]]:
    """Enough labelled rows, the problem type's checks (binary: enough of the minority
    class), few missing labels."""
    labelled = int(y.notna().sum())
    missing_share = float(y.isna().mean())
    return [
        threshold_check("labelled rows", labelled, cfg.min_labelled_rows, ">="),
        *objective.label_checks(y, cfg),
        threshold_check("missing-label share", missing_share, cfg.max_missing_label_share, "<=", 4),
    ]


def decide(data: pd.DataFrame, problem: ProblemParams, cfg: FeasibilityParams) -> dict[str, Any]:
    """Run every check on a snapshot held in memory (see :func:`decide_on`)."""
    y = objective_for(problem).read_target(data[problem.target])
    return decide_on(y.to_numpy(), lambda positions: data.iloc[positions], problem, cfg)


def decide_on(
    y: np.ndarray,
    rows: Callable[[np.ndarray], pd.DataFrame],
    problem: ProblemParams,
    cfg: FeasibilityParams,
) -> dict[str, Any]:
    """Run every check and return the verdict with its reasons and risks.

    Parameters
    ----------
    y : ndarray of float
        The target of every row: 1, 0, or NaN when unlabelled.
    rows : callable
        ``rows(positions)``: the snapshot's rows at those positions. Only the signal
        check's sample is read, so the snapshot need not fit in memory.
    problem, cfg
        The ``problem`` and ``feasibility`` sections.
    """
    y = pd.Series(y)
    objective = objective_for(problem).for_labels(y)
    spec = objective.signal(cfg)
    checks = label_checks(y, cfg, objective)
    signal: dict[str, Any] | None = None
    if all(c["passed"] for c in checks):
        labelled = np.flatnonzero(y.notna().to_numpy())
        keep = labelled[signal_sample(len(labelled), cfg)]
        X = quick_matrix(rows(keep).reset_index(drop=True), problem)
        signal = signal_check(X, objective.labels(y.to_numpy()[keep]), cfg, spec)
        checks += [
            threshold_check(
                f"{spec.label} lift over dummy", signal["lift"], cfg.min_auc_lift, ">=", 4
            ),
            threshold_check(
                "permutation p-value",
                signal["permutation_p_value"],
                cfg.max_permutation_p_value,
                "<=",
                4,
            ),
        ]
    facts = objective.feasibility_facts(y)
    risks = objective.target_risks(facts)
    if signal and signal[f"cv_{spec.metric}"] > spec.near_perfect:
        risks.append(
            "near-perfect quick model: look for a leaking column before trusting any score"
        )
    if int(y.notna().sum()) < 5 * cfg.min_labelled_rows:
        risks.append("small data: expect wide confidence intervals at evaluation")
    return {
        "go": all(c["passed"] for c in checks),
        "checks": checks,
        "signal": signal,
        "facts": facts,
        "metric": spec.metric,
        "risks": risks,
    }


def render(verdict: dict[str, Any]) -> str:
    """``reports/feasibility.md``."""
    rows = "\n".join(
        f"| {c['check']} | {c['value']} | {c['rule']} {c['threshold']} | "
        f"{'pass' if c['passed'] else '**FAIL**'} |"
        for c in verdict["checks"]
    )
    risks = "\n".join(f"- {r}" for r in verdict["risks"]) or "- none found"
    head = "GO" if verdict["go"] else "NO-GO"
    return f"""# Feasibility: {head}

| check | value | threshold | result |
|---|---|---|---|
{rows}

## Risks
{risks}
"""


def main(
    root: Path,
    cfg: FeasibilityParams,
    problem: Annotated[
        ProblemParams,
        Keys(
            "type",
            "target",
            "id_column",
            "time_column",
            "positive_label",
            "class_aliases",
            "post_outcome_columns",
            "primary_metric",
        ),
    ],
) -> None:
    """Decide go/no-go on the current snapshot."""
    snapshot = current_snapshot(root / PATHS.raw_dir)
    # The target column alone for the label checks, then only the sampled rows.
    target = snapshot.read([problem.target])[problem.target]
    y = objective_for(problem).read_target(target).to_numpy()
    del target
    verdict = decide_on(y, lambda positions: take_rows(snapshot.data_path, positions), problem, cfg)
    signal, metric = verdict["signal"] or {}, verdict["metric"]
    write_json(
        root / PATHS.feasibility_json,
        {
            "go": verdict["go"],
            **{k: round(v, 6) for k, v in verdict["facts"].items()},
            f"cv_{metric}": round(signal.get(f"cv_{metric}", float("nan")), 6),
            "permutation_p_value": signal.get("permutation_p_value"),
            "failed_checks": [c["check"] for c in verdict["checks"] if not c["passed"]],
        },
    )
    write_text(root / PATHS.feasibility_md, render(verdict))
    for c in verdict["checks"]:
        log.info(
            "%-26s %-10s %s %s  %s",
            c["check"],
            c["value"],
            c["rule"],
            c["threshold"],
            "pass" if c["passed"] else "FAIL",
        )
    if not verdict["go"]:
        failed = [c for c in verdict["checks"] if not c["passed"]]
        detail = "; ".join(
            f"{c['check']} = {c['value']} (needs {c['rule']} {c['threshold']})"
            + (f": {c['advice']}" if "advice" in c else "")
            for c in failed
        )
        raise StepError(
            STEP,
            "no-go",
            f"{detail}. See {PATHS.feasibility_md}; thresholds are in params.yaml 'feasibility'",
        )
    log.info("verdict: GO (%s)", PATHS.feasibility_md)


if __name__ == "__main__":
    sys.exit(run_step(STEP, main))
