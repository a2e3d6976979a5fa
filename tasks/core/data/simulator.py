"""A simulated subscription business: customer snapshots with a 30-day churn label, or
(``target="spend_next_30d"``) the next 30 days' spend in dollars to predict, or
(``target="next_move_30d"``) what each customer does next: cancel, downgrade, stay, upgrade.

The label comes from a known generating model with non-linear terms and interactions, so
the best achievable score is known: :func:`simulate` returns the oracle's churn
probabilities (or expected spend, :func:`expected_spend`, or each move's probability,
:func:`move_probabilities`) apart from the features, never as a column a model could see.

The output is messy the way real exports are: missing values, duplicate rows, mixed date
formats, category spelling variants, a unit bug (charges in cents) in a share of rows,
numbers stored as text with blank cells, and one post-outcome column
(``cancellation_reason``) that leaks the label.

Rows are generated day by day, each day from its own seed, so any date window holds the
same rows for a day whatever window it is part of: same seed, same data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

CONTRACTS = ("month-to-month", "one-year", "two-year")
PLANS = ("basic", "standard", "premium")
PAYMENTS = ("credit card", "bank transfer", "paypal", "mailed check")
REGIONS = ("north", "south", "east", "west")
NEW_PAYMENT = "crypto wallet"
REASONS = ("price", "competitor", "service quality", "moving", "no longer needed")

# Spelling variants real exports show for the same category.
_VARIANTS = {
    "month-to-month": ("Month-to-month", "month to month", "MONTH-TO-MONTH", "Month to Month "),
    "one-year": ("One year", "one_year", "ONE-YEAR"),
    "two-year": ("Two year", "two_year", "TWO-YEAR"),
    "credit card": ("Credit card", "credit_card", "CREDIT CARD", "Credit Card (automatic)"),
    "bank transfer": ("Bank transfer", "bank_transfer", "BANK TRANSFER"),
    "paypal": ("PayPal", "Paypal", "PAYPAL"),
    "mailed check": ("Mailed check", "mailed_check", "MAILED CHECK"),
}
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%b %d, %Y")
"""Formats the simulator mixes in date columns (clean step: ``clean.date_formats``)."""


@dataclass(frozen=True)
class SimulatedBatch:
    """What :func:`simulate` returns.

    Attributes
    ----------
    data : DataFrame
        The messy export, as a source would deliver it.
    oracle : DataFrame
        ``customer_id`` and ``oracle_proba``: the true churn probability of each customer
        (``oracle_value``: the expected spend, for the spend target; ``oracle_<move>``: each
        move's probability, for the next-move target).
    """

    data: pd.DataFrame
    oracle: pd.DataFrame


def _day_seed(seed: int, day: dt.date) -> list[int]:
    return [int(seed), day.toordinal()]


def _latent_day(rng: np.random.Generator, day: dt.date, n: int) -> pd.DataFrame:
    """Clean, true attributes of the ``n`` customers snapshotted on ``day``."""
    tenure = np.minimum(rng.gamma(1.3, 16.0, n), 72).astype(int)
    long_bias = np.clip(tenure / 72, 0, 1)
    p_contract = np.stack(
        [0.62 - 0.35 * long_bias, 0.23 + 0.10 * long_bias, 0.15 + 0.25 * long_bias], axis=1
    )
    contract_idx = (rng.random(n)[:, None] > np.cumsum(p_contract, axis=1)).sum(axis=1)
    plan_idx = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    devices = 1 + rng.poisson(1.2, n)
    discount = rng.choice([0, 10, 20], n, p=[0.7, 0.2, 0.1])
    base = np.array([25.0, 55.0, 90.0])[plan_idx]
    monthly = np.round((base + 5.0 * devices + rng.normal(0, 6, n)) * (1 - discount / 100), 2)
    monthly = np.maximum(monthly, 9.99)
    age = np.clip(rng.normal(44, 15, n), 18, 90).round()
    disengaged = rng.random(n) < 0.25
    days_idle = np.where(disengaged, rng.exponential(25, n), rng.exponential(4, n)).round()
    usage = np.round(rng.gamma(2.0, 6.0 + 3.0 * devices) * np.where(disengaged, 0.35, 1.0), 1)
    tickets = rng.poisson(0.5 + 0.6 * disengaged + 0.25 * (plan_idx == 2), n)
    autopay = rng.random(n) < 0.55
    payment_idx = rng.choice(4, n, p=[0.42, 0.25, 0.2, 0.13])
    snapshot = pd.Timestamp(day)
    return pd.DataFrame(
        {
            "snapshot_date": np.full(n, snapshot),
            "tenure_months": tenure,
            "contract": np.array(CONTRACTS)[contract_idx],
            "plan": np.array(PLANS)[plan_idx],
            "num_devices": devices,
            "discount_pct": discount,
            "monthly_charges": monthly,
            "age": age,
            "days_since_last_activity": days_idle,
            "usage_hours_30d": usage,
            "support_tickets_90d": tickets,
            "autopay": np.where(autopay, "yes", "no"),
            "payment_method": np.array(PAYMENTS)[payment_idx],
            "region": rng.choice(REGIONS, n),
            "gender": rng.choice(["female", "male"], n),
            "signup_jitter": rng.integers(0, 28, n),
        }
    )


def churn_logit(frame: pd.DataFrame, concept_drift: float = 0.0) -> np.ndarray:
    """The true log-odds of churn within 30 days (the generating model).

    Parameters
    ----------
    frame : DataFrame
        Clean latent attributes, as made by the simulator.
    concept_drift : float
        0 for the original relationship; 1 for the drifted one (long contracts stop
        protecting, inactivity matters less, tickets matter more).

    Returns
    -------
    ndarray of float
    """
    m2m = (frame["contract"] == "month-to-month").to_numpy(float)
    two = (frame["contract"] == "two-year").to_numpy(float)
    one = (frame["contract"] == "one-year").to_numpy(float)
    tenure = frame["tenure_months"].to_numpy(float)
    price = frame["monthly_charges"].to_numpy(float)
    tickets = frame["support_tickets_90d"].to_numpy(float)
    idle = frame["days_since_last_activity"].to_numpy(float)
    usage = frame["usage_hours_30d"].to_numpy(float)
    age = frame["age"].to_numpy(float)
    manual_pay = (frame["autopay"] == "no").to_numpy(float)
    check = (frame["payment_method"] == "mailed check").to_numpy(float)
    crypto = (frame["payment_method"] == NEW_PAYMENT).to_numpy(float)
    discount = frame["discount_pct"].to_numpy(float)

    z = (
        -2.6
        + 1.2 * m2m
        - 0.4 * one
        - 1.4 * two
        + 1.1
        - 0.5 * np.log1p(tenure)
        + 0.03 * (price - 55.0) * (0.4 + 0.6 * m2m)
        + 0.35 * np.minimum(tickets, 5)
        + 0.7 * (tickets >= 3)
        + 1.8 * (1.0 - np.exp(-idle / 12.0))
        - 0.25 * np.log1p(usage)
        + 0.35 * manual_pay
        + 0.3 * check
        + 0.6 * crypto
        - 0.02 * discount
        + 0.0004 * (age - 45.0) ** 2
    )
    if concept_drift:
        z = z + concept_drift * (
            1.6 * two
            + 1.0 * one
            - 0.9 * (1.0 - np.exp(-idle / 12.0))
            + 0.3 * np.minimum(tickets, 5)
        )
    return z


CHURN, SPEND, MOVE = "churned_30d", "spend_next_30d", "next_move_30d"
"""The targets the simulator writes (``collect.simulator.target``)."""
MOVES = ("cancel", "downgrade", "stay", "upgrade")
"""What a customer does in the next 30 days (the ``next_move_30d`` target's classes)."""
SPEND_NOISE = 0.2
"""The spend is the expected spend times ``exp(N(0, SPEND_NOISE))``: the oracle's error."""


def expected_spend(
    frame: pd.DataFrame, churn_proba: np.ndarray, concept: float = 0.0
) -> np.ndarray:
    """The expected spend of the next 30 days in dollars (the generating model).

    The plan's price after discount, add-ons per device and metered usage, less what the
    customers likely to leave will not spend. ``concept`` (1: the drifted relationship)
    makes usage free and add-ons five times dearer (a repricing: bills of customers with
    many devices rise, those of heavy users fall).
    """
    price = frame["monthly_charges"].to_numpy(float)
    devices = frame["num_devices"].to_numpy(float)
    usage = np.minimum(frame["usage_hours_30d"].to_numpy(float), 80.0)
    two = (frame["contract"] == "two-year").to_numpy(float)
    per_device, per_hour = 4.0 * (1 + 4.0 * concept), 0.6 * (1 - concept)
    return (price + per_device * devices + per_hour * usage + 5.0 * two) * (1.0 - 0.7 * churn_proba)


def move_logits(frame: pd.DataFrame, concept: float = 0.0) -> np.ndarray:
    """The log-odds of each next move against staying, one column per :data:`MOVES` (the
    generating model of ``next_move_30d``).

    Cancelling follows churn's log-odds; customers who pay much for little use downgrade
    (premium ones most); heavy users with many devices on a small plan upgrade. ``concept``
    (1: the drifted relationship) is a new bundle: two-year customers upgrade, and customers
    with many devices upgrade less, not more.
    """
    price = frame["monthly_charges"].to_numpy(float)
    usage = np.minimum(frame["usage_hours_30d"].to_numpy(float), 80.0)
    devices = frame["num_devices"].to_numpy(float)
    tickets = np.minimum(frame["support_tickets_90d"].to_numpy(float), 5.0)
    basic = (frame["plan"] == "basic").to_numpy(float)
    premium = (frame["plan"] == "premium").to_numpy(float)
    two = (frame["contract"] == "two-year").to_numpy(float)
    cancel = churn_logit(frame, concept)
    downgrade = -1.7 + 0.03 * (price - 60) - 0.04 * (usage - 20) + 0.3 * tickets + 0.9 * premium
    upgrade = (
        -2.3
        + 0.05 * (usage - 20)
        + 0.45 * (1 - 2 * concept) * (devices - 2)
        + 1.1 * basic
        - 0.02 * (price - 60)
        + 2.0 * concept * two
    )
    return np.stack([cancel, downgrade, np.zeros(len(price)), upgrade], axis=1)


def move_probabilities(frame: pd.DataFrame, concept: float = 0.0) -> np.ndarray:
    """Each customer's probability of each of :data:`MOVES` (the soft-max of the log-odds)."""
    z = move_logits(frame, concept)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _mess(frame: pd.DataFrame, rng: np.random.Generator, label: str = CHURN) -> pd.DataFrame:
    """Make a clean frame look like a real export."""
    out = frame.copy()
    n = len(out)

    def render_dates(values: pd.Series) -> pd.Series:
        pick = rng.choice(len(DATE_FORMATS), n, p=[0.7, 0.2, 0.1])
        rendered = pd.Series(values.dt.strftime(DATE_FORMATS[0]), index=values.index, dtype=object)
        for k in (1, 2):
            mask = pick == k
            rendered[mask] = values[mask].dt.strftime(DATE_FORMATS[k])
        return rendered

    out["signup_date"] = render_dates(out["signup_date"])
    out["last_activity_date"] = render_dates(out["last_activity_date"])
    out["snapshot_date"] = out["snapshot_date"].dt.strftime("%Y-%m-%d")

    for column in ("contract", "payment_method"):
        values = out[column].astype(object).to_numpy().copy()
        swap = rng.random(n) < 0.15
        pick = rng.integers(0, 1 << 30, n)
        for canonical, variants in _VARIANTS.items():
            mask = swap & (values == canonical)
            values[mask] = np.asarray(variants, dtype=object)[pick[mask] % len(variants)]
        out[column] = values

    # unit bug: a share of rows exported in cents
    cents = rng.random(n) < 0.03
    out["monthly_charges"] = np.where(cents, out["monthly_charges"] * 100, out["monthly_charges"])

    # numbers stored as text; blank for brand-new customers
    total = out["tenure_months"] * out["monthly_charges"] / np.where(cents, 100, 1)
    total_text = pd.Series(
        np.char.mod("%.2f", total.to_numpy(float)), index=out.index, dtype=object
    )
    total_text[out["tenure_months"] == 0] = " "
    out["total_charges"] = total_text

    for column, share in (("usage_hours_30d", 0.04), ("age", 0.03), ("region", 0.01)):
        mask = rng.random(n) < share
        out[column] = out[column].astype(object if column == "region" else float)
        out.loc[mask, column] = None
    pay = out["payment_method"].astype(object)
    pay[rng.random(n) < 0.02] = None
    out["payment_method"] = pay
    values = out[label].astype(object)
    values[rng.random(n) < 0.005] = None
    out[label] = values

    dup = out[rng.random(n) < 0.01]
    return pd.concat([out, dup], ignore_index=True)


COLUMNS = (
    "customer_id",
    "snapshot_date",
    "signup_date",
    "tenure_months",
    "contract",
    "plan",
    "num_devices",
    "discount_pct",
    "monthly_charges",
    "total_charges",
    "age",
    "gender",
    "region",
    "last_activity_date",
    "usage_hours_30d",
    "support_tickets_90d",
    "autopay",
    "payment_method",
    "cancellation_reason",
    "churned_30d",
)


UNCERTAIN_POOL = 4
"""``uncertain`` drift draws a day's customers from this many times as many candidates."""
UNCERTAIN_SCALE = 1.0
"""... weighted by ``exp(-strength * (z / UNCERTAIN_SCALE)**2 / 2)`` of their true log-odds."""


def simulate_day(
    day: dt.date,
    n: int,
    seed: int,
    drift_kind: str = "none",
    drift_start: dt.date | None = None,
    drift_strength: float = 1.0,
    target: str = CHURN,
) -> SimulatedBatch:
    """Simulate the customers snapshotted on one day.

    Parameters
    ----------
    day : date
        The snapshot day.
    n : int
        Customers that day.
    seed : int
        Base seed; the day's rows depend only on ``seed`` and ``day``.
    drift_kind : {'none', 'covariate', 'new_category', 'concept', 'uncertain'}
        Drift applied when ``day >= drift_start``. ``uncertain`` is a covariate shift that
        hurts: the day's customers are drawn toward those whose churn is a toss-up (a new
        acquisition channel, say), chosen by their attributes alone, so churn given the
        attributes is unchanged while every model ranks them less well.
    drift_start : date, optional
        First drifted day.
    drift_strength : float
        Size of the drift (1 is the documented default).
    target : {'churned_30d', 'spend_next_30d', 'next_move_30d'}
        The outcome: churn (with ``cancellation_reason``, known only after it), the next 30
        days' spend, or the next move (:data:`MOVES`; neither with a post-outcome column).
        The features are the same rows.

    Returns
    -------
    SimulatedBatch
    """
    rng = np.random.default_rng(_day_seed(seed, day))
    drifted = drift_kind != "none" and drift_start is not None and day >= drift_start
    if drifted and drift_kind == "uncertain":
        pool = _latent_day(rng, day, UNCERTAIN_POOL * n)
        z = churn_logit(pool)
        weight = np.exp(-0.5 * drift_strength * (z / UNCERTAIN_SCALE) ** 2)
        keep = np.sort(rng.choice(len(pool), n, replace=False, p=weight / weight.sum()))
        latent = pool.iloc[keep].reset_index(drop=True)
    else:
        latent = _latent_day(rng, day, n)
    if drifted and drift_kind == "covariate":
        latent["monthly_charges"] = np.round(
            latent["monthly_charges"] * (1 + 0.3 * drift_strength), 2
        )
    if drifted and drift_kind == "new_category":
        take = rng.random(n) < min(0.35 * drift_strength, 1.0)
        latent.loc[take, "payment_method"] = NEW_PAYMENT
    concept = drift_strength if drifted and drift_kind == "concept" else 0.0

    proba = 1.0 / (1.0 + np.exp(-churn_logit(latent, concept)))
    churned = rng.random(n) < proba
    ids = [f"C{day.toordinal():07d}{i:05d}" for i in range(n)]
    snapshot = latent["snapshot_date"]
    latent["customer_id"] = ids
    latent["signup_date"] = snapshot - pd.to_timedelta(
        latent["tenure_months"] * 30 + latent["signup_jitter"], unit="D"
    )
    latent["last_activity_date"] = snapshot - pd.to_timedelta(
        latent["days_since_last_activity"], unit="D"
    )
    if target == SPEND:
        expected = expected_spend(latent, proba, concept)
        spend = expected * np.exp(rng.normal(0.0, SPEND_NOISE, n))
        latent[SPEND] = np.round(spend, 2)
        oracle = pd.DataFrame({"customer_id": ids, "oracle_value": expected})
        messy = _mess(latent, rng, SPEND)
        columns = [c for c in COLUMNS if c not in (CHURN, "cancellation_reason")] + [SPEND]
        return SimulatedBatch(data=messy[columns], oracle=oracle)
    if target == MOVE:
        p = move_probabilities(latent, concept)
        drawn = (rng.random(n)[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
        latent[MOVE] = np.array(MOVES)[drawn]
        oracle = pd.DataFrame(
            {"customer_id": ids, **{f"oracle_{m}": p[:, k] for k, m in enumerate(MOVES)}}
        )
        messy = _mess(latent, rng, MOVE)
        columns = [c for c in COLUMNS if c not in (CHURN, "cancellation_reason")] + [MOVE]
        return SimulatedBatch(data=messy[columns], oracle=oracle)
    latent["churned_30d"] = np.where(churned, "yes", "no")
    reasons = rng.choice(REASONS, n)
    latent["cancellation_reason"] = np.where(churned, reasons, None)
    oracle = pd.DataFrame({"customer_id": ids, "oracle_proba": proba})
    messy = _mess(latent, rng)
    return SimulatedBatch(data=messy[list(COLUMNS)], oracle=oracle)


def simulate(
    start: dt.date,
    end: dt.date,
    customers_per_day: int,
    seed: int,
    drift_kind: str = "none",
    drift_start: dt.date | None = None,
    drift_strength: float = 1.0,
    target: str = CHURN,
) -> SimulatedBatch:
    """Simulate every day in ``[start, end]``; see :func:`simulate_day` for the parameters."""
    if end < start:
        raise ValueError(f"window end {end} is before start {start}")
    days = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
    batches = [
        simulate_day(d, customers_per_day, seed, drift_kind, drift_start, drift_strength, target)
        for d in days
    ]
    data = pd.concat([b.data for b in batches], ignore_index=True)
    oracle = pd.concat([b.oracle for b in batches], ignore_index=True)
    for column in data.columns:
        if data[column].dtype == object:
            data[column] = data[column].astype("string")
    return SimulatedBatch(data=data, oracle=oracle)
