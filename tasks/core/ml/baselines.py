"""The one-column rule baseline (which baselines a problem has: its objective)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import RuleBaseline
from tasks.core.data.schema import parse_numbers


def rule_scores(values: pd.Series, rule: RuleBaseline) -> np.ndarray:
    """The one-column rule baseline's scores: the column as numbers (missing: its median)."""
    numbers = parse_numbers(values)[0]
    numbers = numbers.fillna(numbers.median() if numbers.notna().any() else 0.0).to_numpy()
    return numbers if rule.higher_is_positive else -numbers
