"""A project that has run the pipeline once, with its model registered as champion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks import choose_model, clean, collect, evaluate, features, feasibility, problem, split, train
from tasks.core.config import load_params
from tasks.core.registry import Registry
from tasks.core.step import run_step
from tasks.deploy import register_and_promote
from tests.conftest import make_project

STEPS = (("collect", collect), ("problem", problem), ("feasibility", feasibility), ("clean", clean),
         ("features", features), ("split", split), ("choose", choose_model), ("train", train), ("evaluate", evaluate))


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("served") / "proj")
    before = Path.cwd()
    os.chdir(root)
    try:
        for name, module in STEPS:
            assert run_step(name, module.main) == 0, f"step {name} failed"
    finally:
        os.chdir(before)
    params = load_params(root / "params.yaml")
    registry = Registry(root / "registry")
    decision = register_and_promote(root, params, registry, {"flow_run_id": "test", "flow_run_name": "test",
                                                             "experiment": "test-exp", "code_version": "test"})
    assert decision["promoted"], decision
    return root
