"""The monitoring flow: drift, live performance and input quality of the serving model.

Scheduled by ``make deploy`` (``monitor.cron``), or ``python -m flows.monitoring``. Each run
takes the recent window of logged predictions and compares it with the champion's reference
sample (Evidently), scores the predictions whose ground truth arrived in the window against
the KPI floors (labels come late: they may belong to older predictions), checks the inputs
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
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.common import project_root
from tasks import monitor
from tasks.core.config import load_params
from tasks.core.env import telemetry_off
from tasks.core.io import read_json, write_json, write_text
from tasks.core.paths import MONITORING_REPORTS, PATHS
from tasks.core.serving.registry import open_registry, registry_dir
from tasks.core.serving.store import PredictionStore, store_url

ALERT_EVENT = "churn.monitoring.alert"
ROLLBACK_EVENT = "churn.model.rolled-back"
RETRAIN_EVENT = "churn.retrain.requested"
EVIDENTLY_PROJECT = "churn monitoring"


def evidently_project(workspace_dir: Path) -> tuple[Any, Any]:
    """The Evidently workspace and its monitoring project, with the dashboard, made once."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(workspace_dir))
    found = ws.search_project(EVIDENTLY_PROJECT)
    if found:
        return ws, found[0]
    project = ws.create_project(
        EVIDENTLY_PROJECT, description="Drift and live performance of the champion"
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Share of drifted features",
            [
                PanelMetric(
                    legend="drift share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
            size="half",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Drifted features",
            [
                PanelMetric(
                    legend="count",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "count"},
                )
            ],
            size="half",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Live ROC-AUC (labelled requests)",
            [PanelMetric(legend="ROC-AUC", metric="RocAuc")],
            size="half",
        )
    )
    project.dashboard.add_panel(
        line_plot_panel(
            "Prediction mean",
            [
                PanelMetric(
                    legend="mean score",
                    metric="MeanValue",
                    metric_labels={"column": monitor.PREDICTION},
                )
            ],
            size="half",
        )
    )
    return ws, project


def _cooldown(state: dict[str, Any], now: dt.datetime, hours: float) -> dt.datetime | None:
    """When the cooldown of the last alert ends, if it has not ended yet."""
    if not state.get("last_alert_at"):
        return None
    until = dt.datetime.fromisoformat(state["last_alert_at"]) + dt.timedelta(hours=hours)
    return until if now < until else None


def _onset(reasons: list[str], window_start: dt.datetime, labelled: pd.DataFrame) -> dt.datetime:
    """When the trouble shows in the predictions: the window's start for drift or input
    quality; for live performance, when the labelled predictions were made (weeks earlier,
    as labels come late). The earliest of the reasons' onsets."""
    if not any(r.startswith("live performance") for r in reasons) or labelled.empty:
        return window_start
    made = pd.to_datetime(labelled["created_at"], utc=True).min().to_pydatetime()
    return min(made, window_start)


def _markdown(summary: dict[str, Any]) -> str:
    drift = summary.get("drift") or {}
    perf = summary["live_performance"]
    lines = [
        f"# Monitoring: {summary['verdict']}",
        "",
        f"- model: `{summary['model_version']}`; window {summary['window']['start']} to "
        f"{summary['window']['end']}: {summary['window']['rows']} predictions",
        f"- drift share: {drift.get('drift_share', '-')} (alert at "
        f"{summary['policy']['drift_share_alert']}); "
        f"drifted: {', '.join(drift.get('drifted_columns', [])) or 'none'}",
        f"- prediction drift: {drift.get('prediction_drift', '-')}; mean score "
        f"{(drift.get('prediction_mean') or {}).get('current', '-')} vs reference "
        f"{(drift.get('prediction_mean') or {}).get('reference', '-')}",
        f"- live performance: {perf['labelled_rows']} labelled requests; "
        + (
            f"ROC-AUC {perf['roc_auc']:.4f}, PR-AUC {perf['pr_auc']:.4f}"
            if perf["evaluated"]
            else perf["note"]
        ),
        f"- input quality: {summary['input_quality']['checks']} checks, "
        f"{len(summary['input_quality']['failed'])} failed",
        f"- shadow: {summary['shadow'].get('note') or summary['shadow']}",
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
    end = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.timezone.utc)
    end = end if end.tzinfo else end.replace(tzinfo=dt.timezone.utc)
    start = end - dt.timedelta(hours=window_hours or cfg.window_hours)
    store = PredictionStore(store_url(registry_dir(root, params)))
    try:
        window = monitor.window_frame(store.window(start, end))
        # ground truth arrives late (the problem's horizon): live performance is judged on the
        # predictions whose labels arrived in the window, whenever they were made
        labelled = monitor.window_frame(store.window(start, end, by="labelled_at"))
    finally:
        store.close()
    logger.info(
        "window %s to %s: %d predictions, %d labels arrived",
        start.isoformat(),
        end.isoformat(),
        len(window),
        len(labelled),
    )

    card = champion.card
    drift_result = None
    if len(window):
        current = window.rename(columns={"score": monitor.PREDICTION})
        drift_result = monitor.drift_check(
            champion.reference(),
            current,
            card["numeric_features"],
            card["categorical_features"],
            cfg,
            timestamp=end,
        )
    drift = drift_result.summary if drift_result else None
    kpis = params.problem.kpis
    served = labelled[labelled["model_version"] == champion.version] if len(labelled) else labelled
    perf = monitor.live_performance(
        served,
        {"roc_auc": kpis.roc_auc_min, "pr_auc": kpis.pr_auc_min},
        cfg.min_labelled_rows,
        (card.get("metrics") or {}).get("test", {}).get("roc_auc"),
        cfg.max_roc_auc_drop,
    )
    from tasks.core.quality.suites import suite_path_for
    from tasks.core.quality.validation import read_suite_file

    suite = read_suite_file(root / suite_path_for(params.clean, params.collect))
    quality = monitor.input_quality(window, suite, cfg)
    previous = registry.aliases().get("previous_champion")
    shadow = monitor.shadow_comparison(
        labelled, champion.version, previous, cfg.min_labelled_rows, cfg.rollback_margin
    )
    unseen = monitor.unseen_categories(window, champion.schema(), card["categorical_features"])
    reasons = monitor.alert_reasons(drift, perf, len(window), cfg, quality, unseen)

    out_dir = root / cfg.workspace_dir
    stamp = end.strftime("%Y%m%dT%H%M%SZ")
    html = out_dir / MONITORING_REPORTS / f"{stamp}.html"
    if drift_result is not None:
        write_text(html, drift_result.snapshot.get_html_str(as_iframe=False))
    summary: dict[str, Any] = {
        "model_version": champion.version,
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "rows": int(len(window))},
        "policy": cfg.model_dump(),
        "drift": drift,
        "live_performance": perf,
        "input_quality": quality,
        "unseen_categories": unseen,
        "shadow": shadow,
        "reasons": reasons,
        "alert": False,
        "retraining": None,
        "rolled_back_to": None,
        "report_html": str(html.relative_to(root)) if drift_result is not None else None,
    }

    if shadow["rollback"]:
        target = registry.rollback(
            reason=(
                f"monitoring: live ROC-AUC of {champion.version} "
                f"{shadow['champion_roc_auc']:.4f} trails {previous} "
                f"{shadow['previous_roc_auc']:.4f} by more than {cfg.rollback_margin}"
            )
        )
        summary["rolled_back_to"] = target
        logger.warning("rolled back from %s to %s: %s", champion.version, target, shadow)
        emit_event(
            ROLLBACK_EVENT,
            resource={"prefect.resource.id": f"churn.model.{champion.version}"},
            payload={"from": champion.version, "to": target, "shadow": shadow},
        )

    state_file = out_dir / "alert_state.json"
    state = read_json(state_file) if state_file.exists() else {}
    small = len(window) < cfg.min_window_rows
    if reasons:
        until = _cooldown(state, end, cfg.cooldown_hours)
        if until is not None:
            summary["verdict"] = (
                f"alert suppressed: cooldown of the last alert until {until.isoformat()}"
            )
            logger.warning("%s; reasons: %s", summary["verdict"], "; ".join(reasons))
        else:
            onset = _onset(reasons, start, served)
            episode, decision = monitor.retrain_request(
                state.get("episode"),
                champion.version,
                onset,
                end,
                params.problem.label_delay_days,
                cfg,
            )
            overrides = (
                {
                    "collect.window.start": decision["window"]["start"],
                    "collect.window.end": decision["window"]["end"],
                }
                if params.collect.window is not None
                else {}
            )
            summary.update(
                alert=True,
                retraining=decision,
                verdict="ALERT: "
                + (
                    "retraining requested" if decision["request"] else "retraining waits for labels"
                ),
            )
            write_json(
                state_file,
                {"last_alert_at": end.isoformat(), "reasons": reasons, "episode": episode},
            )
            resource = {"prefect.resource.id": f"churn.model.{champion.version}"}
            reason = "; ".join(reasons)[:500]
            emit_event(
                ALERT_EVENT,
                resource=resource,
                payload={
                    "reason": reason,
                    "model_version": champion.version,
                    "window_end": end.isoformat(),
                    "retraining": decision["note"],
                },
            )
            logger.warning("ALERT (event %s): %s", ALERT_EVENT, "; ".join(reasons))
            if decision["request"]:
                emit_event(
                    RETRAIN_EVENT,
                    resource=resource,
                    payload={
                        "reason": reason,
                        "model_version": champion.version,
                        "params": overrides,
                    },
                )
                logger.warning("%s (event %s)", decision["note"], RETRAIN_EVENT)
            else:
                logger.warning("%s", decision["note"])
    elif small:
        summary["verdict"] = (
            f"ok so far: window too small to judge drift ({len(window)} < "
            f"{cfg.min_window_rows} predictions)"
            + ("; KPIs met" if perf["evaluated"] else "; KPIs not judged yet")
        )
    else:
        summary["verdict"] = (
            "ok: no drift, KPIs met" if perf["evaluated"] else "ok: no drift (KPIs not judged yet)"
        )
    write_json(out_dir / MONITORING_REPORTS / f"{stamp}.json", summary)

    if drift_result is not None or perf["evaluated"]:
        ws, project = evidently_project(out_dir / "evidently")
        if drift_result is not None:
            ws.add_run(project.id, drift_result.snapshot, include_data=False)
        if perf["evaluated"]:
            with_labels = served[served["label"].notna()]
            ws.add_run(
                project.id, monitor.performance_snapshot(with_labels, end), include_data=False
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
