"""What decisions cost: the expected cost of acting on a score, and the cheapest threshold."""

from __future__ import annotations

import numpy as np

from tasks.core.config import CostMatrix


def expected_cost(y: np.ndarray, proba: np.ndarray, threshold: float, cost: CostMatrix) -> float:
    """Mean cost per row of acting on ``proba >= threshold``."""
    act = proba >= threshold
    total = (
        cost.true_positive * (act & (y == 1)).sum()
        + cost.false_positive * (act & (y == 0)).sum()
        + cost.false_negative * (~act & (y == 1)).sum()
        + cost.true_negative * (~act & (y == 0)).sum()
    )
    return float(total / len(y))


def best_threshold(y: np.ndarray, proba: np.ndarray, cost: CostMatrix) -> tuple[float, float]:
    """The threshold (on a 0.01 grid) with the lowest expected cost, and that cost."""
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    costs = [expected_cost(y, proba, t, cost) for t in grid]
    k = int(np.argmin(costs))
    return float(grid[k]), float(costs[k])
