from __future__ import annotations

import numpy as np
import pandas as pd

from devtools.project import deep_merge
from tasks.core.config import parse_params
from tasks.core.ml.signal import quick_matrix
from tasks.feasibility import decide
from tests.conftest import default_params_dict


def params(**feas):
    base = {
        "min_labelled_rows": 300,
        "min_minority_rows": 40,
        "sample_rows": 1500,
        "n_permutations": 9,
        "max_permutation_p_value": 0.1,
    }
    return parse_params(deep_merge(default_params_dict(), {"feasibility": {**base, **feas}}))


def frame(n=1200, signal=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2.5 * x - 1.5))) if signal else np.full(n, 0.25)
    y = np.where(rng.random(n) < p, "yes", "no")
    return pd.DataFrame(
        {
            "customer_id": np.arange(n).astype(str),
            "snapshot_date": "2024-01-01",
            "score_text": pd.Series(x).round(3).astype(str),
            "plan": rng.choice(["A", "b ", "B"], n),
            "cancellation_reason": np.where(y == "yes", "price", None),
            "churned_30d": y,
        }
    )


def test_go_when_there_is_signal():
    p = params()
    verdict = decide(frame(), p.problem, p.feasibility)
    assert verdict["go"], verdict["checks"]
    assert (
        verdict["signal"]["cv_roc_auc"] > 0.75 and verdict["signal"]["permutation_p_value"] <= 0.1
    )


def test_no_go_on_labels_that_carry_no_signal():
    p = params()
    verdict = decide(frame(signal=False, seed=3), p.problem, p.feasibility)
    assert not verdict["go"]
    failed = {c["check"] for c in verdict["checks"] if not c["passed"]}
    assert "ROC-AUC lift over dummy" in failed


def test_no_go_on_too_few_rows_and_missing_labels_without_fitting():
    p = params(min_labelled_rows=5000)
    data = frame()
    data.loc[: len(data) // 2, "churned_30d"] = None
    verdict = decide(data, p.problem, p.feasibility)
    failed = {c["check"] for c in verdict["checks"] if not c["passed"]}
    assert failed == {"labelled rows", "missing-label share"} and verdict["signal"] is None


def test_quick_matrix_leaves_out_id_target_time_and_post_outcome_columns():
    p = params()
    X = quick_matrix(frame(), p.problem)
    assert list(X.columns) == ["score_text", "plan"]
    assert X["score_text"].dtype == float and X["plan"].nunique() == 2, (
        "spelling variants count once"
    )


def test_the_permutation_test_gives_the_same_answer_on_one_process_and_on_two(monkeypatch):
    import tasks.core.ml.signal as signal

    p = params(n_permutations=19)
    data = frame(n=2000, seed=5)
    verdicts = {}
    for from_s in (float("inf"), 0.0):  # never parallel, always parallel
        monkeypatch.setattr(signal, "PARALLEL_FROM_S", from_s)
        verdicts[from_s] = decide(data, p.problem, p.feasibility)["signal"]
    assert verdicts[0.0] == verdicts[float("inf")]
    assert 0 < verdicts[0.0]["permutation_p_value"] <= 0.1
