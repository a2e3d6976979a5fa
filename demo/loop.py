"""``make demo``: the whole loop on the simulator, with the real services and a simulated clock.

1. A throw-away copy of the project (``.demo/project``, its own git repository, DVC cache,
   registry and prediction store) trains its first champion with the training flow.
2. A Prefect server (UI on the printed URL), the deployments (``flows.deployments``) and the
   prediction API start on 127.0.0.1; the API stamps predictions and labels with the
   simulated clock (``CHURN_CLOCK_FILE``).
3. Day by day: the day's customers (the simulator, with drift from ``--drift-day``) are
   scored through ``/predict``; the labels of the predictions made ``label_delay_days``
   earlier arrive through ``/feedback``; the monitoring deployment checks the day. Its
   retraining request (an event) starts the training deployment on the server's trigger;
   the demo only waits for it (the simulated clock stands still meanwhile). The API
   swaps to a promoted champion by itself.
4. The labels still outstanding arrive; ``reports/demo/summary.json`` and
   ``reports/demo/timeline.png`` tell what happened, against the simulator's oracle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from devtools.project import MOVE as MOVE_PROBLEM
from devtools.project import SPEND as SPEND_PROBLEM
from devtools.project import deep_merge, git, make_project
from devtools.services import Server, serve_deployments, start_api, start_server, stop, wait_for
from tasks.core.config import parse_params
from tasks.core.data.labels import binarize_target
from tasks.core.data.simulator import CHURN, MOVE, MOVES, SPEND, simulate_day
from tasks.core.env import telemetry_off
from tasks.core.io import write_json
from tasks.core.paths import PATHS, find_project_root
from tasks.core.serving.registry import Registry

LABEL_TOKEN = secrets.token_urlsafe(16)  # the labelling system the demo plays
DRIFTS = ("none", "covariate", "new_category", "concept", "uncertain")
TARGETS = (CHURN, SPEND, MOVE)
PROBLEMS = {CHURN: {}, SPEND: SPEND_PROBLEM, MOVE: MOVE_PROBLEM}
"""The params each simulated outcome's problem takes (churn's are the shipped ones)."""


@dataclass(frozen=True)
class Figure:
    """The live figure the demo follows for a problem type, its oracle's, and its targets."""

    name: str
    """The metric (``live_<name>``, ``oracle_<name>`` in the summary)."""
    label: str
    oracle: str
    """The simulator's oracle column."""
    higher_is_better: bool
    error_target: float
    """The estimate's mean error per window at most this (absolute, or relative for an error)."""
    gap_target: float
    """After retraining, the live figure within this of the oracle's (points, or relative)."""
    logged: str = "score"
    """The prediction log's column the figure judges (multiclass: the decided class)."""
    estimate: str = "CBPE"

    def labels(self, values: pd.Series, problem: Any) -> pd.Series:
        if self.name == "macro_f1":  # a class's name, as /feedback takes it
            return values.astype("string").str.strip().replace("", pd.NA)
        if self.higher_is_better:  # a classifier's labels: 0/1
            return binarize_target(values, problem.positive_label)
        return pd.to_numeric(values, errors="coerce")

    def feedback(self, y: Any) -> Any:
        """One label as ``/feedback`` takes it."""
        if self.name == "macro_f1":
            return str(y)
        return int(y) if self.higher_is_better else float(y)

    def oracle_of(self, oracle: pd.DataFrame) -> pd.Series:
        """The oracle's answer per row of the simulator's oracle frame (multiclass: the
        index of its most probable move, the classes' order)."""
        if self.name == "macro_f1":
            return oracle[[f"{self.oracle}{m}" for m in MOVES]].to_numpy().argmax(axis=1)
        return oracle[self.oracle]

    def score(self, y: np.ndarray, score: np.ndarray) -> float | None:
        if len(y) < 50:
            return None
        if self.name == "macro_f1":
            from sklearn.metrics import f1_score

            classes = list(range(len(MOVES)))
            found = f1_score(y, score.astype(int), labels=classes, average="macro")
            return round(float(found), 4)
        if not self.higher_is_better:
            return round(float(np.mean(np.abs(y - score))), 4)
        from sklearn.metrics import roc_auc_score

        return round(float(roc_auc_score(y, score)), 4) if 0 < y.sum() < len(y) else None

    def error(self, estimated: float, realised: float) -> float:
        """The estimate's error: ROC-AUC points, or an error's share of the realised one."""
        if self.higher_is_better:
            return round(abs(estimated - realised), 4)
        return round(abs(estimated / realised - 1), 4)

    def gap(self, oracle: float, live: float) -> float:
        """How far the served model is behind the oracle."""
        if self.higher_is_better:
            return round(oracle - live, 4)
        return round(live / oracle - 1, 4)


FIGURES = {
    "binary": Figure("roc_auc", "ROC-AUC", "oracle_proba", True, 0.04, 0.03),
    "regression": Figure("mae", "MAE", "oracle_value", False, 0.1, 0.35, estimate="DLE"),
    "multiclass": Figure("macro_f1", "macro-F1", "oracle_", True, 0.04, 0.05, "decision"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The demo's options (``make demo DEMO_ARGS="--drift concept"``)."""
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--drift", choices=DRIFTS, default="covariate", help="the drift injected")
    p.add_argument(
        "--target",
        choices=TARGETS,
        default=CHURN,
        help=f"the simulator's outcome: {CHURN} (yes/no), {SPEND} (a regression) or {MOVE} "
        "(one of several classes)",
    )
    p.add_argument(
        "--drift-day", type=int, default=20, help="first drifted day (day 0 is the first served)"
    )
    p.add_argument("--days", type=int, default=62, help="days of traffic")
    p.add_argument(
        "--window-days",
        type=int,
        default=2,
        help="days a monitoring window covers; the monitoring deployment runs at the end of each",
    )
    p.add_argument("--customers", type=int, default=600, help="customers scored a day")
    p.add_argument(
        "--label-delay",
        type=int,
        default=None,
        help="days until a prediction's label arrives (default: problem.label_delay_days)",
    )
    p.add_argument(
        "--train-days",
        type=int,
        default=45,
        help="days of labelled data the first model learns from",
    )
    p.add_argument("--retrain-days", type=int, default=21, help="monitor.retrain_window_days")
    p.add_argument(
        "--min-drifted-label-days", type=float, default=7, help="monitor.min_drifted_label_days"
    )
    p.add_argument("--start", default="2025-03-01", help="the simulated date of day 0")
    p.add_argument(
        "--no-operator",
        dest="operator",
        action="store_false",
        help="no one accepts the new categories an alert names "
        "(retraining then stops at the suite)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--n-trials", type=int, default=6, help="train.n_trials of every training run")
    p.add_argument(
        "--out", default=f"{PATHS.reports_dir}/demo", help="where summary.json and timeline.png go"
    )
    p.add_argument(
        "--work", default=".demo", help="the throw-away project, servers' homes and logs"
    )
    args = p.parse_args(argv)
    if args.drift != "none" and not 0 <= args.drift_day < args.days:
        p.error(f"--drift-day {args.drift_day} must be a day of traffic (0 to {args.days - 1})")
    return args


# --------------------------------------------------------------------------- the demo project
def demo_overrides(args: argparse.Namespace, day0: dt.date, delay: int) -> dict[str, Any]:
    """params.yaml of the demo project: the simulated world, and a quicker training run."""
    drift_start = (
        (day0 + dt.timedelta(days=args.drift_day)).isoformat() if args.drift != "none" else None
    )
    first_end = day0 - dt.timedelta(days=delay)
    window_rows = int(args.customers * args.window_days * 0.8)
    problem = PROBLEMS[args.target]
    return deep_merge(
        problem,
        {
            "problem": {"label_delay_days": delay},
            "collect": {
                "source": "simulator",
                "window": {
                    "start": (first_end - dt.timedelta(days=args.train_days - 1)).isoformat(),
                    "end": first_end.isoformat(),
                },
                "simulator": {
                    "target": args.target,
                    "seed": args.seed,
                    "customers_per_day": args.customers,
                    "drift": {"kind": args.drift, "start": drift_start, "strength": 1.0},
                },
            },
            "feasibility": {
                "sample_rows": 3000,
                "n_permutations": 19,
                "min_labelled_rows": 300,
                "min_minority_rows": 50,
            },
            "choose": {
                "cv_folds": 3,
                "sample_rows": 10000,
                "params": {"random_forest": {"n_estimators": 100, "min_samples_leaf": 5}},
            },
            "train": {"n_trials": args.n_trials},
            "evaluate": {"bootstrap_samples": 200, "importance_rows": 1000, "slice_min_rows": 100},
            "promote": {"bootstrap_samples": 300},
            "monitor": {
                "window_hours": 24 * args.window_days,
                "min_window_rows": min(500, window_rows),
                "min_labelled_rows": min(200, window_rows),
                "cooldown_hours": 24,
                "min_drifted_label_days": args.min_drifted_label_days,
                "retrain_window_days": args.retrain_days,
            },
        },
    )


# --------------------------------------------------------------------------- the world, day by day
@dataclass
class Day:
    """What happened on one simulated day."""

    day: int
    date: str
    drifted: bool
    served_by: str = ""
    predictions: int = 0
    labels_arrived: int = 0
    verdict: str = ""
    drift_share: float | None = None
    live: float | None = None
    estimated: float | None = None
    estimated_band: list[float] | None = None
    reasons: list[str] = field(default_factory=list)
    alert: bool = False
    retraining: str = ""
    retrain_requested: bool = False
    operator: str = ""
    retrain_runs: list[dict[str, Any]] = field(default_factory=list)


class Clock:
    """The simulated clock the API reads (``CHURN_CLOCK_FILE``): one small file, replaced
    atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, when: dt.datetime) -> None:
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        tmp.write_text(when.isoformat())
        os.replace(tmp, self.path)


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records (missing cells as null)."""
    return json.loads(frame.to_json(orient="records"))


def wait_for_retraining(
    client: Any, deployment_id: str, seen: set[str], timeout_s: float, appear_s: float = 90
) -> list[dict[str, Any]]:
    """The retraining runs the trigger started (not in ``seen``), once they have finished."""
    import asyncio

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def runs():
        async with client() as c:
            return await c.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

    deadline = time.monotonic() + appear_s
    while not (new := [r for r in asyncio.run(runs()) if str(r.id) not in seen]):
        if time.monotonic() > deadline:
            return []
        time.sleep(1)
    deadline = time.monotonic() + timeout_s
    while True:
        current = {str(r.id): r for r in asyncio.run(runs())}
        new = [current[str(r.id)] for r in new]
        if all(r.state is not None and r.state.is_final() for r in new):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"retraining still running after {timeout_s:.0f} s")
        time.sleep(3)
    seen.update(str(r.id) for r in new)
    return [
        {
            "flow_run": r.name,
            "state": r.state.name,
            "reason": r.parameters.get("reason"),
            "params": r.parameters.get("params"),
        }
        for r in new
    ]


def accept_new_values(project: Path, new_values: dict[str, list[str]]) -> str:
    """The operator's part: review the alert's new categories, accept them, commit the suite.

    What a person does after an alert names values the training suite does not allow
    (``python -m tasks.suites accept``); the retraining the alert leads to checks out the
    committed project, so without this step it stops at the clean step's suite.
    """
    done = []
    for column, values in new_values.items():
        subprocess.run(
            [sys.executable, "-m", "tasks.suites", "accept", column, *values],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
        )
        done.append(f"{column}: {', '.join(values)}")
    if not git(project, "status", "--porcelain", "--", "expectations").strip():
        return ""  # accepted already (the suite the monitoring flow read was older)
    git(project, "add", "expectations")
    git(
        project,
        "commit",
        "-q",
        "-m",
        f"accept new values ({'; '.join(done)})",
        "--",
        "expectations",
    )
    note = f"operator accepted {'; '.join(done)} in the suite and committed it"
    log(f"  {note}")
    return note


# --------------------------------------------------------------------------- the story
def live_frame(project: Path, sent: pd.DataFrame) -> pd.DataFrame:
    """Every logged prediction with its label (as the store holds them) and the oracle's
    probability."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{project / 'registry' / 'predictions.db'}")
    with engine.connect() as conn:
        store = pd.read_sql(
            "SELECT request_id, row, model_version, score, decision, label FROM predictions",
            conn,
        )
    engine.dispose()
    return store.merge(sent, on=["request_id", "row"], how="inner")


def period_scores(frame: pd.DataFrame, figure: Figure) -> dict[str, Any]:
    """The live and the oracle's figure over the labelled predictions of a period."""
    labelled = frame[frame["label"].notna()]
    y = labelled["label"].to_numpy(float if not figure.higher_is_better else int)
    return {
        "predictions": int(len(frame)),
        "labelled": int(len(labelled)),
        f"live_{figure.name}": figure.score(y, labelled[figure.logged].to_numpy()),
        f"oracle_{figure.name}": figure.score(y, labelled["oracle"].to_numpy()),
    }


def day_scores(live: pd.DataFrame, day: int, figure: Figure) -> dict[str, float | None]:
    """The live and oracle figure of the predictions made on ``day`` (once labelled)."""
    scores = period_scores(live[live["day"] == day], figure)
    return {
        f"{who}_{figure.name}_by_prediction_day": scores[f"{who}_{figure.name}"]
        for who in ("live", "oracle")
    }


def estimate_summary(
    args: argparse.Namespace, days: list[Day], live: pd.DataFrame, figure: Figure
) -> dict[str, Any]:
    """The estimate (CBPE or DLE, made when the window closed, before any of its labels)
    against the figure the same predictions turned out to have, per monitoring window; and
    its alerts against the label-based ones. ``error``: ROC-AUC points, or for an error the
    share of the realised one."""
    windows = []
    for d in days:
        if d.estimated is None:
            continue
        rows = live[(live["day"] > d.day - args.window_days) & (live["day"] <= d.day)]
        realised = period_scores(rows, figure)[f"live_{figure.name}"]
        if realised is None:
            continue
        low, high = d.estimated_band or (None, None)
        windows.append(
            {
                "day": d.day,
                "estimated": d.estimated,
                "band": d.estimated_band,
                "realised": realised,
                "error": figure.error(d.estimated, realised),
                "in_band": low is not None and low <= realised <= high,
            }
        )
    errors = [w["error"] for w in windows]
    drift = args.drift != "none"

    def first(prefix: str) -> int | None:
        return next(
            (
                d.day
                for d in days
                if (not drift or d.day >= args.drift_day)
                and any(r.startswith(prefix) for r in d.reasons)
            ),
            None,
        )

    by_estimate, by_labels = first("estimated performance"), first("live performance")

    def mae(rows: list[dict[str, Any]]) -> float | None:
        return round(float(np.mean([w["error"] for w in rows])), 4) if rows else None

    before = [w for w in windows if not drift or w["day"] < args.drift_day]
    during = [w for w in windows if drift and w["day"] >= args.drift_day]
    # concept drift changes no input: the estimate cannot follow it (docs/monitoring.md), so
    # its error target is judged on the windows it can see
    judged = before if args.drift == "concept" else windows
    return {
        "windows": len(windows),
        "mean_absolute_error": mae(windows),
        "mean_absolute_error_before_drift": mae(before),
        "mean_absolute_error_in_drift": mae(during),
        "mean_absolute_error_judged": mae(judged),
        "max_error": max(errors) if errors else None,
        "in_band_share": round(float(np.mean([w["in_band"] for w in windows])), 3)
        if windows
        else None,
        "first_alert_day": by_estimate,
        "first_label_alert_day": by_labels,
        "days_earlier_than_labels": None
        if by_estimate is None or by_labels is None
        else by_labels - by_estimate,
        "by_window": windows,
    }


def summarise(
    args: argparse.Namespace,
    days: list[Day],
    live: pd.DataFrame,
    delay: int,
    first_champion: str,
    figure: Figure,
) -> dict[str, Any]:
    """The summary the issue asks for, with the targets measured."""
    drift = args.drift != "none"
    alerts = [d.day for d in days if d.alert]
    false_alerts = [d for d in alerts if not drift or d < args.drift_day]
    first_alert = next((d for d in alerts if drift and d >= args.drift_day), None)
    visible_from = args.drift_day + (delay if args.drift == "concept" else 0)
    promotions = [
        (d.day, d.served_by) for prev, d in zip(days, days[1:]) if d.served_by != prev.served_by
    ]
    first_promotion = (
        next(((day, v) for day, v in promotions if day >= args.drift_day), None) if drift else None
    )
    before = live[live["day"] < (args.drift_day if drift else args.days)]
    in_drift = (
        live[(live["day"] >= args.drift_day) & (live["model_version"] == first_champion)]
        if drift
        else live.iloc[:0]
    )
    after = (
        live[(live["day"] >= first_promotion[0]) & (live["model_version"] == first_promotion[1])]
        if first_promotion
        else live.iloc[:0]
    )
    # after the first retraining, whichever model the gate left serving (a challenger that
    # proves no gain is not promoted: then the champion's own score is what users get)
    retrained = next((d.day for d in days if d.retrain_runs), None)
    after_retraining = live[live["day"] > retrained] if retrained is not None else live.iloc[:0]
    periods = {
        name: period_scores(rows, figure)
        for name, rows in (
            ("before_drift", before),
            ("in_drift", in_drift),
            ("after_new_champion", after),
            ("after_retraining", after_retraining),
        )
    }
    live_key, oracle_key = f"live_{figure.name}", f"oracle_{figure.name}"
    retrained_scores = periods["after_retraining"]
    gap = None
    if retrained_scores[live_key] is not None:
        gap = figure.gap(retrained_scores[oracle_key], retrained_scores[live_key])
    no_drift_windows = sum(1 for d in days if (not drift or d.day < args.drift_day) and d.verdict)
    estimated = estimate_summary(args, days, live, figure)
    # the new champion's first full window: its reference (its validation split) is what the
    # traffic looks like now, so from there on drift should stay quiet
    quiet_from = first_promotion[0] + args.window_days if first_promotion else None
    after_window = [d for d in days if quiet_from is not None and d.day >= quiet_from]
    alerts_after = [d.day for d in after_window if d.alert]
    return {
        "target": args.target,
        "figure": figure.name,
        "drift_kind": args.drift,
        "injection_day": args.drift_day if drift else None,
        "visible_from_day": visible_from if drift else None,
        "days": args.days,
        "customers_per_day": args.customers,
        "label_delay_days": delay,
        "first_alert_day": first_alert,
        "window_days": args.window_days,
        "detection_delay_windows": (first_alert - visible_from) // args.window_days
        if first_alert is not None
        else None,
        "false_alerts_before_injection": len(false_alerts),
        "no_drift_windows": no_drift_windows,
        "alert_days": alerts,
        "retraining_requests": [d.day for d in days if d.retrain_requested],
        "operator_actions": [{"day": d.day, "action": d.operator} for d in days if d.operator],
        "retraining_runs": [{"day": d.day, **r} for d in days for r in d.retrain_runs],
        "promotions": [{"day": day, "champion": v} for day, v in promotions],
        "first_champion": first_champion,
        "quiet_from_day": quiet_from,
        "days_without_alert_after_new_champion": sum(1 for d in after_window if not d.alert),
        "alerts_after_new_champion": alerts_after,
        "estimate": estimated,
        live_key: {k: v[live_key] for k, v in periods.items()},
        oracle_key: {k: v[oracle_key] for k, v in periods.items()},
        "periods": periods,
        "after_retraining_gap_to_oracle": gap,
        "targets": {
            # the window holding the first drifted (or newly labelled) day, or the next one
            "alert_within_one_window": None
            if not drift
            else (
                first_alert is not None and (first_alert - visible_from) // args.window_days <= 1
            ),
            "no_false_alert": len(false_alerts) == 0,
            "no_alert_after_new_champion_window": None if not after_window else not alerts_after,
            "no_drift_windows_at_least_20": no_drift_windows >= 20,
            f"after_retraining_within_{figure.gap_target}_of_oracle": None
            if gap is None
            else gap <= figure.gap_target,
            f"estimate_error_at_most_{figure.error_target}": None
            if estimated["mean_absolute_error_judged"] is None
            else estimated["mean_absolute_error_judged"] <= figure.error_target,
        },
        "by_day": [
            {
                **{k: v for k, v in d.__dict__.items() if k != "retrain_runs"},
                **day_scores(live, d.day, figure),
            }
            for d in days
        ],
    }


def plot(summary: dict[str, Any], path: Path, figure: Figure) -> None:
    """timeline.png: the live and the oracle's figure by prediction day; drift share; alerts,
    retrains, promotions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["by_day"]
    checked = [r for r in rows if r["verdict"]]  # the days a monitoring window ended
    x = [r["day"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, height_ratios=[3, 2])
    top.plot(
        x,
        [r[f"live_{figure.name}_by_prediction_day"] for r in rows],
        marker=".",
        label=f"live {figure.label} (served model)",
    )
    top.plot(
        x,
        [r[f"oracle_{figure.name}_by_prediction_day"] for r in rows],
        ls="--",
        color="grey",
        label=f"oracle {figure.label}",
    )
    windows = summary["estimate"]["by_window"]
    if windows:
        top.errorbar(
            [w["day"] for w in windows],
            [w["estimated"] for w in windows],
            yerr=[
                [w["estimated"] - w["band"][0] for w in windows],
                [w["band"][1] - w["estimated"] for w in windows],
            ],
            fmt="s",
            ms=3,
            color="tab:cyan",
            alpha=0.8,
            label=f"estimated before labels ({figure.estimate}, window)",
        )
    top.set_ylabel(f"{figure.label} by prediction day")
    bottom.plot(
        [r["day"] for r in checked],
        [r["drift_share"] for r in checked],
        marker=".",
        color="tab:orange",
        label="drift share (monitoring)",
    )
    bottom.set_ylabel("share of drifted features")
    bottom.set_xlabel("simulated day")
    for ax in (top, bottom):
        if summary["injection_day"] is not None:
            ax.axvline(summary["injection_day"], color="red", ls=":", label="drift injected")
        for k, day in enumerate(summary["alert_days"]):
            ax.axvline(day, color="tab:red", alpha=0.25, lw=3, label="alert" if k == 0 else None)
        for k, day in enumerate(summary["retraining_requests"]):
            ax.axvline(day, color="tab:purple", ls="--", label="retraining" if k == 0 else None)
        for k, p in enumerate(summary["promotions"]):
            ax.axvline(p["day"], color="tab:green", lw=2, label="new champion" if k == 0 else None)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(
        f"make demo ({summary['target']}): {summary['drift_kind']} drift"
        + (f" from day {summary['injection_day']}" if summary["injection_day"] is not None else "")
        + f", labels {summary['label_delay_days']} days late"
    )
    fig.tight_layout()
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main
def log(message: str) -> None:
    print(f"{dt.datetime.now():%H:%M:%S} | demo | {message}", flush=True)


def main(argv: list[str]) -> int:
    """Run the demo; 0 when it ran to the end (the targets are reported, not enforced)."""
    telemetry_off()
    # stopped (Ctrl-C, or SIGTERM from make or CI), the servers it started are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    repo = find_project_root()
    base = parse_params(yaml.safe_load((repo / PATHS.params).read_text()))
    delay = (
        args.label_delay
        if args.label_delay is not None
        else int(base.problem.label_delay_days or 0)
    )
    day0 = dt.date.fromisoformat(args.start)
    work = (repo / args.work).resolve()
    out = (repo / args.out).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    project = make_project(
        work / "project", demo_overrides(args, day0, delay), repo=repo, name="churn-demo"
    )
    problem = parse_params(yaml.safe_load((project / PATHS.params).read_text())).problem
    figure = FIGURES[problem.type]
    story = f"{args.drift} drift from day {args.drift_day}" if args.drift != "none" else "no drift"
    log(
        f"demo project in {project}: {story}, {args.days} days of {args.customers} customers, "
        f"labels {delay} days late"
    )

    procs = []
    server = start_server(work / "prefect")
    procs.append(server.proc)
    log(f"Prefect server and UI on {server.ui_url} (watch the runs there while the demo goes on)")
    env = {
        **server.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    try:
        log("training the first champion (the training flow, every dvc.yaml stage)")
        with open(work / "first-training.log", "w") as training_log:
            done = subprocess.run(
                [sys.executable, "-m", "flows.training"],
                cwd=project,
                env=env,
                stdout=training_log,
                stderr=subprocess.STDOUT,
            )
        if done.returncode != 0:
            raise RuntimeError(f"the first training failed: see {work / 'first-training.log'}")
        registry = Registry(project / "registry")
        champion = registry.champion()
        if champion is None:
            raise RuntimeError(
                f"the first training registered no champion: see {work / 'first-training.log'}"
            )
        first_champion = champion.version
        log(
            f"champion {first_champion}: test {figure.label} "
            f"{champion.card['metrics']['test'].get(figure.name):.4f}"
        )

        clock = Clock(work / "clock")
        clock.set(dt.datetime.combine(day0, dt.time(0), dt.timezone.utc))
        # the demo plays the labelling system: it posts labels with a token of its own
        api_env = {
            **env,
            "CHURN_CLOCK_FILE": str(clock.path),
            "CHURN_FEEDBACK_TOKENS": f"demo={LABEL_TOKEN}",
        }
        api, api_url = start_api(project, api_env, work / "api.log")
        procs.append(api)
        deploy = serve_deployments(
            project, {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}, work / "deploy.log", server
        )
        procs.append(deploy)
        retrain_id = server.get("/deployments/name/retrain/training").json()["id"]
        log(
            f"API on {api_url} (simulated clock), deployments served; "
            f"{time.monotonic() - started:.0f} s so far"
        )
        days, sent = run_days(
            args,
            day0,
            delay,
            problem,
            figure,
            project,
            server,
            api_url,
            clock,
            retrain_id,
            registry,
        )
        live = live_frame(project, sent)
        summary = summarise(args, days, live, delay, first_champion, figure)
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        write_json(out / "summary.json", summary)
        plot(summary, out / "timeline.png", figure)
    finally:
        for proc in reversed(procs):
            stop(proc)
    log(
        f"wrote {out / 'summary.json'} and {out / 'timeline.png'} in {summary['wall_seconds']:.0f} "
        "s"
    )
    shown = {
        k: summary[k]
        if k != "estimate"
        else {e: v for e, v in summary[k].items() if e != "by_window"}
        for k in (
            "target",
            "drift_kind",
            "injection_day",
            "first_alert_day",
            "false_alerts_before_injection",
            "retraining_requests",
            "promotions",
            "days_without_alert_after_new_champion",
            "alerts_after_new_champion",
            "estimate",
            f"live_{figure.name}",
            f"oracle_{figure.name}",
            "targets",
        )
    }
    print(json.dumps(shown, indent=2))
    return 0


def run_days(
    args: argparse.Namespace,
    day0: dt.date,
    delay: int,
    problem: Any,
    figure: Figure,
    project: Path,
    server: Server,
    api_url: str,
    clock: Clock,
    retrain_id: str,
    registry: Registry,
) -> tuple[list[Day], pd.DataFrame]:
    """Traffic, labels and monitoring day by day, then the outstanding labels."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drift_start = day0 + dt.timedelta(days=args.drift_day)
    pending: dict[int, list[dict[str, Any]]] = {}
    days: list[Day] = []
    sent: list[pd.DataFrame] = []
    seen: set[str] = set()
    drop = [problem.target, *problem.post_outcome_columns]
    with (
        httpx.Client(base_url=api_url, timeout=60) as http,
        temporary_settings({PREFECT_API_URL: server.api_url}),
    ):
        for n in range(args.days + delay):
            date = day0 + dt.timedelta(days=n)
            midnight = dt.datetime.combine(date, dt.time(0), dt.timezone.utc)
            traffic = n < args.days
            record = Day(n, date.isoformat(), args.drift != "none" and date >= drift_start)
            if traffic:
                batch = simulate_day(
                    date,
                    args.customers,
                    args.seed,
                    args.drift,
                    drift_start if args.drift != "none" else None,
                    1.0,
                    args.target,
                )
                frame = batch.data
                labels = figure.labels(frame[problem.target], problem)
                oracle = dict(zip(batch.oracle["customer_id"], figure.oracle_of(batch.oracle)))
                clock.set(midnight + dt.timedelta(hours=9))
                rows, feedback = [], []
                for lo in range(0, len(frame), 500):
                    chunk = frame.iloc[lo : lo + 500]
                    reply = http.post(
                        "/predict", json={"records": records_of(chunk.drop(columns=drop))}
                    )
                    reply.raise_for_status()
                    body = reply.json()
                    record.served_by = body["model_version"]
                    for i, (cid, y) in enumerate(
                        zip(chunk[problem.id_column], labels.iloc[lo : lo + 500])
                    ):
                        rows.append(
                            {
                                "request_id": body["request_id"],
                                "row": i,
                                "day": n,
                                "oracle": oracle[cid],
                            }
                        )
                        if not pd.isna(y):
                            feedback.append(
                                {
                                    "request_id": body["request_id"],
                                    "row": i,
                                    "label": figure.feedback(y),
                                }
                            )
                sent.append(pd.DataFrame(rows))
                pending[n] = feedback
                record.predictions = len(rows)
            arriving = pending.pop(n - delay, [])
            if arriving:
                clock.set(midnight + dt.timedelta(hours=12))
                for lo in range(0, len(arriving), 5000):
                    http.post(
                        "/feedback",
                        json={"labels": arriving[lo : lo + 5000]},
                        headers={"Authorization": f"Bearer {LABEL_TOKEN}"},
                    ).raise_for_status()
                record.labels_arrived = len(arriving)
            if not traffic:
                if not pending:
                    break
                continue
            if (n + 1) % args.window_days:  # the monitoring window ends tomorrow
                days.append(record)
                continue
            clock.set(midnight + dt.timedelta(hours=23, minutes=59))
            flow_run = run_deployment(
                "monitoring/scheduled",
                parameters={"now": (midnight + dt.timedelta(days=1)).isoformat()},
                timeout=600,
                poll_interval=1,
            )
            if not flow_run.state or not flow_run.state.is_completed():
                raise RuntimeError(
                    f"monitoring run {flow_run.name} ended {flow_run.state}: see the Prefect UI"
                )
            stamp = (midnight + dt.timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
            summary = json.loads((project / "monitoring" / "reports" / f"{stamp}.json").read_text())
            record.verdict = summary["verdict"]
            record.drift_share = (summary.get("drift") or {}).get("drift_share")
            perf = summary["live_performance"]
            record.live = perf.get(figure.name) if perf.get("evaluated") else None
            estimated = summary.get("estimated_performance") or {}
            record.estimated = estimated.get(figure.name)
            record.estimated_band = estimated.get(f"{figure.name}_band")
            record.reasons = list(summary.get("reasons") or [])
            record.alert = bool(summary["alert"])
            decision = summary.get("retraining") or {}
            record.retraining = decision.get("note", "")
            record.retrain_requested = bool(decision.get("request"))
            state = "drifted" if record.drifted else "clean  "
            line = f"day {n:3d} {date} {state} {record.served_by}: {record.verdict}"
            log(
                line
                + (f"; drift share {record.drift_share}" if record.drift_share is not None else "")
                + (
                    f"; estimated {figure.label} {record.estimated}"
                    if record.estimated is not None
                    else ""
                )
            )
            new_values = (summary.get("input_quality") or {}).get("new_values") or {}
            if new_values and args.operator:
                record.operator = accept_new_values(project, new_values)
            if record.retrain_requested:
                log(f"  {record.retraining}; waiting for the run the trigger starts")
                record.retrain_runs = wait_for_retraining(
                    get_client, retrain_id, seen, timeout_s=1800
                )
                if not record.retrain_runs:
                    raise RuntimeError(
                        "the retraining request started no run of retrain/training: "
                        "see the deployment's triggers in the Prefect UI"
                    )
                now_champion = registry.champion().version
                for r in record.retrain_runs:
                    log(f"  retraining {r['flow_run']}: {r['state']}; champion now {now_champion}")
                wait_for(
                    lambda: http.get("/health").json().get("model_version") == now_champion,
                    30,
                    "the API to serve the champion",
                    every_s=0.5,
                )
            days.append(record)
    return days, pd.concat(sent, ignore_index=True)
