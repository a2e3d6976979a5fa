"""Live performance, input quality, unseen categories and the shadow comparison."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import MonitorParams
from tasks.core.ml.objective import Objective, objective_for
from tasks.monitor.drift import sample_rows


def with_class_scores(
    frame: pd.DataFrame, load_model: Any, card: dict[str, Any], objective: Objective
) -> pd.DataFrame:
    """Logged predictions with every score the metrics need: as logged, unless the log
    keeps only part of it (multiclass: each class's probability is recomputed by the model,
    ``load_model()``, from the logged inputs: the same model on the same inputs gives the
    probabilities it served)."""
    if objective.LOG_HOLDS_SCORES or frame.empty:
        return frame
    from tasks.core.ml.models import model_matrix

    X = model_matrix(frame, card["numeric_features"], card["categorical_features"])
    return frame.assign(**objective.score_columns(objective.scores(load_model(), X)))


def live_performance(
    window: pd.DataFrame,
    floors: dict[str, float],
    min_rows: int,
    test_roc_auc: float | None = None,
    max_drop: float | None = None,
    objective: Objective | None = None,
) -> dict[str, Any]:
    """The objective's summary metrics (ROC-AUC and PR-AUC) on the labelled requests of the
    window, against the KPI floors.

    Counts only rows whose ground truth has arrived, and says how many. With the champion's
    ``test_roc_auc`` and ``max_drop``, a live figure that far below the sealed test set's is
    named too (on the metric slices are judged by): the world changed under the model
    (concept drift) even above the floor. ``objective``: binary when not given.
    """
    objective = objective or objective_for(None)
    judged = objective.metric(objective.FLOOR_METRIC)
    labelled = window[window["label"].notna()] if "label" in window else window.iloc[0:0]
    out: dict[str, Any] = {
        "labelled_rows": int(len(labelled)),
        "window_rows": int(len(window)),
        "min_labelled_rows": min_rows,
        "evaluated": False,
        "below_floor": [],
    }
    y = objective.labels(labelled["label"]) if len(labelled) else np.array([], dtype=int)
    if len(labelled) < min_rows or not objective.judgeable(y):
        out["note"] = (
            f"{len(labelled)} labelled rows (need {min_rows} with both classes): "
            "live performance not judged"
        )
        return out
    scores = objective.window_scores(labelled)
    out["evaluated"] = True
    out["figures"] = list(objective.SUMMARY)
    out.update({m: objective.score(m, y, scores) for m in objective.SUMMARY})
    out["below_floor"] = [
        f"{m} {out[m]:.4f} {'<' if better else '>'} {'floor' if better else 'ceiling'} {floor}"
        for m, floor in floors.items()
        if m in out
        for better in [objective.metric(m).higher_is_better]
        if (out[m] < floor if better else out[m] > floor)
    ]
    if test_roc_auc is not None and max_drop is not None:
        out[f"test_{judged.name}"] = float(test_roc_auc)
        live = out[judged.name]
        if objective.worse_by(test_roc_auc, live) >= max_drop:
            limit = (
                f"a drop of {max_drop}" if judged.higher_is_better else f"{max_drop:.0%} above it"
            )
            out["below_floor"].append(
                f"{judged.name} {live:.4f} is {abs(test_roc_auc - live):.4f} "
                f"{'below' if judged.higher_is_better else 'above'} the champion's test "
                f"{judged.label} {test_roc_auc:.4f} (alert at {limit})"
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


def performance_snapshot(
    labelled: pd.DataFrame, timestamp: dt.datetime | None = None, kind: str = "binary"
) -> Any:
    """An Evidently snapshot of the live figures on the labelled requests (for the
    dashboard): ROC-AUC for a yes/no classifier, accuracy and macro-F1 for a multiclass one
    (its ``decision``: the class index), MAE and RMSE for a regression."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Regression,
        Report,
    )
    from evidently.metrics import MAE, RMSE, Accuracy, F1Score, RocAuc

    if kind == "multiclass":
        frame = pd.DataFrame(
            {
                "label": labelled["label"].astype(int).astype(str),
                "predicted": labelled["decision"].astype(int).astype(str),
            }
        )
        definition = DataDefinition(
            categorical_columns=["label", "predicted"],
            classification=[
                MulticlassClassification(target="label", prediction_labels="predicted")
            ],
        )
        metrics: list[Any] = [Accuracy(), F1Score()]
    elif kind == "regression":
        frame = pd.DataFrame(
            {"label": labelled["label"].astype(float), "score": labelled["score"].astype(float)}
        )
        definition = DataDefinition(
            numerical_columns=["label", "score"],
            regression=[Regression(target="label", prediction="score")],
        )
        metrics = [MAE(), RMSE()]
    else:
        frame = pd.DataFrame(
            {"label": labelled["label"].astype(int), "score": labelled["score"].astype(float)}
        )
        definition = DataDefinition(
            numerical_columns=["score"],
            classification=[
                BinaryClassification(target="label", prediction_probas="score", pos_label=1)
            ],
        )
        metrics = [RocAuc()]
    return Report(metrics).run(
        Dataset.from_pandas(frame, data_definition=definition),
        None,
        timestamp=timestamp,
        name="live performance",
    )


def shadow_comparison(
    window: pd.DataFrame,
    champion: str,
    previous: str | None,
    min_rows: int,
    margin: float,
    objective: Objective | None = None,
) -> dict[str, Any]:
    """Champion against the previous champion scored in shadow, on the same labelled requests.

    ``rollback`` is True when the labels show the champion's ROC-AUC below the previous
    one's by more than ``margin``. ``objective``: binary when not given.
    """
    objective = objective or objective_for(None)
    out: dict[str, Any] = {"champion": champion, "previous": previous, "rollback": False}
    if previous is None or window.empty or "shadow_version" not in window:
        out["note"] = "no previous champion scored in shadow"
        return out
    if not objective.LOG_HOLDS_SCORES:
        out["note"] = (
            f"a {objective.type} shadow is not judged: the log keeps its top probability only"
        )
        return out
    rows = window[
        (window["model_version"] == champion)
        & (window["shadow_version"] == previous)
        & window["label"].notna()
        & window["shadow_score"].notna()
    ]
    out["labelled_rows"] = int(len(rows))
    y = objective.labels(rows["label"])
    if len(rows) < min_rows or not objective.judgeable(y):
        out["note"] = f"{len(rows)} labelled rows with a shadow score (need {min_rows}): not judged"
        return out
    judged = objective.metric(objective.FLOOR_METRIC)
    for who, column in (("champion", "score"), ("previous", "shadow_score")):
        value = objective.score(judged.name, y, rows[column].to_numpy(dtype=float))
        out[f"{who}_{judged.name}"] = value
    # how much better the champion does (binary: ROC-AUC points; regression: minus the
    # error's relative rise over the previous champion's)
    out["difference"] = -objective.worse_by(
        out[f"previous_{judged.name}"], out[f"champion_{judged.name}"]
    )
    out["metric"], out["metric_label"] = judged.name, judged.label
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
        sample_rows(window, cfg.max_window_rows, cfg.random_state).reset_index(drop=True),
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
