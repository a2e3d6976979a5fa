"""Performance estimated before the labels arrive: confidence-based performance estimation.

The method is NannyML's CBPE ("Confidence-based Performance Estimation", NannyML's documentation,
*How it works: performance estimation*, https://nannyml.readthedocs.io/en/stable/how_it_works/
performance_estimation.html). NannyML itself does not install beside our pins (it brings a
second ``xgboost`` distribution over ``xgboost-cpu``), so it is implemented here:

1. The champion's scores are calibrated on its reference sample, labelled rows it was not
   trained on (its validation split, ``promote.reference_split``), by isotonic regression.
2. In a window, a row with calibrated probability ``q`` is a positive with probability ``q``.
   The labels are drawn ``n_draws`` times from those Bernoulli laws; each draw gives the
   ROC-AUC of the model's scores and the cost of acting at the card's threshold. Their mean
   is the estimate (the expected confusion matrix's metric) and their percentiles the band:
   what the realised figure on a window of this size would spread over if the calibration
   holds. Like NannyML's, the band is that sampling spread only; the calibration's own
   error (measured: the estimate about 0.01 high on the simulator) is not in it.

What it can see: a change of the inputs that moves rows to where the model is less sure
(covariate shift). What it cannot: a change of the relationship between the inputs and the
outcome (concept drift) leaves the scores, and so the estimate, where they were; only the
labels show it. It also trusts the reference's calibration: a model badly calibrated on new
regions of the inputs gives a biased estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.core.config import CostMatrix, EvaluateParams, MonitorParams
from tasks.core.ml.objective import Objective
from tasks.monitor.drift import sample_rows

METHOD = "CBPE (NannyML), isotonic calibration on the reference sample"


@dataclass(frozen=True)
class Calibration:
    """Isotonic map from the model's score to the probability of a positive."""

    model: Any
    rows: int

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(self.model.predict(np.asarray(scores, dtype=float)), 0.0, 1.0)


def calibrate(reference: pd.DataFrame, target: str, score: str = "prediction") -> Calibration:
    """Fit the calibration on the reference sample's labels and scores.

    Raises
    ------
    ValueError
        If the reference holds no labels of both classes (nothing to calibrate on).
    """
    from sklearn.isotonic import IsotonicRegression

    if target not in reference or score not in reference:
        raise ValueError(f"the reference sample has no {target!r} and {score!r} columns")
    rows = reference[[target, score]].dropna()
    y = rows[target].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("the reference sample holds one class only: nothing to calibrate on")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(rows[score].to_numpy(dtype=float), y)
    return Calibration(iso, int(len(rows)))


def _rank_auc(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC-AUC of one set of ranks against each row of a (draws, rows) label matrix."""
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = labels @ ranks
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def estimate(
    scores: np.ndarray,
    calibration: Calibration,
    threshold: float,
    cost: CostMatrix,
    n_draws: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Estimated ROC-AUC and expected cost per row of a window's scores, with their bands."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=float)
    q = calibration(scores)
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_draws, len(scores))) < q).astype(np.float64)
    auc = _rank_auc(rankdata(scores), labels)
    act = scores >= threshold
    per_row = np.where(
        act,
        labels * cost.true_positive + (1 - labels) * cost.false_positive,
        labels * cost.false_negative + (1 - labels) * cost.true_negative,
    ).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    auc = auc[np.isfinite(auc)]

    def band(values: np.ndarray) -> list[float] | None:
        if not values.size:
            return None
        return [round(float(v), 4) for v in np.percentile(values, [tail, 100 - tail])]

    return {
        "rows": int(len(scores)),
        "roc_auc": round(float(auc.mean()), 4) if auc.size else None,
        "roc_auc_band": band(auc),
        "expected_cost": round(float(per_row.mean()), 4),
        "expected_cost_band": band(per_row),
        "expected_positive_rate": round(float(q.mean()), 4),
        "confidence": confidence,
        "draws": n_draws,
    }


def estimate_reasons(
    found: dict[str, Any], test_roc_auc: float | None, max_drop: float | None
) -> list[str]:
    """Why the estimate alone calls for attention (empty: it does not)."""
    if max_drop is None or test_roc_auc is None or found.get("roc_auc") is None:
        return []
    drop = test_roc_auc - found["roc_auc"]
    if drop < max_drop:
        return []
    return [
        f"estimated roc_auc {found['roc_auc']:.4f} (CBPE, band {found['roc_auc_band']}) is "
        f"{drop:.4f} below the champion's test ROC-AUC {test_roc_auc:.4f} (alert at a drop "
        f"of {max_drop})"
    ]


def opened(
    method: str, metric: str, figures: list[str], window_rows: int, cfg: Any
) -> dict[str, Any]:
    """An estimate's record before it is made (``evaluated`` false); with a ``note`` when
    the window is too small to estimate (``monitor.min_window_rows``)."""
    out: dict[str, Any] = {
        "method": method,
        "metric": metric,
        "figures": figures,
        "evaluated": False,
        "reasons": [],
    }
    if window_rows < cfg.min_window_rows:
        out["note"] = f"{window_rows} predictions (needs {cfg.min_window_rows})"
    return out


def window_estimate(
    window: pd.DataFrame,
    labelled: pd.DataFrame,
    reference: pd.DataFrame,
    card: dict[str, Any],
    objective: Objective,
    cfg: MonitorParams,
    evaluate: EvaluateParams,
) -> dict[str, Any]:
    """The monitoring flow's estimate: the window's predictions, and the check against labels.

    ``window`` holds the window's predictions (``score``); ``labelled`` the champion's
    predictions whose labels arrived in the window (``score``, ``label``), made one label
    delay earlier. For those the estimate is set beside the realised ROC-AUC: the estimate
    they had, checked now that the truth is known.
    """
    from sklearn.metrics import roc_auc_score

    out = opened(METHOD, "roc_auc", ["roc_auc"], len(window), cfg)
    if "note" in out:
        return out
    target, cost = objective.problem.target, evaluate.cost
    try:
        calibration = calibrate(reference, target)
    except ValueError as exc:
        out["note"] = f"no estimate: {exc}"
        return out
    threshold = float(card.get("threshold", 0.5))
    test_roc_auc = ((card.get("metrics") or {}).get("test") or {}).get("roc_auc")

    def run(scores: pd.Series, seed: int) -> dict[str, Any]:
        return estimate(
            scores.to_numpy(dtype=float),
            calibration,
            threshold,
            cost,
            cfg.estimate_draws,
            seed=seed,
        )

    scores = sample_rows(window[["score"]], cfg.max_window_rows, cfg.random_state)["score"]
    out.update(run(scores, cfg.random_state), evaluated=True, calibration_rows=calibration.rows)
    out["test_roc_auc"] = test_roc_auc
    out["reasons"] = estimate_reasons(out, test_roc_auc, cfg.max_estimated_roc_auc_drop)
    known = labelled[labelled["label"].notna()] if len(labelled) else labelled
    if len(known) >= cfg.min_labelled_rows and known["label"].nunique() == 2:
        then = run(known["score"], cfg.random_state + 1)
        realised = float(roc_auc_score(known["label"].astype(int), known["score"].astype(float)))
        out["labelled"] = {
            "metric": "roc_auc",
            "rows": int(len(known)),
            "estimated_roc_auc": then["roc_auc"],
            "roc_auc_band": then["roc_auc_band"],
            "realised_roc_auc": round(realised, 4),
            "absolute_error": None
            if then["roc_auc"] is None
            else round(abs(then["roc_auc"] - realised), 4),
        }
    return out


def estimate_snapshot(found: dict[str, Any], timestamp: Any = None) -> Any:
    """An Evidently snapshot of an estimate (CBPE's or DLE's) and its band, for the
    dashboard's estimate panel.

    Evidently has no metric for a figure computed elsewhere: each one is the mean of a
    one-row column, which is that figure.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    figures = {}
    for name in found["figures"]:
        low, high = found[f"{name}_band"] or [None, None]
        figures |= {
            f"estimated_{name}": [found[name]],
            f"estimated_{name}_low": [low],
            f"estimated_{name}_high": [high],
        }
    if "expected_cost" in found:
        figures["estimated_cost"] = [found["expected_cost"]]
    frame = pd.DataFrame(figures, dtype=float)
    definition = DataDefinition(numerical_columns=list(frame.columns))
    return Report([MeanValue(column=c) for c in frame.columns]).run(
        Dataset.from_pandas(frame, data_definition=definition),
        None,
        timestamp=timestamp,
        name="estimated performance",
    )
