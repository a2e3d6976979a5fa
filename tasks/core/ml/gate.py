"""The evaluation gate: the checks that bless a model, each passed, failed or skipped.

Slices (the objective's metrics per value of each ``evaluate.slices`` column), fairness
(TPR and FPR gaps and the selection-rate ratio across the groups of each
``evaluate.sensitive`` column), the columns and groups that could not be judged, and the
verdict: the lift over the best baseline, the KPI floors of the problem's objective, every
slice above its floor and the fairness gaps within limits. A check that did not run is
reported as skipped with its reason, never as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import ComputeParams, EvaluateParams, ProblemParams
from tasks.core.ml.evaluation import column_slices, slice_groups
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.runtime.compute import Engine


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


def unjudged_slices(
    slices: list[dict[str, Any]], cfg: EvaluateParams, objective: Objective
) -> list[dict[str, str]]:
    """Slice columns with groups the gate could not judge (too few rows, or labels the
    metrics cannot judge: :attr:`Objective.UNJUDGEABLE`)."""
    also = f" or {objective.UNJUDGEABLE}" if objective.UNJUDGEABLE else ""
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
                f"evaluate.slice_min_rows={cfg.slice_min_rows}{also} (largest of them "
                f"{largest} rows)"
                + ("; no group of this column was judged" if len(left) == len(groups) else ""),
            }
        )
    return out


def fairness(
    test: pd.DataFrame,
    y: np.ndarray,
    decision: np.ndarray,
    cfg: EvaluateParams,
    objective: Objective | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The objective's gaps across groups of each sensitive column (binary: the TPR and FPR
    gaps and the selection-rate ratio).

    Returns the judged columns, and those that could not be judged with the reason (fewer
    than two groups of ``evaluate.fairness.min_group_rows``). A numeric column with many
    values is judged in ranges (:func:`tasks.core.ml.evaluation.slice_groups`).
    """
    objective = objective or objective_for(None)
    out, skipped = [], []
    for column in cfg.sensitive:
        if column not in test:
            continue
        groups, small = {}, {}
        for value, idx in slice_groups(test[column].reset_index(drop=True)).items():
            if len(idx) < cfg.fairness.min_group_rows:
                small[str(value)] = int(len(idx))
                continue
            groups[str(value)] = {
                "rows": int(len(idx)),
                **objective.group_figures(y[idx], decision[idx]),
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
        out.append(
            {
                "column": column,
                "groups": groups,
                "small_groups": small,
                **objective.fairness_gaps(list(groups.values())),
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
    problem: ProblemParams,
    cfg: EvaluateParams,
    skipped: list[dict[str, str]] | None = None,
) -> GateDecision:
    """Bless or refuse, with one reason per check: passed, failed or skipped.

    A skipped check says why (``SKIP``); a sensitive column whose fairness could not be
    judged fails the gate while ``evaluate.fairness.block_when_skipped`` is on.
    """
    objective = objective_for(problem)
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
    for s in slices:
        if s["checked"]:
            check(*objective.slice_check(s, metrics, cfg))
    for f in fair:
        for passed, text in objective.fairness_checks(f, cfg.fairness):
            check(passed, text)
    return GateDecision(ok, tuple(reasons))
