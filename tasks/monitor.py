"""Step 10, monitoring: is the serving model still seeing the data it was trained on?

Pure functions over frames; the monitoring flow does the I/O. Drift is measured with
Evidently as the *size* of a shift (normed Wasserstein distance for numbers, Jensen-Shannon
distance for categories, thresholds in ``params.yaml`` section ``monitor``), never with
p-value tests: on a window of a million rows a p-value test flags shifts too small to
matter. Windows above ``monitor.max_window_rows`` are sampled, which keeps a check of any
window size well under a minute and changes a distance by sampling noise only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import MonitorParams

PREDICTION = "prediction"


@dataclass
class DriftResult:
    """An Evidently snapshot (for HTML and the workspace) and its summary."""

    snapshot: Any
    summary: dict[str, Any]


def window_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Logged predictions (store rows) as a frame: their model inputs, score and label."""
    if not rows:
        return pd.DataFrame()
    features = pd.DataFrame.from_records([json.loads(r["features"]) for r in rows])
    meta = pd.DataFrame.from_records(
        [
            {
                k: r[k]
                for k in (
                    "request_id",
                    "created_at",
                    "model_version",
                    "score",
                    "label",
                    "shadow_version",
                    "shadow_score",
                )
            }
            for r in rows
        ]
    )
    return pd.concat([features, meta], axis=1)


def _sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    return frame.sample(limit, random_state=seed) if len(frame) > limit else frame


NOISE_ROUNDS, NOISE_MARGIN = 50, 1.25


def prediction_noise_floor(reference: np.ndarray, n: int, cfg: MonitorParams) -> float | None:
    """The normed Wasserstein distance that sampling alone produces (a window of ``n`` rows).

    The prediction is the one column that alerts on its own, so it must not alert on noise:
    on a small window (the minimum is ``monitor.min_window_rows``) a distance of 0.1 is
    within chance. This draws ``NOISE_ROUNDS`` windows of ``n`` from the reference, takes
    the largest distance, scales it for the reference's own sampling error
    (``sqrt(1 + n/m)``) and adds a 25% margin. The prediction drifts only above both this
    floor and ``monitor.prediction_drift_threshold``. None for methods other than Wasserstein.
    """
    from scipy.stats import wasserstein_distance

    reference = reference[np.isfinite(reference)]
    spread = float(np.std(reference)) if reference.size else 0.0
    if cfg.num_method != "wasserstein" or n < 1 or spread == 0.0:
        return None
    rng = np.random.default_rng(cfg.random_state)
    largest = max(
        wasserstein_distance(reference, rng.choice(reference, n, replace=True)) / spread
        for _ in range(NOISE_ROUNDS)
    )
    return float(largest * NOISE_MARGIN * np.sqrt(1 + n / reference.size))


def drift_check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    cfg: MonitorParams,
    timestamp: dt.datetime | None = None,
) -> DriftResult:
    """Per-feature and prediction drift of ``current`` against ``reference``.

    Both frames hold the model's input columns and a ``prediction`` column (the score).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue
    from evidently.presets import DataDriftPreset

    numeric = [c for c in numeric if c in reference and c in current]
    categorical = [c for c in categorical if c in reference and c in current]
    # a (near-)constant column has no distribution to compare (and breaks histograms):
    # it drifts only if its constant value moves
    constant: dict[str, float] = {}
    for c in list(numeric):
        both = pd.concat([reference[c], current[c]]).dropna().to_numpy(dtype=float)
        if both.size and np.ptp(both) <= 1e-9 * max(1.0, float(np.abs(both).max())):
            numeric.remove(c)
            constant[c] = 0.0
        elif both.size:
            ref_c, cur_c = reference[c].dropna(), current[c].dropna()
            if (
                ref_c.size
                and cur_c.size
                and np.ptp(ref_c) <= 1e-9 * max(1.0, float(np.abs(ref_c).max()))
            ):
                numeric.remove(c)
                constant[c] = 1.0  # constant in training, varies now: a drift by definition
    columns = [*numeric, *categorical, PREDICTION]
    ref = _sample(reference[columns], cfg.max_window_rows, cfg.random_state)
    cur = _sample(current[columns], cfg.max_window_rows, cfg.random_state + 1)
    for c in categorical:  # one category type on both sides, missing as its own value
        ref[c] = ref[c].astype("string").fillna("(missing)")
        cur[c] = cur[c].astype("string").fillna("(missing)")
    definition = DataDefinition(
        numerical_columns=[*numeric, PREDICTION], categorical_columns=categorical
    )
    noise = prediction_noise_floor(ref[PREDICTION].to_numpy(dtype=float), len(cur), cfg)
    thresholds = {
        **{c: cfg.drift_threshold for c in numeric + categorical},
        PREDICTION: max(cfg.prediction_drift_threshold, noise or 0.0),
    }
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                num_method=cfg.num_method,
                cat_method=cfg.cat_method,
                per_column_threshold=thresholds,
                drift_share=cfg.drift_share_alert,
            ),
            MeanValue(column=PREDICTION),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
        timestamp=timestamp,
        name="drift",
    )
    distances: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config") or {}
        if config.get("type", "").endswith("ValueDrift"):
            distances[config["column"]] = float(metric["value"])
    distances.update(constant)
    thresholds.update({c: cfg.drift_threshold for c in constant})
    features = [c for c in distances if c != PREDICTION]
    drifted = sorted(c for c in features if distances[c] >= thresholds[c])
    summary = {
        "rows_reference": int(len(reference)),
        "rows_current": int(len(current)),
        "rows_compared": {"reference": int(len(ref)), "current": int(len(cur))},
        "sampled": bool(len(current) > cfg.max_window_rows or len(reference) > cfg.max_window_rows),
        "methods": {"numeric": cfg.num_method, "categorical": cfg.cat_method},
        "drift_share": round(len(drifted) / max(len(features), 1), 4),
        "drifted_columns": drifted,
        "distances": {c: round(v, 5) for c, v in sorted(distances.items())},
        "prediction_drift": round(distances.get(PREDICTION, float("nan")), 5),
        "prediction_drifted": bool(distances.get(PREDICTION, 0.0) >= thresholds[PREDICTION]),
        "prediction_threshold": round(thresholds[PREDICTION], 5),
        "prediction_noise_floor": None if noise is None else round(noise, 5),
        "prediction_mean": {
            "reference": float(np.mean(ref[PREDICTION])),
            "current": float(np.mean(cur[PREDICTION])),
        },
    }
    return DriftResult(snapshot, summary)


def live_performance(
    window: pd.DataFrame,
    floors: dict[str, float],
    min_rows: int,
    test_roc_auc: float | None = None,
    max_drop: float | None = None,
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC on the labelled requests of the window, against the KPI floors.

    Counts only rows whose ground truth has arrived, and says how many. With the champion's
    ``test_roc_auc`` and ``max_drop``, a live ROC-AUC that far below the sealed test set's is
    named too: the world changed under the model (concept drift) even above the floor.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labelled = window[window["label"].notna()] if "label" in window else window.iloc[0:0]
    out: dict[str, Any] = {
        "labelled_rows": int(len(labelled)),
        "window_rows": int(len(window)),
        "min_labelled_rows": min_rows,
        "evaluated": False,
        "below_floor": [],
    }
    y = labelled["label"].astype(int).to_numpy() if len(labelled) else np.array([], dtype=int)
    if len(labelled) < min_rows or len(np.unique(y)) < 2:
        out["note"] = (
            f"{len(labelled)} labelled rows (need {min_rows} with both classes): "
            "live performance not judged"
        )
        return out
    scores = labelled["score"].to_numpy(dtype=float)
    out.update(
        evaluated=True,
        roc_auc=float(roc_auc_score(y, scores)),
        pr_auc=float(average_precision_score(y, scores)),
    )
    out["below_floor"] = [
        f"{m} {out[m]:.4f} < floor {floor}"
        for m, floor in floors.items()
        if m in out and out[m] < floor
    ]
    if test_roc_auc is not None and max_drop is not None:
        out["test_roc_auc"] = float(test_roc_auc)
        if test_roc_auc - out["roc_auc"] >= max_drop:
            out["below_floor"].append(
                f"roc_auc {out['roc_auc']:.4f} is {test_roc_auc - out['roc_auc']:.4f} below the "
                f"champion's test ROC-AUC {test_roc_auc:.4f} (alert at a drop of {max_drop})"
            )
    return out


def unseen_categories(
    window: pd.DataFrame, schema: dict[str, Any], categorical: list[str], shown: int = 10
) -> dict[str, dict[str, Any]]:
    """Categories in the window that the serving model's training data never had.

    The model reads them as "unknown" (all zeros after one-hot encoding): valid data, perhaps
    (the suite may accept them), but something only retraining on labelled rows can learn.
    Returns, per column with any, the values (most frequent first) and the share of rows.
    """
    out = {}
    columns = schema.get("columns") or {}
    for column in categorical:
        known = (columns.get(column) or {}).get("categories")
        if column not in window or known is None or window.empty:
            continue
        values = window[column].dropna().astype(str)
        new = values[~values.isin({str(k) for k in known})]
        if len(new):
            out[column] = {
                "values": new.value_counts().index[:shown].tolist(),
                "share": round(len(new) / len(window), 4),
            }
    return out


def alert_reasons(
    drift: dict[str, Any] | None,
    performance: dict[str, Any],
    window_rows: int,
    cfg: MonitorParams,
    quality: dict[str, Any] | None = None,
    unseen: dict[str, dict[str, Any]] | None = None,
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
    if performance.get("evaluated"):
        reasons += [f"live performance: {r}" for r in performance.get("below_floor", [])]
    return reasons


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


def performance_snapshot(labelled: pd.DataFrame, timestamp: dt.datetime | None = None) -> Any:
    """An Evidently snapshot of live ROC-AUC on the labelled requests (for the dashboard)."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc

    frame = pd.DataFrame(
        {"label": labelled["label"].astype(int), "score": labelled["score"].astype(float)}
    )
    definition = DataDefinition(
        numerical_columns=["score"],
        classification=[
            BinaryClassification(target="label", prediction_probas="score", pos_label=1)
        ],
    )
    return Report([RocAuc()]).run(
        Dataset.from_pandas(frame, data_definition=definition),
        None,
        timestamp=timestamp,
        name="live performance",
    )


def shadow_comparison(
    window: pd.DataFrame, champion: str, previous: str | None, min_rows: int, margin: float
) -> dict[str, Any]:
    """Champion against the previous champion scored in shadow, on the same labelled requests.

    ``rollback`` is True when the labels show the champion's ROC-AUC below the previous
    one's by more than ``margin``.
    """
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {"champion": champion, "previous": previous, "rollback": False}
    if previous is None or window.empty or "shadow_version" not in window:
        out["note"] = "no previous champion scored in shadow"
        return out
    rows = window[
        (window["model_version"] == champion)
        & (window["shadow_version"] == previous)
        & window["label"].notna()
        & window["shadow_score"].notna()
    ]
    out["labelled_rows"] = int(len(rows))
    y = rows["label"].astype(int).to_numpy()
    if len(rows) < min_rows or len(np.unique(y)) < 2:
        out["note"] = f"{len(rows)} labelled rows with a shadow score (need {min_rows}): not judged"
        return out
    out["champion_roc_auc"] = float(roc_auc_score(y, rows["score"].to_numpy(dtype=float)))
    out["previous_roc_auc"] = float(roc_auc_score(y, rows["shadow_score"].to_numpy(dtype=float)))
    out["difference"] = out["champion_roc_auc"] - out["previous_roc_auc"]
    out["rollback"] = bool(out["difference"] < -margin)
    return out


QUALITY_TYPES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
)


def input_quality(window: pd.DataFrame, spec: dict[str, Any], cfg: MonitorParams) -> dict[str, Any]:
    """The training data-quality suite's column checks (nulls, ranges, allowed sets) on the window.

    Only the checks whose column the model receives are run (the window holds model inputs,
    not raw rows: table-shape and id checks do not apply). Windows above
    ``max_window_rows`` are sampled, like drift.
    """
    from tasks.core.quality.validation import validate_frame

    kept = [
        e
        for e in spec.get("expectations", [])
        if e.get("type") in QUALITY_TYPES
        and (e.get("kwargs") or {}).get("column") in window.columns
    ]
    if window.empty or not kept:
        return {
            "checks": 0,
            "failed": [],
            "note": "no applicable checks" if not kept else "empty window",
        }
    sub = {**spec, "expectations": kept, "name": f"{spec.get('name', 'suite')}-monitoring"}
    results = validate_frame(
        _sample(window, cfg.max_window_rows, cfg.random_state).reset_index(drop=True),
        sub,
        "monitoring-window",
    )
    failed = [f"{r.expectation}({r.column}): {r.observed}" for r in results if not r.success]
    out: dict[str, Any] = {"checks": len(results), "failed": failed}
    broken = {
        r.column
        for r in results
        if not r.success and r.expectation == "expect_column_values_to_be_in_set"
    }
    new_values = {}
    for e in kept:
        column = e["kwargs"]["column"]
        if e["type"] == "expect_column_values_to_be_in_set" and column in broken:
            allowed = {str(v) for v in e["kwargs"].get("value_set") or []}
            seen = window[column].dropna().astype(str).value_counts()
            new_values[column] = [v for v in seen.index if v not in allowed][:20]
    if new_values:
        out["new_values"] = new_values
        out["hint"] = (
            "values the training suite does not allow: "
            + "; ".join(f"{c}: {', '.join(v)}" for c, v in new_values.items())
            + ". Retraining refuses them at the clean step until they are accepted. "
            "If they are legitimate, "
            "accept them and commit the suite: python -m tasks.suites accept <column> <value>..."
        )
    return out
