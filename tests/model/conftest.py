"""A small simulator dataset split like the pipeline does, shared by the model tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tasks.clean import clean_frame
from tasks.core.config import Params, parse_params
from tasks.core.schema import infer_kinds, standardise
from tasks.core.simulator import simulate
from tasks.features import build_features
from tasks.split import assign_splits
from tests.conftest import SMALL, deep_merge, default_params_dict


@pytest.fixture(scope="session")
def params() -> Params:
    return parse_params(deep_merge(default_params_dict(), SMALL))


@pytest.fixture(scope="session")
def splits(params) -> dict[str, pd.DataFrame]:
    raw = simulate(dt.date(2024, 1, 1), dt.date(2024, 4, 30), 60, seed=3).data
    p, c = params.problem, params.clean
    kinds = infer_kinds(raw, p.id_column, p.target, p.time_column, c.date_formats, c.min_parse_share, c.max_categories)
    std = standardise(raw, kinds, p.positive_label, c.date_formats, c.category_aliases,
                      [f.model_dump() for f in c.unit_fixes]).frame
    clean, _ = clean_frame(std, p)
    features, _ = build_features(clean, p, [])
    labels = assign_splits(features, params.split, p)
    return {name: features[labels == name].reset_index(drop=True) for name in ("train", "valid", "test")}
