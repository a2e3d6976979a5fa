from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import parse_params
from tasks.core.data.features import FEATURES, build_features
from tasks.features import features_table
from tests.conftest import default_params_dict

PROBLEM = parse_params(default_params_dict()).problem


def frame():
    return pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "churned_30d": [1, 0],
            "snapshot_date": pd.to_datetime(["2024-02-01", "2024-02-01"]),
            "last_activity_date": pd.to_datetime(["2024-01-22", "2024-01-31"]),
            "signup_date": pd.to_datetime(["2023-02-01", "2024-01-01"]),
            "renewal_date": pd.to_datetime(["2024-03-01", "2024-01-01"]),
            "total_charges": [1200.0, np.nan],
            "tenure_months": [12, 0],
            "monthly_charges": [100.0, 50.0],
            "support_tickets_90d": [3, 0],
            "usage_hours_30d": [10.0, 4.0],
            "num_devices": [2, 0],
            "cancellation_reason": ["price", None],
            "contract": ["one-year", "month-to-month"],
        }
    )


def test_features_are_row_wise_and_partitions_give_the_same_result():
    data = frame()
    whole, made = build_features(data, PROBLEM, [])
    parts = pd.concat(
        [build_features(data.iloc[[i]], PROBLEM, [])[0] for i in range(2)], ignore_index=True
    )
    pd.testing.assert_frame_equal(whole, parts)
    assert whole["days_since_last_activity"].tolist() == [10.0, 1.0]
    assert whole["charges_per_tenure_month"][0] == 100.0 and np.isnan(whole["usage_per_device"][1])
    assert whole["days_before_renewal_date"].tolist() == [-29.0, 31.0], "generic date feature"
    assert {f.name for f in made} >= {"tickets_per_month", "account_age_days"}


def test_post_outcome_dates_and_dropped_columns_are_removed_and_input_untouched():
    data = frame()
    before = data.copy()
    out, _ = build_features(data, PROBLEM, ["contract"])
    pd.testing.assert_frame_equal(data, before)
    assert "cancellation_reason" not in out and "contract" not in out
    assert "last_activity_date" not in out and "snapshot_date" in out, (
        "time column kept for the split"
    )


def test_features_table_describes_every_model_input():
    out, made = build_features(frame(), PROBLEM, [])
    table = features_table(out, made, PROBLEM)
    for f in made:
        assert f"| {f.name} | engineered" in table and f.description in table
    assert "| customer_id |" not in table and "| churned_30d |" not in table
    assert all(f.description for f in FEATURES)


def test_the_three_forms_of_each_feature_agree_row_by_row():
    # compute (training, pandas), scalar (one served record) and vector (a served batch's
    # NumPy columns) on awkward values: missing, zero, negative, below one, far-apart dates
    rng = np.random.default_rng(3)
    n = 400
    numbers = {
        c: np.where(rng.random(n) < 0.15, np.nan, rng.choice([-2.0, 0.0, 0.5, 1.0, 3.0, 1e6], n))
        for c in (
            "total_charges",
            "tenure_months",
            "monthly_charges",
            "support_tickets_90d",
            "usage_hours_30d",
            "num_devices",
        )
    }
    micros = rng.integers(-(10**15), 2 * 10**15, size=(3, n)) // 10**6 * 10**6
    micros[:, rng.random(n) < 0.1] = np.iinfo(np.int64).min  # NaT
    dates = {
        c: micros[i].view("M8[us]")
        for i, c in enumerate(("snapshot_date", "last_activity_date", "signup_date"))
    }
    data = pd.DataFrame({**numbers, **dates})
    data["renewal_date"] = data["signup_date"]  # a date the day-count features pick up
    extra = [f for f in build_features(data, PROBLEM, [])[1] if f not in FEATURES]
    assert [f.name for f in extra] == ["days_before_renewal_date"]
    columns = {c: data[c].to_numpy() for c in data}
    for feature in (*FEATURES, *extra):
        trained = feature.compute(data).astype(float).to_numpy()
        batch = np.asarray(feature.vector(columns), dtype=float)
        one = np.array(
            [
                feature.scalar(
                    {
                        c: (None if pd.isna(v) else v.to_pydatetime())
                        if isinstance(v, pd.Timestamp) or v is pd.NaT
                        else float(v)
                        for c, v in row.items()
                    }
                )
                for _, row in data.iterrows()
            ]
        )
        for got in (batch, one):
            ok = (got == trained) | (np.isnan(got) & np.isnan(trained))
            assert ok.all(), (feature.name, got[~ok][:3], trained[~ok][:3])
