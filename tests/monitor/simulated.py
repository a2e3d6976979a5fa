"""The simulated customers the estimate tests share: a champion's history, then windows of
live customers (a day of 600 each, two days apart, as in ``make demo``), with or without
drift."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from tasks.core.data.simulator import CHURN, simulate

LIVE_FROM = dt.date(2024, 4, 1)
"""The first live day: the history ends the day before."""


def history(target: str = CHURN) -> pd.DataFrame:
    """The customers of the days before :data:`LIVE_FROM` (the champion's data)."""
    return simulate(
        dt.date(2024, 1, 1), LIVE_FROM - dt.timedelta(days=1), 100, seed=5, target=target
    ).data


def live_windows(
    count: int,
    target: str = CHURN,
    drift_kind: str = "none",
    from_window: int = 0,
    strength: float = 1.0,
) -> list[pd.DataFrame]:
    """``count`` windows of live customers' raw rows, the drift starting with window
    ``from_window``."""
    out = []
    for w in range(count):
        start = LIVE_FROM + dt.timedelta(days=2 * w)
        raw = simulate(
            start,
            start + dt.timedelta(days=1),
            600,
            seed=9,
            drift_kind=drift_kind,
            drift_start=LIVE_FROM + dt.timedelta(days=2 * from_window),
            drift_strength=strength,
            target=target,
        ).data
        out.append(raw)
    return out
