"""A multiclass model's accuracy and macro-F1 estimated before the labels arrive:
multiclass confidence-based performance estimation (CBPE).

The method is NannyML's multiclass CBPE (NannyML's documentation, *How it works:
performance estimation*, "Multiclass classification"), implemented here for the reason
:mod:`tasks.monitor.estimate` gives:

1. Each class's probability is calibrated one-vs-rest on the champion's reference sample
   (labelled rows it was not trained on) by isotonic regression, and each row's calibrated
   probabilities are renormalised to sum to one.
2. In a window, a row predicted as class ``j`` (the most probable one) is right with its
   calibrated probability of ``j``; the expected confusion counts give the estimated
   accuracy and each class's precision, recall and F1, whose mean is the macro-F1. The
   band is the spread of the realised figure on a window of this size: labels drawn
   ``n_draws`` times from the calibrated probabilities, and their 2.5 and 97.5 percentiles.

What it can see and cannot is what binary CBPE can: rows moving to where the model is less
sure (covariate shift), not a change of the relationship between the inputs and the class
(concept drift); and it trusts the reference's calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import EvaluateParams, MonitorParams
from tasks.core.ml.objective import Objective
from tasks.monitor.drift import sample_rows
from tasks.monitor.estimate import opened

METHOD = "CBPE (NannyML, multiclass): one-vs-rest isotonic calibration on the reference sample"


@dataclass(frozen=True)
class ClassCalibration:
    """One isotonic map per class from the model's probability to the class's frequency."""

    models: tuple[Any, ...]
    rows: int

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        """The calibrated probabilities of each row, renormalised to sum to one (a row the
        maps all send to zero keeps the model's own probabilities)."""
        proba = np.asarray(proba, dtype=float)
        q = np.column_stack(
            [np.clip(m.predict(proba[:, k]), 0.0, 1.0) for k, m in enumerate(self.models)]
        )
        total = q.sum(axis=1, keepdims=True)
        return np.where(total > 0, q / np.where(total > 0, total, 1.0), proba)


def calibrate_classes(proba: np.ndarray, y: np.ndarray) -> ClassCalibration:
    """Fit the one-vs-rest calibration on the reference's probabilities and class indices.

    Raises
    ------
    ValueError
        If the reference holds fewer than two classes (nothing to calibrate on).
    """
    from sklearn.isotonic import IsotonicRegression

    proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise ValueError("the reference sample holds one class only: nothing to calibrate on")
    models = tuple(
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            proba[:, k], (y == k).astype(float)
        )
        for k in range(proba.shape[1])
    )
    return ClassCalibration(models, int(len(y)))


def expected_figures(q: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 and each class's F1 from the expected confusion counts of rows
    whose class is drawn from ``q`` and predicted as ``predicted``."""
    k = q.shape[1]
    mine = np.eye(k)[predicted]  # one-hot of the predicted class
    true_positive = (q * mine).sum(axis=0)
    predicted_count = mine.sum(axis=0)
    actual_count = q.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(
            predicted_count + actual_count > 0,
            2 * true_positive / (predicted_count + actual_count),
            np.nan,
        )
    return {
        "accuracy": float(true_positive.sum() / max(len(q), 1)),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
        "f1_by_class": [None if not np.isfinite(v) else round(float(v), 4) for v in f1],
    }


def _drawn(q: np.ndarray, predicted: np.ndarray, n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of ``n_draws`` label sets drawn from ``q``."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(q, axis=1)[:, :-1]
    k = q.shape[1]
    accuracy, macro_f1 = [], []
    for _ in range(n_draws):
        labels = (rng.random(len(q))[:, None] > cumulative).sum(axis=1)
        accuracy.append(float(np.mean(labels == predicted)))
        macro_f1.append(
            float(f1_score(labels, predicted, labels=range(k), average="macro", zero_division=0))
        )
    return {"accuracy": np.asarray(accuracy), "macro_f1": np.asarray(macro_f1)}


def estimate(
    proba: np.ndarray,
    calibration: ClassCalibration,
    n_draws: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    predicted: np.ndarray | None = None,
) -> dict[str, Any]:
    """Estimated accuracy and macro-F1 of a window's probabilities (a column per class),
    with their bands, and the class mix the calibration expects. ``predicted``: the
    decided classes (default: the most probable)."""
    proba = np.asarray(proba, dtype=float)
    q = calibration(proba)
    predicted = proba.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=int)
    found = expected_figures(q, predicted)
    draws = _drawn(q, predicted, n_draws, seed)
    tail = (1 - confidence) / 2 * 100

    def band(values: np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.percentile(values, [tail, 100 - tail])]

    return {
        "rows": int(len(proba)),
        "accuracy": round(found["accuracy"], 4),
        "accuracy_band": band(draws["accuracy"]),
        "macro_f1": round(found["macro_f1"], 4),
        "macro_f1_band": band(draws["macro_f1"]),
        "f1_by_class": found["f1_by_class"],
        "expected_class_mix": [round(float(v), 4) for v in q.mean(axis=0)],
        "predicted_class_mix": [
            round(float(v), 4) for v in np.bincount(predicted, minlength=q.shape[1]) / len(q)
        ],
        "confidence": confidence,
        "draws": n_draws,
    }


def estimate_reasons(
    found: dict[str, Any], tested: float | None, max_drop: float | None
) -> list[str]:
    """Why the estimate alone calls for attention: the estimated macro-F1 that far below
    the champion's test figure (``monitor.max_estimated_roc_auc_drop``, in points)."""
    if max_drop is None or tested is None or found.get("macro_f1") is None:
        return []
    drop = tested - found["macro_f1"]
    if drop < max_drop:
        return []
    return [
        f"estimated macro_f1 {found['macro_f1']:.4f} (CBPE, band {found['macro_f1_band']}) is "
        f"{drop:.4f} below the champion's test macro-F1 {tested:.4f} (alert at a drop of "
        f"{max_drop})"
    ]


def window_estimate(
    window: pd.DataFrame,
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    card: dict[str, Any],
    objective: Objective,
    cfg: MonitorParams,
    evaluate: EvaluateParams,
) -> dict[str, Any]:
    """The monitoring flow's estimate of a multiclass champion: the window's accuracy and
    macro-F1 before their labels, and, for the predictions whose labels arrived, the
    estimate they had beside the realised figure.

    ``window`` and ``labelled`` hold each class's probability (``objective.window_scores``);
    the reference sample, its ``prediction_<class>`` columns and the target.
    """
    from sklearn.metrics import f1_score

    out = opened(METHOD, "macro_f1", ["accuracy", "macro_f1"], len(window), cfg)
    if "note" in out:
        return out
    target = objective.problem.target
    y = objective.labels(reference[target]) if target in reference else np.array([], int)
    known = (y >= 0) & reference[target].notna().to_numpy() if len(y) else y.astype(bool)
    try:
        calibration = calibrate_classes(objective.window_scores(reference)[known], y[known])
    except ValueError as exc:
        out["note"] = f"no estimate: {exc}"
        return out
    threshold = card.get("threshold")

    def run(frame: pd.DataFrame, seed: int) -> dict[str, Any]:
        proba = objective.window_scores(frame)
        predicted = objective.decide(proba, threshold)
        found = estimate(proba, calibration, cfg.estimate_draws, seed=seed, predicted=predicted)
        for mix in ("expected_class_mix", "predicted_class_mix"):
            found[mix] = dict(zip(objective.known, found[mix], strict=True))
        found["f1_by_class"] = dict(zip(objective.known, found["f1_by_class"], strict=True))
        return found

    sample = sample_rows(window, cfg.max_window_rows, cfg.random_state)
    out.update(run(sample, cfg.random_state), evaluated=True, calibration_rows=calibration.rows)
    tested = ((card.get("metrics") or {}).get("test") or {}).get("macro_f1")
    out["test_macro_f1"] = tested
    out["reasons"] = estimate_reasons(out, tested, cfg.max_estimated_roc_auc_drop)
    done = labelled[labelled["label"].notna()] if len(labelled) else labelled
    if len(done) >= cfg.min_labelled_rows:
        then = run(done, cfg.random_state + 1)
        truth = objective.labels(done["label"])
        decided = objective.decide(objective.window_scores(done), threshold)
        k = list(range(len(objective.known)))
        realised = float(f1_score(truth, decided, labels=k, average="macro", zero_division=0))
        out["labelled"] = {
            "metric": "macro_f1",
            "rows": int(len(done)),
            "estimated_macro_f1": then["macro_f1"],
            "macro_f1_band": then["macro_f1_band"],
            "realised_macro_f1": round(realised, 4),
            "absolute_error": round(abs(then["macro_f1"] - realised), 4),
        }
    return out
