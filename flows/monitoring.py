"""The monitoring flow: drift, live performance and input quality of the serving model.

Scheduled by ``make deploy`` (``monitor.cron``), or ``python -m flows.monitoring``. Each run
takes the recent window of logged predictions and compares it with the champion's reference
sample (Evidently), estimates the window's ROC-AUC and cost from its scores before any label
is in (CBPE, ``tasks.monitor.estimate``), scores the predictions whose ground truth arrived in
the window against the KPI floors (labels come late: they may belong to older predictions)
and sets the estimate those predictions had beside their realised ROC-AUC, checks the inputs
with the training data-quality suite, and compares the champion with the previous one
scored in shadow. It writes ``monitoring/reports/<time>.html`` and ``.json``, adds the run
to the Evidently workspace (``make monitor-ui``), and links both as Prefect artifacts.

On an alert (policy in ``params.yaml`` section ``monitor``) it emits the Prefect event
``churn.monitoring.alert`` (the webhook automation sends it on); alerts within the cooldown
are logged, not emitted. Labels arrive ``problem.label_delay_days`` late, so retraining is
requested (event ``churn.retrain.requested``, which triggers the training deployment with
the collect window to use) once ``monitor.min_drifted_label_days`` of labels from the
alerting period exist, and again each time as many more have arrived. When the labels show
the champion behind the previous one by ``monitor.rollback_margin``, it rolls back and
emits ``churn.model.rolled-back``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows.common import project_root
from scoring.store import open_store
from tasks.core.config import Params, ProblemParams, load_params
from tasks.core.env import telemetry_off
from tasks.core.io import read_json, write_json, write_text
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.paths import MONITORING_REPORTS, PATHS
from tasks.core.quality.pages import evidently_html
from tasks.core.quality.suites import suite_path_for
from tasks.core.quality.validation import read_suite_file
from tasks.core.serving.registry import open_registry, registry_dir
from tasks.monitor import checks, class_estimate, drift, estimate, loss_estimate, policy

ALERT_EVENT = "churn.monitoring.alert"
ROLLBACK_EVENT = "churn.model.rolled-back"
RETRAIN_EVENT = "churn.retrain.requested"
SERVICE_EVENT = "churn.service.alert"
EVIDENTLY_PROJECT = "churn monitoring"


def evidently_project(workspace_dir: Path, kind: str = "binary") -> tuple[Any, Any]:
    """The Evidently workspace and its monitoring project, with the dashboard of a problem
    type's figures, made once."""
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(workspace_dir))
    found = ws.search_project(EVIDENTLY_PROJECT)
    if found:
        add_panels(found[0], kind)
        return ws, found[0]
    project = ws.create_project(
        EVIDENTLY_PROJECT, description="Drift and live performance of the champion"
    )
    add_panels(project, kind)
    return ws, project


ESTIMATE_PANEL = "ROC-AUC estimated before the labels (CBPE), and realised"
REGRESSION_ESTIMATE_PANEL = "MAE estimated before the labels (DLE), and realised"
MULTICLASS_ESTIMATE_PANEL = "Macro-F1 estimated before the labels (CBPE), and realised"


def add_panels(project: Any, kind: str = "binary") -> None:
    """The dashboard's panels for a problem type, each added once (a workspace made by an
    earlier version gets the ones it lacks)."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    def metric(legend: str, name: str, labels: dict[str, str]) -> Any:
        return PanelMetric(legend=legend, metric=name, metric_labels=labels)

    def band(name: str) -> list[Any]:
        columns = {c: {"column": f"estimated_{name}{c}"} for c in ("", "_low", "_high")}
        return [
            metric("estimated", "MeanValue", columns[""]),
            metric("band low", "MeanValue", columns["_low"]),
            metric("band high", "MeanValue", columns["_high"]),
        ]

    panels = {
        "Share of drifted features": [
            metric("drift share", "DriftedColumnsCount", {"value_type": "share"})
        ],
        "Drifted features": [metric("count", "DriftedColumnsCount", {"value_type": "count"})],
    }
    if kind == "multiclass":
        f1 = metric("realised (labels arrived)", "F1Score", {})
        panels |= {
            "Live accuracy and macro-F1 (labelled requests)": [
                metric("accuracy", "Accuracy", {}),
                metric("macro-F1", "F1Score", {}),
            ],
            "Predicted class mix drift": [
                metric("distance", "ValueDrift", {"column": drift.PREDICTION})
            ],
            MULTICLASS_ESTIMATE_PANEL: [*band("macro_f1"), f1],
        }
    elif kind == "regression":
        mae = metric("realised (labels arrived)", "MAE", {"value_type": "mean"})
        panels |= {
            "Live MAE and RMSE (labelled requests)": [
                metric("MAE", "MAE", {"value_type": "mean"}),
                metric("RMSE", "RMSE", {}),
            ],
            "Prediction mean": [
                metric("mean prediction", "MeanValue", {"column": drift.PREDICTION})
            ],
            REGRESSION_ESTIMATE_PANEL: [*band("mae"), mae],
        }
    else:
        panels |= {
            "Live ROC-AUC (labelled requests)": [metric("ROC-AUC", "RocAuc", {})],
            "Prediction mean": [metric("mean score", "MeanValue", {"column": drift.PREDICTION})],
            ESTIMATE_PANEL: [*band("roc_auc"), metric("realised (labels arrived)", "RocAuc", {})],
        }
    have = {p.title for p in project.dashboard.model().panels}
    for title, values in panels.items():
        if title not in have:
            project.dashboard.add_panel(line_plot_panel(title, values, size="half"))


def _estimate_line(summary: dict[str, Any]) -> str:
    found = summary.get("estimated_performance") or {}
    if not found.get("evaluated"):
        return found.get("note", "-")
    name = found["metric"]
    line = f"{found['method']}: {name} {found[name]} (band {found[f'{name}_band']})"
    if "expected_cost" in found:
        line += (
            f", expected cost {found['expected_cost']} per prediction "
            f"(band {found['expected_cost_band']})"
        )
    then = found.get("labelled")
    if then:
        name = then["metric"]
        line += (
            f"; on the {then['rows']} predictions whose labels arrived: estimated "
            f"{name} {then[f'estimated_{name}']}, realised {then[f'realised_{name}']}"
        )
    return line


def _markdown(summary: dict[str, Any]) -> str:
    found = summary.get("drift") or {}
    perf = summary["live_performance"]
    service = summary["service"]
    lines = [
        f"# Monitoring: {summary['verdict']}",
        "",
        f"- model: `{summary['model_version']}`; window {summary['window']['start']} to "
        f"{summary['window']['end']}: {summary['window']['rows']} predictions",
        f"- drift share: {found.get('drift_share', '-')} (alert at "
        f"{summary['policy']['drift_share_alert']}); "
        f"drifted: {', '.join(found.get('drifted_columns', [])) or 'none'}",
        f"- prediction drift: {found.get('prediction_drift', '-')}; mean score "
        f"{(found.get('prediction_mean') or {}).get('current', '-')} vs reference "
        f"{(found.get('prediction_mean') or {}).get('reference', '-')}",
        f"- live performance: {perf['labelled_rows']} labelled requests; "
        + (
            ", ".join(f"{m} {perf[m]:.4f}" for m in perf["figures"])
            if perf["evaluated"]
            else perf["note"]
        ),
        f"- estimated performance (before labels): {_estimate_line(summary)}",
        f"- input quality: {summary['input_quality']['checks']} checks, "
        f"{len(summary['input_quality']['failed'])} failed",
        f"- shadow: {summary['shadow'].get('note') or summary['shadow']}",
        f"- service: {service['requests']} requests, p50 {service['p50_ms']} ms, p99 "
        f"{service['p99_ms']} ms, 4xx {service['share_4xx']}, 5xx {service['share_5xx']}"
        + (f"; ALERT: {'; '.join(service['alerts'])}" if service.get("alerts") else ""),
        f"- report: `{summary['report_html']}`",
    ]
    lines += [f"- reason: {r}" for r in summary["reasons"]]
    for column, u in (summary.get("unseen_categories") or {}).items():
        lines.append(
            f"- unseen by the model: {column} = {', '.join(u['values'])} ({u['share']:.1%} of rows)"
        )
    if summary["input_quality"].get("hint"):
        lines.append(f"- {summary['input_quality']['hint']}")
    if summary.get("retraining"):
        lines.append(f"- {summary['retraining']['note']}")
    return "\n".join(lines)


@task(name="drift", cache_policy=NO_CACHE)
def check_drift(
    window: pd.DataFrame, champion: Any, cfg: Any, end: dt.datetime, objective: Objective
) -> drift.DriftResult | None:
    """Data and prediction drift of the window against the champion's reference sample
    (the prediction: the score, or a multiclass model's decided class)."""
    if window.empty:
        return None
    card = champion.card
    current = window.assign(**{drift.PREDICTION: objective.window_predictions(window)})
    return drift.drift_check(
        champion.reference(),
        current,
        card["numeric_features"],
        card["categorical_features"],
        cfg,
        timestamp=end,
    )


@task(name="live-performance", cache_policy=NO_CACHE)
def check_live_performance(
    served: pd.DataFrame, champion: Any, params: Any, objective: Objective
) -> dict[str, Any]:
    """The objective's summary metrics on the labels that arrived, against the KPI floors and
    the card."""
    cfg = params.monitor
    floors = {f.metric.name: f.value for f in objective.floors()}
    tested = (champion.card.get("metrics") or {}).get("test", {})
    return checks.live_performance(
        served,
        {m: floors[m] for m in objective.SUMMARY if m in floors},
        cfg.min_labelled_rows,
        tested.get(objective.FLOOR_METRIC),
        objective.live_drop_limit(cfg),
        objective,
    )


ESTIMATES = {
    "binary": estimate.window_estimate,
    "regression": loss_estimate.window_estimate,
    "multiclass": class_estimate.window_estimate,
}
"""Each problem type's estimate of a window's performance before its labels."""


@task(name="estimated-performance", cache_policy=NO_CACHE)
def check_estimated_performance(
    window: pd.DataFrame, served: pd.DataFrame, champion: Any, params: Any, objective: Objective
) -> dict[str, Any]:
    """The window's performance estimated before its labels arrive: a classifier's ROC-AUC
    and cost from its scores (CBPE), a multiclass one's accuracy and macro-F1 from its
    probabilities (multiclass CBPE), a regression's MAE and RMSE from its inputs and
    predictions (DLE)."""
    estimate_of = ESTIMATES[objective.type]
    return estimate_of(
        window,
        served,
        champion.reference(),
        champion.card,
        objective,
        params.monitor,
        params.evaluate,
    )


@task(name="input-quality", cache_policy=NO_CACHE)
def check_input_quality(window: pd.DataFrame, root: Path, params: Any) -> dict[str, Any]:
    """The raw suite's row-level checks on the window's inputs."""
    suite = read_suite_file(root / suite_path_for(params.clean, params.collect))
    return checks.input_quality(window, suite, params.monitor)


@task(name="unseen-categories", cache_policy=NO_CACHE)
def check_unseen_categories(window: pd.DataFrame, champion: Any) -> dict[str, Any]:
    """Categories the serving model never saw in training."""
    return checks.unseen_categories(
        window, champion.schema(), champion.card["categorical_features"]
    )


@task(name="shadow", cache_policy=NO_CACHE)
def check_shadow(
    labelled: pd.DataFrame,
    champion: str,
    previous: str | None,
    params: Any,
    objective: Objective,
) -> dict[str, Any]:
    """The champion against the previous one on the same labelled requests."""
    cfg = params.monitor
    return checks.shadow_comparison(
        labelled,
        champion,
        previous,
        cfg.min_labelled_rows,
        cfg.rollback_margin,
        objective,
    )


@task(name="rollback", cache_policy=NO_CACHE)
def roll_back(registry: Any, champion: str, previous: str, shadow: dict[str, Any], cfg: Any) -> str:
    """Point the champion back at the previous one; emit the rollback event."""
    name = shadow["metric"]
    target = registry.rollback(
        reason=(
            f"monitoring: live {shadow['metric_label']} of {champion} "
            f"{shadow[f'champion_{name}']:.4f} trails "
            f"{previous} {shadow[f'previous_{name}']:.4f} by more than {cfg.rollback_margin}"
        )
    )
    get_run_logger().warning("rolled back from %s to %s: %s", champion, target, shadow)
    emit_event(
        ROLLBACK_EVENT,
        resource={"prefect.resource.id": f"churn.model.{champion}"},
        payload={"from": champion, "to": target, "shadow": shadow},
    )
    return target


@task(name="latency-and-errors", cache_policy=NO_CACHE)
def check_service(stats: dict[str, Any], champion: str, end: dt.datetime, cfg: Any) -> list[str]:
    """The API's p99 latency and 4xx/5xx shares in the window against ``monitor``'s limits;
    an alert is its own event (``churn.service.alert``) and never requests retraining."""
    reasons = policy.service_reasons(stats, cfg)
    logger = get_run_logger()
    logger.info(
        "service: %s requests, p50 %s ms, p99 %s ms, 4xx %s, 5xx %s",
        stats["requests"],
        stats["p50_ms"],
        stats["p99_ms"],
        stats["share_4xx"],
        stats["share_5xx"],
    )
    if reasons:
        emit_event(
            SERVICE_EVENT,
            resource={"prefect.resource.id": f"churn.model.{champion}"},
            payload={"reasons": reasons, "window_end": end.isoformat(), "stats": stats},
        )
        logger.warning("SERVICE ALERT (event %s): %s", SERVICE_EVENT, "; ".join(reasons))
    return reasons


@task(name="alert-policy", cache_policy=NO_CACHE)
def decide_alert(*args: Any) -> policy.AlertDecision:
    """Cooldown, episode and retraining request (``tasks.monitor.policy.decide``)."""
    return policy.decide(*args)


@task(name="alert", cache_policy=NO_CACHE)
def raise_alert(
    decision: policy.AlertDecision, reasons: list[str], champion: str, end: dt.datetime
) -> None:
    """Emit the alert event, and the retraining request when the policy says so."""
    logger = get_run_logger()
    resource = {"prefect.resource.id": f"churn.model.{champion}"}
    reason = "; ".join(reasons)[:500]
    emit_event(
        ALERT_EVENT,
        resource=resource,
        payload={
            "reason": reason,
            "model_version": champion,
            "window_end": end.isoformat(),
            "retraining": decision.retraining["note"],
        },
    )
    logger.warning("ALERT (event %s): %s", ALERT_EVENT, "; ".join(reasons))
    if decision.retraining["request"]:
        emit_event(
            RETRAIN_EVENT,
            resource=resource,
            payload={"reason": reason, "model_version": champion, "params": decision.overrides},
        )
        logger.warning("%s (event %s)", decision.retraining["note"], RETRAIN_EVENT)
    else:
        logger.warning("%s", decision.retraining["note"])


def served_problem(params: Params, card: dict[str, Any]) -> Params:
    """``params`` with the serving champion's own ``problem`` section (its card's).

    The served model answers the question it was trained on, whatever ``params.yaml`` asks
    now: a project set up for a regression while its classifier still serves (a new problem
    never replaces the champion) is monitored as the classifier it serves.
    """
    problem = (card.get("params") or {}).get("problem")
    if problem is None:
        return params
    return params.model_copy(update={"problem": ProblemParams.model_validate(problem)})


@flow(name="monitoring", log_prints=True)
def monitoring(
    project_dir: str | None = None, now: str | None = None, window_hours: float | None = None
) -> dict[str, Any]:
    """Check the recent window of predictions; alert, and roll back when the labels say so.

    Parameters
    ----------
    project_dir : str, optional
        The project (default: the folder holding ``dvc.yaml`` above the working directory).
    now : str, optional
        ISO time that ends the window (default: now; the demo passes a simulated clock).
    window_hours : float, optional
        Window length (default: ``monitor.window_hours``).
    """
    logger = get_run_logger()
    root = project_root(project_dir)
    params = load_params(root / PATHS.params)
    cfg = params.monitor
    registry = open_registry(root, params)
    champion = registry.champion()
    if champion is None:
        logger.warning("no champion model yet: nothing to monitor (run `make run` first)")
        return {"verdict": "no champion"}
    params = served_problem(params, champion.card)
    objective = objective_for(params.problem, champion.card.get("classes"))
    end = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.timezone.utc)
    end = end if end.tzinfo else end.replace(tzinfo=dt.timezone.utc)
    start = end - dt.timedelta(hours=window_hours or cfg.window_hours)
    store = open_store(registry_dir(root, params))
    try:
        window = store.window_frame(start, end)
        # ground truth arrives late (the problem's horizon): live performance is judged on the
        # predictions whose labels arrived in the window, whenever they were made
        labelled = store.window_frame(start, end, by="labelled_at")
        service = store.request_stats(start, end)
        expired = store.expire(end - dt.timedelta(days=cfg.log_retention_days))
        if any(expired.values()):
            logger.info(
                "prediction log retention (%d days): removed %s", cfg.log_retention_days, expired
            )
    finally:
        store.close()
    logger.info(
        "window %s to %s: %d predictions, %d labels arrived",
        start.isoformat(),
        end.isoformat(),
        len(window),
        len(labelled),
    )

    served = labelled[labelled["model_version"] == champion.version] if len(labelled) else labelled
    model = functools.cache(lambda: registry.load(champion))  # multiclass only: see below
    window, served = (  # each class's probability, when the log keeps the top one only
        checks.with_class_scores(frame, model, champion.card, objective)
        for frame in (window, served)
    )
    drift_result = check_drift(window, champion, cfg, end, objective)
    drifted = drift_result.summary if drift_result else None
    perf = check_live_performance(served, champion, params, objective)
    estimated = check_estimated_performance(window, served, champion, params, objective)
    quality = check_input_quality(window, root, params)
    previous = registry.aliases().get("previous_champion")
    shadow = check_shadow(labelled, champion.version, previous, params, objective)
    unseen = check_unseen_categories(window, champion)
    reasons = policy.alert_reasons(drifted, perf, len(window), cfg, quality, unseen, estimated)
    service["alerts"] = check_service(service, champion.version, end, cfg)

    out_dir = root / cfg.workspace_dir
    stamp = end.strftime("%Y%m%dT%H%M%SZ")
    html = out_dir / MONITORING_REPORTS / f"{stamp}.html"
    if drift_result is not None:
        write_text(html, evidently_html(drift_result.snapshot))  # data never becomes markup
    summary: dict[str, Any] = {
        "model_version": champion.version,
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "rows": int(len(window))},
        "policy": cfg.model_dump(),
        "drift": drifted,
        "live_performance": perf,
        "estimated_performance": estimated,
        "input_quality": quality,
        "unseen_categories": unseen,
        "shadow": shadow,
        "service": service,
        "reasons": reasons,
        "alert": False,
        "retraining": None,
        "rolled_back_to": None,
        "report_html": str(html.relative_to(root)) if drift_result is not None else None,
    }
    if shadow["rollback"]:
        summary["rolled_back_to"] = roll_back(registry, champion.version, previous, shadow, cfg)

    state_file = out_dir / "alert_state.json"
    decision = decide_alert(
        reasons,
        read_json(state_file) if state_file.exists() else {},
        start,
        end,
        len(window),
        served,
        perf["evaluated"],
        champion.version,
        params.problem.label_delay_days or 0,
        params.collect.window is not None,
        cfg,
    )
    summary.update(alert=decision.alert, retraining=decision.retraining, verdict=decision.verdict)
    if decision.state is not None:
        write_json(state_file, decision.state)
    if decision.alert:
        raise_alert(decision, reasons, champion.version, end)
    elif reasons:
        logger.warning("%s; reasons: %s", decision.verdict, "; ".join(reasons))
    write_json(out_dir / MONITORING_REPORTS / f"{stamp}.json", summary)

    if drift_result is not None or perf["evaluated"]:
        ws, project = evidently_project(out_dir / "evidently", params.problem.type)
        if drift_result is not None:
            ws.add_run(project.id, drift_result.snapshot, include_data=False)
        if estimated["evaluated"]:
            ws.add_run(project.id, estimate.estimate_snapshot(estimated, end), include_data=False)
        if perf["evaluated"]:
            with_labels = served[served["label"].notna()]
            ws.add_run(
                project.id,
                checks.performance_snapshot(with_labels, end, params.problem.type),
                include_data=False,
            )
    create_markdown_artifact(
        key="monitoring",
        markdown=_markdown(summary),
        description="Drift, live performance, input quality and the alert decision",
    )
    logger.info("%s", summary["verdict"])
    return summary


def main(argv: list[str]) -> int:
    """Command line: ``python -m flows.monitoring [--now ISO-TIME]``."""
    telemetry_off()
    now = argv[argv.index("--now") + 1] if "--now" in argv else None
    summary = monitoring(now=now)
    print(
        json.dumps(
            {
                k: summary.get(k)
                for k in (
                    "verdict",
                    "model_version",
                    "window",
                    "reasons",
                    "rolled_back_to",
                    "report_html",
                )
            },
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
