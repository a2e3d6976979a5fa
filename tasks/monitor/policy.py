"""The alert policy: which findings alert, the cooldown, the episode, when to retrain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.core.config import MonitorParams


def alert_reasons(
    drift: dict[str, Any] | None,
    performance: dict[str, Any],
    window_rows: int,
    cfg: MonitorParams,
    quality: dict[str, Any] | None = None,
    unseen: dict[str, dict[str, Any]] | None = None,
    estimated: dict[str, Any] | None = None,
) -> list[str]:
    """Why this window calls for retraining (empty: no alert).

    Drift and input quality are judged only on windows of at least ``min_window_rows``
    predictions; live performance only on ``min_labelled_rows`` arrived labels.
    """
    reasons = []
    if window_rows >= cfg.min_window_rows:
        if drift and drift["drift_share"] >= cfg.drift_share_alert:
            reasons.append(
                f"data drift: {drift['drift_share']:.0%} of features drifted (alert at "
                f"{cfg.drift_share_alert:.0%}): {', '.join(drift['drifted_columns'])}"
            )
        if drift and drift["prediction_drifted"]:
            reasons.append(
                f"prediction drift: distance {drift['prediction_drift']:.3f} >= "
                f"{drift.get('prediction_threshold', cfg.prediction_drift_threshold):.3f}"
            )
        reasons += [f"input quality: {r}" for r in (quality or {}).get("failed", [])]
        reasons += [
            f"unseen categories: {column} has {', '.join(u['values'])} in {u['share']:.1%} of rows "
            "(the serving model never saw them)"
            for column, u in (unseen or {}).items()
            if u["share"] >= cfg.unseen_share_alert
        ]
        reasons += [f"estimated performance: {r}" for r in (estimated or {}).get("reasons", [])]
    if performance.get("evaluated"):
        reasons += [f"live performance: {r}" for r in performance.get("below_floor", [])]
    return reasons


def service_reasons(stats: dict[str, Any], cfg: MonitorParams) -> list[str]:
    """Why the API's latency or error rate calls for a person (empty: no alert).

    Judged on windows of at least ``min_window_requests`` requests to ``/predict`` and
    ``/feedback``. These never request retraining: a new model does not fix a slow server.
    """
    n = stats.get("requests") or 0
    if n < cfg.min_window_requests:
        return []
    out = []
    p99 = stats.get("p99_ms")
    if p99 is not None and p99 > cfg.max_p99_latency_ms:
        out.append(
            f"latency: p99 {p99:.1f} ms over {stats.get('timed_requests', n)} single-record "
            f"predictions (alert above {cfg.max_p99_latency_ms:g} ms)"
        )
    if (stats.get("share_5xx") or 0) > cfg.max_5xx_share:
        out.append(
            f"server errors: {stats['share_5xx']:.1%} of {n} requests answered 5xx (alert above "
            f"{cfg.max_5xx_share:.1%}): {stats['by_status']}"
        )
    if (stats.get("share_4xx") or 0) > cfg.max_4xx_share:
        out.append(
            f"client errors: {stats['share_4xx']:.1%} of {n} requests answered 4xx (alert above "
            f"{cfg.max_4xx_share:.1%}; a client sending records the model cannot read?): "
            f"{stats['by_status']}"
        )
    return out


def retrain_request(
    episode: dict[str, Any] | None,
    champion: str,
    onset: dt.datetime,
    now: dt.datetime,
    label_delay_days: float,
    cfg: MonitorParams,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Whether an alert should start a retraining now, given how late the labels come.

    An *episode* is the run of alerts on one champion; ``onset`` is when the trouble shows
    in its predictions (the window's start for drift, the labelled predictions' time for
    live performance). Labels of time ``t`` arrive at ``t + label_delay_days``, so a
    retraining learns nothing about the alerting period before then: it is requested once
    ``monitor.min_drifted_label_days`` of them exist, and again each time as many more have
    arrived while the alerts go on. It collects ``monitor.retrain_window_days`` of labelled
    data ending at the newest label.

    Returns
    -------
    (episode, decision)
        The updated episode to store, and ``request`` (bool), ``labelled_days``,
        ``window`` (ISO dates) and ``note``.
    """
    if not episode or episode.get("model_version") != champion:
        episode = {
            "model_version": champion,
            "onset": onset.isoformat(),
            "last_request_through": None,
        }
    elif onset < dt.datetime.fromisoformat(episode["onset"]):
        # an alert whose trouble started earlier (live performance judges predictions made
        # label_delay_days ago) moves the episode's onset back: its labels are due sooner
        episode = {**episode, "onset": onset.isoformat()}
    start = dt.datetime.fromisoformat(episode["onset"])
    through = now - dt.timedelta(days=label_delay_days)
    need = cfg.min_drifted_label_days
    labelled_days = max((through - start).total_seconds() / 86400, 0.0)
    last = episode.get("last_request_through")
    due = (
        start + dt.timedelta(days=need)
        if last is None
        else dt.datetime.fromisoformat(last) + dt.timedelta(days=need)
    )
    request = through >= due
    window = {
        "start": (through - dt.timedelta(days=cfg.retrain_window_days - 1)).date().isoformat(),
        "end": through.date().isoformat(),
    }
    if request:
        episode = {**episode, "last_request_through": through.isoformat()}
        note = (
            f"retraining requested: labels cover {labelled_days:.1f} day(s) of the alerting period "
            f"(since {start.date()}); it collects {window['start']} to {window['end']}"
        )
    else:
        note = (
            f"retraining waits for labels: they cover {labelled_days:.1f} of the "
            f"{need:g} day(s) of the alerting period it needs (since {start.date()}); "
            f"due when labels through {due.date()} have arrived, around "
            f"{(due + dt.timedelta(days=label_delay_days)).date()}"
        )
    return episode, {
        "request": bool(request),
        "labelled_days": round(labelled_days, 2),
        "window": window,
        "note": note,
    }


def cooldown_until(state: dict[str, Any], now: dt.datetime, hours: float) -> dt.datetime | None:
    """When the cooldown of the last alert ends, if it has not ended yet."""
    if not state.get("last_alert_at"):
        return None
    until = dt.datetime.fromisoformat(state["last_alert_at"]) + dt.timedelta(hours=hours)
    return until if now < until else None


def onset(reasons: list[str], window_start: dt.datetime, labelled: pd.DataFrame) -> dt.datetime:
    """When the trouble shows in the predictions: the window's start for drift or input
    quality; for live performance, when the labelled predictions were made (weeks earlier,
    as labels come late). The earliest of the reasons' onsets."""
    if not any(r.startswith("live performance") for r in reasons) or labelled.empty:
        return window_start
    made = pd.to_datetime(labelled["created_at"], utc=True).min().to_pydatetime()
    return min(made, window_start)


@dataclass(frozen=True)
class AlertDecision:
    """What the monitoring flow does with a window's findings.

    ``alert``: emit the alert event; ``retraining``: the episode's decision (its
    ``request`` says whether to emit the retraining request, with ``overrides`` as the run's
    params); ``state``: the alert state to keep (None: leave it as it is).
    """

    alert: bool
    verdict: str
    retraining: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None


def decide(
    reasons: list[str],
    state: dict[str, Any],
    window_start: dt.datetime,
    now: dt.datetime,
    window_rows: int,
    labelled: pd.DataFrame,
    kpis_judged: bool,
    champion: str,
    label_delay_days: float,
    has_collect_window: bool,
    cfg: MonitorParams,
) -> AlertDecision:
    """The alert policy over one window: cooldown, episode, retraining request, verdict."""
    if not reasons:
        if window_rows < cfg.min_window_rows:
            return AlertDecision(
                False,
                f"ok so far: window too small to judge drift ({window_rows} < "
                f"{cfg.min_window_rows} predictions)"
                + ("; KPIs met" if kpis_judged else "; KPIs not judged yet"),
            )
        return AlertDecision(
            False, "ok: no drift, KPIs met" if kpis_judged else "ok: no drift (KPIs not judged yet)"
        )
    until = cooldown_until(state, now, cfg.cooldown_hours)
    if until is not None:
        return AlertDecision(
            False, f"alert suppressed: cooldown of the last alert until {until.isoformat()}"
        )
    episode, decision = retrain_request(
        state.get("episode"),
        champion,
        onset(reasons, window_start, labelled),
        now,
        label_delay_days,
        cfg,
    )
    overrides = (
        {
            "collect.window.start": decision["window"]["start"],
            "collect.window.end": decision["window"]["end"],
        }
        if has_collect_window
        else {}
    )
    verdict = "ALERT: " + (
        "retraining requested" if decision["request"] else "retraining waits for labels"
    )
    return AlertDecision(
        True,
        verdict,
        decision,
        overrides,
        {"last_alert_at": now.isoformat(), "reasons": reasons, "episode": episode},
    )
