"""Registry: versions, atomic alias switches, promotion only on a proven gain, rollback, hash
checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tasks.core.ml.comparison import compare, score_version
from tasks.core.ml.models import build_pipeline, model_inputs, save_model
from tasks.core.ml.objective import objective_for
from tasks.core.ml.reference import reference_sample
from tasks.core.serving.registry import Registry, RegistryError
from tasks.promote import training_schema


@pytest.fixture(scope="module")
def fitted(splits, params, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("models")
    X, y, numeric, categorical = model_inputs(splits["train"], params.problem)
    good = build_pipeline(
        "xgboost", numeric, categorical, {"n_estimators": 150, "max_depth": 3}, 0
    ).fit(X, y)
    weak_cols = ["support_tickets_90d"]
    weak = build_pipeline("logistic_regression", weak_cols, [], {}, 0).fit(X[weak_cols], y)
    out = {}
    for name, model, num, cat in (
        ("good", good, numeric, categorical),
        ("weak", weak, weak_cols, []),
    ):
        path = tmp_path / f"{name}.skops"
        save_model(model, path)
        out[name] = (
            path,
            model,
            {"model": name, "numeric_features": num, "categorical_features": cat},
        )
    return out


def register(registry, fitted, name, splits, params):
    path, model, card = fitted[name]
    return registry.register(
        path,
        card,
        training_schema(splits["train"], params),
        reference_sample(splits["train"], splits, model, params)[0]
        if name == "good"
        else splits["train"].head(100),
    )


def test_versions_are_added_never_replaced_and_aliases_switch_with_history(
    tmp_path, fitted, splits, params
):
    registry = Registry(tmp_path / "registry")
    v1 = register(registry, fitted, "weak", splits, params)
    v2 = register(registry, fitted, "good", splits, params)
    assert (v1.version, v2.version) == ("v0001", "v0002")
    assert v2.card["model_sha256"] and v2.schema()["columns"]["contract"]["categories"]
    assert "prediction" in v2.reference()
    registry.promote("v0001", "first")
    registry.promote("v0002", "better")
    assert registry.aliases() == {"champion": "v0002", "previous_champion": "v0001"}
    assert registry.rollback() == "v0001"
    assert registry.aliases() == {"champion": "v0001", "previous_champion": "v0002"}
    assert registry.rollback(to="v0002", reason="named") == "v0002"
    actions = [(h["action"], h["version"]) for h in registry.history()]
    assert actions == [
        ("promote", "v0001"),
        ("promote", "v0002"),
        ("rollback", "v0001"),
        ("rollback", "v0002"),
    ]
    assert not [p for p in (tmp_path / "registry").rglob(".tmp-*")], "no half-written files"
    with pytest.raises(RegistryError, match="no model version 'v0009'"):
        registry.rollback(to="v0009")


def test_rollback_without_a_previous_champion_is_refused(tmp_path, fitted, splits, params):
    registry = Registry(tmp_path / "registry")
    register(registry, fitted, "good", splits, params)
    registry.promote("v0001", "first")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()


def test_a_model_file_edited_on_disk_is_refused_at_load(tmp_path, fitted, splits, params):
    registry = Registry(tmp_path / "registry")
    version = register(registry, fitted, "good", splits, params)
    assert registry.load(version) is not None
    os.chmod(version.model_path, 0o644)
    version.model_path.write_bytes(fitted["weak"][0].read_bytes())
    with pytest.raises(RegistryError, match="does not match its card"):
        registry.load(version)


def test_a_challenger_is_promoted_only_when_its_gain_is_proven(fitted, splits, params):
    test = splits["test"]
    y = test[params.problem.target].to_numpy(int)
    good = score_version(fitted["good"][1], fitted["good"][2], test, objective_for(params.problem))
    weak = score_version(fitted["weak"][1], fitted["weak"][2], test, objective_for(params.problem))
    better = compare(y, good, weak, test, params)
    assert better["promote"] and better["gain"]["lower"] > 0 and "clears it" in better["reasons"][0]
    same = compare(y, good, good, test, params)
    assert not same["promote"] and "does not clear it" in same["reasons"][0]
    worse = compare(y, weak, good, test, params)
    assert not worse["promote"] and worse["gain"]["lift"] < 0


def test_a_slice_regression_blocks_promotion_even_with_an_overall_gain(fitted, splits, params):
    test = splits["test"]
    y = test[params.problem.target].to_numpy(int)
    good = score_version(fitted["good"][1], fitted["good"][2], test, objective_for(params.problem))
    weak = score_version(fitted["weak"][1], fitted["weak"][2], test, objective_for(params.problem))
    challenger = good.copy()
    mask = (test["contract"] == "month-to-month").to_numpy()
    challenger[mask] = np.random.default_rng(0).random(mask.sum())
    decision = compare(y, challenger, good, test, params)
    assert not decision["promote"]
    assert any("slice contract=month-to-month" in r for r in decision["reasons"]), decision[
        "reasons"
    ]
    assert json.dumps(decision)  # the decision is reportable as JSON
    del weak
