"""Drift and live-performance checks: big windows without false alarms, real shifts caught."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd

from tasks.core.config import MonitorParams
from tasks.monitor.checks import live_performance, unseen_categories
from tasks.monitor.drift import drift_check
from tasks.monitor.policy import alert_reasons, retrain_request

NUMERIC = ["tenure_months", "monthly_charges", "support_tickets"]
CATEGORICAL = ["plan", "region"]
CFG = MonitorParams()


def population(
    n: int, seed: int, charge_shift: float = 0.0, plan_mix=(0.5, 0.3, 0.2)
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    charges = rng.gamma(4.0, 15.0, n) + charge_shift
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(0, 72, n).astype(float),
            "monthly_charges": charges,
            "support_tickets": rng.poisson(1.2, n).astype(float),
            "plan": rng.choice(["basic", "standard", "premium"], n, p=list(plan_mix)),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    frame.loc[rng.random(n) < 0.02, "monthly_charges"] = np.nan
    frame["prediction"] = 1 / (1 + np.exp(-(charges - 60) / 20))
    return frame


def test_a_million_row_window_of_undrifted_data_raises_no_alert_within_a_minute():
    reference = population(5000, seed=1)
    current = population(1_000_000, seed=2)
    started = time.perf_counter()
    result = drift_check(reference, current, NUMERIC, CATEGORICAL, CFG)
    seconds = time.perf_counter() - started
    summary = result.summary
    assert summary["rows_current"] == 1_000_000 and summary["sampled"]
    assert summary["drifted_columns"] == [] and not summary["prediction_drifted"], summary[
        "distances"
    ]
    assert alert_reasons(summary, {"below_floor": []}, 1_000_000, CFG) == []
    assert seconds < 60, f"1M-row window checked in {seconds:.1f} s"


def test_a_tiny_harmless_shift_on_a_big_sample_is_not_drift():
    from scipy.stats import ks_2samp

    # +1.0 on charges of mean ~60 and spread ~30: a p-value test calls it highly significant
    reference, current = population(50_000, 1), population(50_000, 2, charge_shift=1.0)
    assert (
        ks_2samp(reference["monthly_charges"].dropna(), current["monthly_charges"].dropna()).pvalue
        < 1e-4
    )
    result = drift_check(reference, current, NUMERIC, CATEGORICAL, CFG)
    assert "monthly_charges" not in result.summary["drifted_columns"], result.summary["distances"]
    assert result.summary["distances"]["monthly_charges"] < CFG.drift_threshold / 2


def test_a_real_shift_is_caught_and_named():
    current = population(20_000, 3, charge_shift=25.0, plan_mix=(0.1, 0.2, 0.7))
    result = drift_check(population(5000, 1), current, NUMERIC, CATEGORICAL, CFG)
    summary = result.summary
    assert {"monthly_charges", "plan"} <= set(summary["drifted_columns"])
    assert (
        summary["prediction_drifted"]
        and summary["prediction_mean"]["current"] > summary["prediction_mean"]["reference"]
    )
    reasons = alert_reasons(summary, {"below_floor": []}, 20_000, CFG)
    assert any("monthly_charges" in r and "plan" in r for r in reasons) and any(
        "prediction drift" in r for r in reasons
    )
    assert alert_reasons(summary, {"below_floor": []}, CFG.min_window_rows - 1, CFG) == [], (
        "too small to judge"
    )
    html = result.snapshot.get_html_str(as_iframe=False)
    assert "monthly_charges" in html


def test_live_performance_counts_only_labelled_rows_and_checks_the_floors():
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 2, n)
    window = pd.DataFrame(
        {"score": np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1), "label": y.astype(float)}
    )
    window.loc[window.index[:1000], "label"] = np.nan
    perf = live_performance(window, {"roc_auc": 0.99, "pr_auc": 0.1}, min_rows=200)
    assert perf["labelled_rows"] == 2000 and perf["window_rows"] == 3000 and perf["evaluated"]
    assert perf["below_floor"] and perf["below_floor"][0].startswith("roc_auc")
    few = live_performance(window.iloc[:1100], {"roc_auc": 0.5}, min_rows=200)
    assert (
        few["labelled_rows"] == 100 and not few["evaluated"] and "100 labelled rows" in few["note"]
    )
    roc = perf["roc_auc"]
    drop = live_performance(window, {"roc_auc": 0.5}, 200, test_roc_auc=roc + 0.06, max_drop=0.05)
    assert drop["below_floor"] == [
        f"roc_auc {roc:.4f} is 0.0600 below the champion's test ROC-AUC "
        f"{roc + 0.06:.4f} (alert at a drop of 0.05)"
    ]
    assert (
        live_performance(window, {"roc_auc": 0.5}, 200, test_roc_auc=roc + 0.04, max_drop=0.05)[
            "below_floor"
        ]
        == []
    )


def test_a_constant_feature_is_compared_by_value_not_by_histogram():
    reference, current = population(3000, 1), population(3000, 2)
    reference["ratio"] = 1.0 + np.random.default_rng(0).choice(
        [-2e-16, 0, 2e-16], 3000
    )  # float noise
    current["ratio"] = 1.0
    result = drift_check(reference, current, [*NUMERIC, "ratio"], CATEGORICAL, CFG)
    assert (
        result.summary["distances"]["ratio"] == 0
        and "ratio" not in result.summary["drifted_columns"]
    )
    current["ratio"] = np.random.default_rng(1).random(3000)
    result = drift_check(reference, current, [*NUMERIC, "ratio"], CATEGORICAL, CFG)
    assert "ratio" in result.summary["drifted_columns"]


def test_the_alert_policy_judges_drift_on_big_enough_windows_and_kpis_on_enough_labels():
    drifted = {
        "drift_share": 0.5,
        "drifted_columns": ["plan"],
        "prediction_drifted": False,
        "prediction_drift": 0.0,
    }
    below = {"evaluated": True, "below_floor": ["roc_auc 0.6000 < floor 0.75"]}
    not_judged = {"evaluated": False, "below_floor": []}
    assert alert_reasons(drifted, not_judged, CFG.min_window_rows - 1, CFG) == [], (
        "too few predictions"
    )
    assert alert_reasons(drifted, not_judged, CFG.min_window_rows, CFG)[0].startswith(
        "data drift: 50%"
    )
    assert alert_reasons(None, below, 0, CFG) == ["live performance: roc_auc 0.6000 < floor 0.75"]
    assert alert_reasons({**drifted, "drift_share": 0.29}, not_judged, 10_000, CFG) == [], (
        "below the share"
    )
    quality = {"failed": ["expect_column_values_to_be_in_set(region): 600 unexpected"]}
    assert alert_reasons(None, not_judged, 600, CFG, quality) == [
        f"input quality: {quality['failed'][0]}"
    ]


def test_retraining_is_requested_once_the_labels_of_the_alerting_period_have_arrived():
    cfg = MonitorParams(min_drifted_label_days=7, retrain_window_days=28)
    onset = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)

    def day(n):
        return onset + dt.timedelta(days=n)

    # the first alert: labels of the drifted period come 30 days later
    episode, first = retrain_request(None, "v0001", onset, day(1), 30, cfg)
    assert (
        not first["request"]
        and "waits for labels" in first["note"]
        and "2025-04-07" in first["note"]
    )
    episode, early = retrain_request(episode, "v0001", day(36), day(36), 30, cfg)
    assert not early["request"] and early["labelled_days"] == 6, (
        "the onset stays the episode's first"
    )
    episode, due = retrain_request(episode, "v0001", day(37), day(37), 30, cfg)
    assert due["request"] and due["labelled_days"] == 7
    assert due["window"] == {"start": "2025-02-09", "end": "2025-03-08"}, (
        "28 days of labels (both ends in), the newest last"
    )
    episode, again = retrain_request(episode, "v0001", day(38), day(38), 30, cfg)
    assert not again["request"], "the next request waits for 7 more days of labels"
    episode, later = retrain_request(episode, "v0001", day(44), day(44), 30, cfg)
    assert later["request"]
    # a new champion starts a new episode
    fresh, decision = retrain_request(episode, "v0002", day(45), day(45), 30, cfg)
    assert fresh["onset"] == day(45).isoformat() and not decision["request"]
    # a drift alert opens an episode; a live-performance alert judging predictions made a month
    # earlier moves its onset back, so retraining is due when those earlier labels suffice
    drift_first, _ = retrain_request(None, "v0003", day(50), day(52), 30, cfg)
    moved, decision = retrain_request(drift_first, "v0003", day(30), day(60), 30, cfg)
    assert moved["onset"] == day(30).isoformat() and not decision["request"]
    _, decision = retrain_request(moved, "v0003", day(52), day(67), 30, cfg)
    assert decision["request"] and decision["labelled_days"] == 7
    # without a label delay to wait for, the first alert requests retraining
    _, now = retrain_request(
        None, "v0001", onset, onset, 0, MonitorParams(min_drifted_label_days=0)
    )
    assert now["request"]


def test_categories_the_model_never_saw_alert_even_once_the_suite_accepts_them():
    schema = {
        "columns": {
            "payment_method": {"categories": ["bank-transfer", "paypal"]},
            "age": {"kind": "numeric"},
        }
    }
    window = pd.DataFrame(
        {"payment_method": ["paypal"] * 90 + ["crypto-wallet"] * 9 + [None], "age": range(100)}
    )
    unseen = unseen_categories(window, schema, ["payment_method"])
    assert unseen == {"payment_method": {"values": ["crypto-wallet"], "share": 0.09}}
    cfg = MonitorParams(min_window_rows=50)
    reasons = alert_reasons(None, {"evaluated": False}, 100, cfg, None, unseen)
    assert reasons == [
        "unseen categories: payment_method has crypto-wallet in 9.0% of rows "
        "(the serving model never saw them)"
    ]
    assert (
        alert_reasons(
            None,
            {"evaluated": False},
            100,
            MonitorParams(min_window_rows=50, unseen_share_alert=0.1),
            None,
            unseen,
        )
        == []
    )
    assert alert_reasons(None, {"evaluated": False}, 40, cfg, None, unseen) == [], "too few rows"
    assert unseen_categories(window.iloc[:90], schema, ["payment_method"]) == {}


def test_prediction_drift_must_exceed_what_sampling_alone_gives_at_the_window_size():
    from scipy.stats import wasserstein_distance

    from tasks.monitor.drift import prediction_noise_floor

    rng = np.random.default_rng(3)
    reference = rng.beta(2, 8, 5000)  # skewed like churn scores
    cfg = MonitorParams()
    small, big = (
        prediction_noise_floor(reference, 500, cfg),
        prediction_noise_floor(reference, 20000, cfg),
    )
    assert small > cfg.prediction_drift_threshold > big, (small, big)
    assert prediction_noise_floor(reference, 500, cfg) == small, "deterministic"
    same = [
        wasserstein_distance(reference, rng.beta(2, 8, 500)) / reference.std() for _ in range(100)
    ]
    assert max(same) < small, "100 undrifted windows of 500: none above the floor"
    shifted = (
        wasserstein_distance(reference, np.clip(rng.beta(2, 8, 500) + 0.05, 0, 1)) / reference.std()
    )
    assert shifted > small, "a shift of 0.05 in the mean score still shows"
    assert prediction_noise_floor(reference, 500, MonitorParams(num_method="psi")) is None


def test_the_alert_policy_is_a_pure_decision_with_cooldown_and_episode():
    import datetime as dt

    import pandas as pd

    from tasks.monitor.policy import decide

    now = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    start = now - dt.timedelta(hours=24)
    empty = pd.DataFrame()
    args = (start, now, 1000, empty, True, "v0001", 30, True, CFG)
    calm = decide([], {}, *args)
    assert not calm.alert and calm.verdict == "ok: no drift, KPIs met" and calm.state is None
    first = decide(["data drift: 40% of features drifted"], {}, *args)
    assert first.alert and first.verdict.startswith("ALERT: ")
    assert first.state["last_alert_at"] == now.isoformat() and first.retraining is not None
    assert set(first.overrides) <= {"collect.window.start", "collect.window.end"}
    later = now + dt.timedelta(hours=CFG.cooldown_hours / 2)
    held = decide(["data drift"], first.state, start, later, *args[2:])
    assert not held.alert and held.verdict.startswith("alert suppressed: cooldown")
    assert held.state is None
