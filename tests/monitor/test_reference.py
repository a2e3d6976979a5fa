"""The drift reference follows the champion: after a retraining on drifted data, live traffic
that looks like the new champion's latest data raises no drift alert.

The data is the simulator's with each kind of drift starting part-way through; the champion is
trained on it as the pipeline does (clean, features, time split), and its reference sample is
taken as ``register_and_promote`` takes it. The live window is later drifted traffic.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tasks.core.data.simulator import simulate
from tasks.core.ml.models import build_pipeline, model_inputs
from tasks.core.ml.reference import reference_sample
from tasks.monitor.checks import unseen_categories
from tasks.monitor.drift import drift_check
from tasks.monitor.policy import alert_reasons
from tasks.promote import training_schema
from tests.conftest import featured, split_frames

START, DRIFT, END = dt.date(2024, 1, 1), dt.date(2024, 3, 1), dt.date(2024, 4, 10)
LIVE = (dt.date(2024, 4, 11), dt.date(2024, 4, 17))


@pytest.fixture(scope="module", params=["covariate", "new_category", "concept"])
def recovered(request, params):
    """The new champion trained after the drift, its two possible references, live traffic."""
    kind = request.param
    history = simulate(START, END, 80, seed=11, drift_kind=kind, drift_start=DRIFT).data
    frames = split_frames(featured(history, params), params)
    X, y, numeric, categorical = model_inputs(frames["train"], params.problem)
    model = build_pipeline("logistic_regression", numeric, categorical, {}, 0).fit(X, y)
    live = featured(simulate(*LIVE, 80, seed=12, drift_kind=kind, drift_start=DRIFT).data, params)
    live_X, _, _, _ = model_inputs(live, params.problem)
    live = live.assign(prediction=model.predict_proba(live_X)[:, 1])
    references = {}
    for split in ("holdout", "train"):
        chosen = params.model_copy(
            update={"promote": params.promote.model_copy(update={"reference_split": split})}
        )
        references[split] = reference_sample(frames["train"], frames, model, chosen)
    return {
        "kind": kind,
        "frames": frames,
        "references": references,
        "live": live,
        "numeric": numeric,
        "categorical": categorical,
        "schema": training_schema(frames["train"], params),
    }


def reasons_against(recovered, split, params):
    reference, _ = recovered["references"][split]
    live = recovered["live"]
    result = drift_check(
        reference, live, recovered["numeric"], recovered["categorical"], params.monitor
    )
    unseen = unseen_categories(live, recovered["schema"], recovered["categorical"])
    return result.summary, alert_reasons(
        result.summary, {"evaluated": False}, len(live), params.monitor, unseen=unseen
    )


def test_the_reference_is_the_champions_validation_and_test_rows_with_their_dates(
    recovered, params
):
    reference, record = recovered["references"]["holdout"]
    frames = recovered["frames"]
    holdout = {
        *frames["valid"][params.problem.id_column],
        *frames["test"][params.problem.id_column],
    }
    assert record["split"] == "holdout"
    assert record["rows"] == len(reference) == min(len(holdout), params.promote.reference_rows)
    assert record["from"] >= str(DRIFT) and record["to"] == str(END)
    assert set(reference[params.problem.id_column]) <= holdout
    assert reference["prediction"].between(0, 1).all()


def test_after_the_new_champion_takes_over_its_drifted_traffic_raises_no_alert(recovered, params):
    summary, reasons = reasons_against(recovered, "holdout", params)
    assert len(recovered["live"]) >= params.monitor.min_window_rows
    assert reasons == [], (recovered["kind"], reasons, summary["distances"])


def test_the_training_rows_as_reference_would_go_on_alerting(recovered, params):
    """The teeth: the old choice, mostly pre-drift training rows, still sees the input drift.

    Concept drift changes no input: neither reference sees it (live performance does).
    """
    summary, reasons = reasons_against(recovered, "train", params)
    _, record = recovered["references"]["train"]
    assert record["split"] == "train" and record["from"] == str(START)
    if recovered["kind"] == "concept":
        assert reasons == [], reasons
    else:
        assert any(r.startswith(("data drift", "prediction drift")) for r in reasons), summary
