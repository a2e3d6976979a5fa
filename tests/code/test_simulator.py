from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tasks.core.data.simulator import COLUMNS, NEW_PAYMENT, simulate

D = dt.date


def test_same_seed_same_data_and_windows_compose():
    a = simulate(D(2024, 1, 1), D(2024, 1, 10), 30, seed=3)
    b = simulate(D(2024, 1, 1), D(2024, 1, 10), 30, seed=3)
    pd.testing.assert_frame_equal(a.data, b.data)
    part = simulate(D(2024, 1, 6), D(2024, 1, 10), 30, seed=3)
    tail = a.data[a.data["snapshot_date"] >= "2024-01-06"].reset_index(drop=True)
    pd.testing.assert_frame_equal(tail, part.data)
    other = simulate(D(2024, 1, 1), D(2024, 1, 10), 30, seed=4)
    assert not other.data["tenure_months"].equals(a.data["tenure_months"])


def test_oracle_is_kept_apart_from_the_features():
    batch = simulate(D(2024, 1, 1), D(2024, 1, 5), 50, seed=1)
    assert list(batch.data.columns) == list(COLUMNS)
    assert not any("oracle" in c or "proba" in c for c in batch.data.columns)
    assert batch.oracle["customer_id"].is_unique
    assert set(batch.oracle["customer_id"]) == set(batch.data["customer_id"])
    assert batch.oracle["oracle_proba"].between(0, 1).all()


def test_export_is_messy_like_a_real_one():
    data = simulate(D(2024, 1, 1), D(2024, 3, 31), 100, seed=7).data
    assert data.duplicated().sum() > 0, "duplicate rows"
    assert data["customer_id"].duplicated().sum() > 0
    contracts = set(data["contract"].dropna())
    assert {"month-to-month", "Month-to-month", "MONTH-TO-MONTH"} <= contracts, "spelling variants"
    signup = data["signup_date"].dropna()
    assert (
        signup.str.match(r"^\d{4}-\d{2}-\d{2}$").any()
        and signup.str.match(r"^\d{2}/\d{2}/\d{4}$").any()
    )
    assert signup.str.match(r"^[A-Z][a-z]{2} \d{2}, \d{4}$").any(), "mixed date formats"
    assert data["usage_hours_30d"].isna().mean() > 0.01, "missing values"
    assert (data["monthly_charges"] > 1000).mean() > 0.01, "unit bug: charges in cents"
    assert (data["total_charges"] == " ").any(), "numbers as text with blank cells"
    churned = data["churned_30d"] == "yes"
    reason = data["cancellation_reason"].notna()
    assert (reason[churned]).all() and not (reason[~churned]).any(), (
        "post-outcome column leaks the label"
    )


def test_label_follows_oracle_and_linear_model_is_measurably_below_it():
    batch = simulate(D(2024, 1, 1), D(2024, 4, 30), 100, seed=11)
    data = batch.data.drop_duplicates("customer_id")
    merged = data.merge(batch.oracle, on="customer_id")
    merged = merged[merged["churned_30d"].notna()]
    y = (merged["churned_30d"] == "yes").to_numpy(int)
    oracle_auc = roc_auc_score(y, merged["oracle_proba"])
    assert 0.78 < oracle_auc < 0.95
    assert 0.08 < y.mean() < 0.35
    X = pd.DataFrame(
        {
            "tenure": merged["tenure_months"],
            "price": merged["monthly_charges"].where(
                merged["monthly_charges"] < 1000, merged["monthly_charges"] / 100
            ),
            "tickets": merged["support_tickets_90d"],
            "idle": (
                pd.to_datetime(merged["snapshot_date"])
                - pd.to_datetime(merged["last_activity_date"], format="mixed")
            ).dt.days,
            "m2m": merged["contract"].str.lower().str.contains("month").astype(int),
        }
    ).fillna(0)
    half = len(X) // 2
    lr = LogisticRegression(max_iter=1000).fit(X[:half], y[:half])
    lr_auc = roc_auc_score(y[half:], lr.predict_proba(X[half:])[:, 1])
    oracle_half = roc_auc_score(y[half:], merged["oracle_proba"].to_numpy()[half:])
    assert lr_auc < oracle_half - 0.01, (lr_auc, oracle_half)


@pytest.mark.parametrize("kind", ["covariate", "new_category", "concept", "uncertain"])
def test_drift_changes_data_or_labels_only_from_its_start(kind):
    kwargs = dict(start=D(2024, 1, 1), end=D(2024, 1, 20), customers_per_day=200, seed=5)
    base = simulate(**kwargs)
    drifted = simulate(**kwargs, drift_kind=kind, drift_start=D(2024, 1, 11))
    before = base.data["snapshot_date"] < "2024-01-11"
    pd.testing.assert_frame_equal(
        base.data[before], drifted.data[drifted.data["snapshot_date"] < "2024-01-11"]
    )
    after_b = base.data[~before]
    after_d = drifted.data[drifted.data["snapshot_date"] >= "2024-01-11"]
    if kind == "covariate":
        assert after_d["monthly_charges"].median() > 1.2 * after_b["monthly_charges"].median()
    elif kind == "new_category":
        assert (after_d["payment_method"] == NEW_PAYMENT).mean() > 0.2
        assert not (base.data["payment_method"] == NEW_PAYMENT).any()
    elif kind == "uncertain":  # toss-up customers: the best possible ranking gets worse
        late = drifted.oracle["customer_id"] >= after_d["customer_id"].min()
        p_base = base.oracle["oracle_proba"][
            base.oracle["customer_id"] >= after_b["customer_id"].min()
        ]
        p_drift = drifted.oracle["oracle_proba"][late]
        assert abs(p_drift - 0.5).mean() < abs(p_base - 0.5).mean() - 0.1
    else:
        late_b = base.oracle["customer_id"] >= after_b["customer_id"].min()
        assert not np.allclose(
            base.oracle["oracle_proba"][late_b], drifted.oracle["oracle_proba"][late_b]
        )


def test_the_next_move_target_has_four_classes_from_a_known_model_on_the_same_customers():
    """``target="next_move_30d"`` (issue 43's simulator target): the churn rows' customers,
    each with what they do next (cancel, downgrade, stay, upgrade) drawn from the oracle's
    probabilities, which beat the class prior's log loss by a known margin; concept drift
    moves the mix only from its start."""
    from sklearn.metrics import log_loss

    from tasks.core.data.simulator import MOVE, MOVES

    churn = simulate(D(2024, 1, 1), D(2024, 1, 20), 300, seed=3)
    moves = simulate(D(2024, 1, 1), D(2024, 1, 20), 300, seed=3, target=MOVE)
    features = [c for c in COLUMNS if c not in ("churned_30d", "cancellation_reason")]
    assert list(moves.data.columns) == [*features, MOVE]
    # the same customers as the churn rows (the messy rendering draws its own noise)
    assert set(moves.data["customer_id"]) == set(churn.data["customer_id"])
    shares = moves.data[MOVE].value_counts(normalize=True)
    assert set(shares.index) == set(MOVES) and shares.min() > 0.05, shares
    labelled = moves.data.dropna(subset=[MOVE]).drop_duplicates("customer_id")
    y = labelled[MOVE].map({m: k for k, m in enumerate(MOVES)}).to_numpy()
    oracle = moves.oracle.set_index("customer_id").loc[labelled["customer_id"]]
    p = oracle[[f"oracle_{m}" for m in MOVES]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    prior = np.tile(np.bincount(y, minlength=4) / len(y), (len(y), 1))
    assert log_loss(y, p, labels=range(4)) < log_loss(y, prior, labels=range(4)) - 0.2
    drifted = simulate(
        D(2024, 1, 1),
        D(2024, 1, 20),
        300,
        seed=3,
        target=MOVE,
        drift_kind="concept",
        drift_start=D(2024, 1, 11),
    ).data
    before = drifted[drifted["snapshot_date"] < "2024-01-11"].reset_index(drop=True)
    after = drifted[drifted["snapshot_date"] >= "2024-01-11"]
    pd.testing.assert_frame_equal(
        before, moves.data[moves.data["snapshot_date"] < "2024-01-11"].reset_index(drop=True)
    )
    late = moves.data[moves.data["snapshot_date"] >= "2024-01-11"]
    assert (after[MOVE] == "upgrade").mean() != pytest.approx((late[MOVE] == "upgrade").mean())
