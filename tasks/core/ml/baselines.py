"""The baselines a model has to beat: the majority class and a one-column rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.config import ProblemParams, RuleBaseline
from tasks.core.data.schema import parse_numbers


def rule_scores(values: pd.Series, rule: RuleBaseline) -> np.ndarray:
    """The one-column rule baseline's scores: the column as numbers (missing: its median)."""
    numbers = parse_numbers(values)[0]
    numbers = numbers.fillna(numbers.median() if numbers.notna().any() else 0.0).to_numpy()
    return numbers if rule.higher_is_positive else -numbers


def baseline_scores(test: pd.DataFrame, problem: ProblemParams) -> dict[str, np.ndarray]:
    """Scores of the configured baselines on the test rows."""
    out: dict[str, np.ndarray] = {}
    if problem.baseline.majority_class:
        out["majority_class"] = np.zeros(len(test))
    rule = problem.baseline.rule
    if rule is not None and rule.column in test:
        out[f"rule:{rule.column}"] = rule_scores(test[rule.column], rule)
    return out
