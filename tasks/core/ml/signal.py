"""The signal check of feasibility: does a quick model beat the dummy baseline, and is
the lift more than chance (a label-permutation test)?

The data is the snapshot as delivered, barely cleaned (:func:`quick_matrix`): a go/no-go
before any modelling effort, not a model.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import permutation_test_score
from threadpoolctl import threadpool_limits

from tasks.core.config import FeasibilityParams, ProblemParams
from tasks.core.data.schema import parse_numbers
from tasks.core.env import usable_cores
from tasks.core.ml.objective import SignalSpec

log = logging.getLogger("churn.feasibility")  # the feasibility step's story

MAX_CATEGORIES = 30


def quick_matrix(data: pd.DataFrame, problem: ProblemParams) -> pd.DataFrame:
    """A rough numeric matrix for the signal check (no cleaning; just enough to learn from).

    Text columns that mostly parse as numbers become numbers; other text columns become
    codes of their ``MAX_CATEGORIES`` most frequent values. The id, target, time and
    post-outcome columns are left out.
    """
    drop = {problem.target, problem.id_column, problem.time_column, *problem.post_outcome_columns}
    out = {}
    for column in data.columns:
        if column in drop:
            continue
        values = data[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[column] = values.astype(float)
            continue
        text = values.astype("string").str.strip().str.lower()
        numbers = parse_numbers(text)[0]
        present = text.notna() & (text != "")
        if present.any() and numbers[present].notna().mean() >= 0.9:
            out[column] = numbers.astype(float)
            continue
        top = text.value_counts().index[:MAX_CATEGORIES]
        codes = pd.Categorical(text.where(text.isin(top)), categories=top).codes.astype(float)
        out[column] = np.where(codes < 0, np.nan, codes)
    return pd.DataFrame(out, index=data.index)


# Worker processes start in about 2 s (they import scikit-learn): worth it past this much work
PARALLEL_FROM_S = 8.0


def permutation_jobs(model: Any, X: pd.DataFrame, y: np.ndarray, cfg: FeasibilityParams) -> int:
    """Processes for the permutation test: two when one fit, timed, says it is long enough.

    The permutations are drawn in this process in order, so the p-value is the same with
    any number of processes; each worker runs one OpenMP thread (joblib's default for
    processes: cores divided by workers).
    """
    if usable_cores() < 2:
        return 1
    started = time.perf_counter()
    clone(model).fit(X, y)
    each_s = (time.perf_counter() - started) * (cfg.cv_folds - 1) / cfg.cv_folds  # one fold
    fits = cfg.cv_folds * (cfg.n_permutations + 1)
    jobs = 2 if each_s * fits >= PARALLEL_FROM_S else 1
    log.info(
        "permutation test: %d fits of about %.2f s on %d process%s",
        fits,
        each_s,
        jobs,
        "es" if jobs > 1 else "",
    )
    return jobs


def signal_sample(n: int, cfg: FeasibilityParams) -> np.ndarray:
    """Positions (sorted) of the labelled rows the signal check learns from: at most
    ``cfg.sample_rows``, drawn with ``cfg.random_state``."""
    if n <= cfg.sample_rows:
        return np.arange(n)
    rng = np.random.default_rng(cfg.random_state)
    return np.sort(rng.choice(n, cfg.sample_rows, replace=False))


def signal_check(
    X: pd.DataFrame, y: np.ndarray, cfg: FeasibilityParams, spec: SignalSpec
) -> dict[str, Any]:
    """The cross-validated score of a quick model, with a label-permutation p-value.

    Parameters
    ----------
    X : DataFrame
        Numeric matrix (NaN allowed) of the sampled rows (:func:`signal_sample`).
    y : ndarray
        Their labels.
    cfg : FeasibilityParams
    spec : SignalSpec
        The problem type's quick model, folds and score (the objective's ``signal``).

    Returns
    -------
    dict
        ``cv_<metric>``, ``dummy_<metric>``, ``lift``, ``permutation_p_value`` and the
        sample size.
    """
    model = spec.model
    # One OpenMP thread: on a sample this size it is as fast as two, and a second busy
    # process on the machine (a deployment run beside `dvc repro`) would otherwise stall
    # every one of the model's many small parallel regions (measured: 6 s alone, >120 s).
    with threadpool_limits(limits=1, user_api="openmp"):
        n_jobs = permutation_jobs(model, X, y, cfg)
        score, _, p_value = permutation_test_score(
            model,
            X,
            y,
            cv=spec.cv,
            n_permutations=cfg.n_permutations,
            scoring=spec.scoring,
            random_state=cfg.random_state,
            n_jobs=n_jobs,
        )
    dummy = spec.dummy(y) if callable(spec.dummy) else spec.dummy
    return {
        "sample_rows": int(len(y)),
        f"cv_{spec.metric}": float(score),
        f"dummy_{spec.metric}": dummy,
        "lift": float(score - dummy),
        "permutation_p_value": float(p_value),
        "n_permutations": cfg.n_permutations,
    }
