"""dvc.yaml lists exactly the params keys each stage declares, and a stage reads no others.

A step's ``main`` declares what it reads in its signature (:mod:`tasks.core.declare`): its
own section, and the keys of other sections it needs. The stage's ``params`` in dvc.yaml
must be exactly those keys: one the stage reads but does not list would leave its results
cached after an edit, and a section listed whole where the stage reads a few of its keys
reruns the stage (and everything after it) for nothing: editing ``problem.metric_reason``
must not retrain the model. A read of an undeclared key fails the step, so the declaration
cannot fall behind the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from devtools.project import steps
from flows.runtime.pipeline import load_stages
from tasks.core.config import (
    ComputeParams,
    EvaluateParams,
    Params,
    ProblemParams,
    UndeclaredKey,
)
from tasks.core.declare import Keys, arguments, declared_keys
from tests.conftest import REPO, default_params_dict

# Where the work runs does not change a stage's results (tests/code/test_dask_engine.py shows
# the same outputs on both engines), so a stage receives compute whole without listing it;
# train lists compute.engine because xgboost.dask trains a slightly different model.
RUNTIME_ONLY = "compute"
RESULT_CHANGING = {"train": {"compute.engine"}}


def under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def test_each_stage_lists_exactly_the_params_its_main_declares():
    modules = dict(steps(REPO))
    problems = []
    for stage in load_stages(REPO / "dvc.yaml"):
        listed = {p.split(":")[-1] for p in stage.params}
        declared = set(declared_keys(modules[stage.name].main))
        runtime = {k for k in declared | listed if under(k, RUNTIME_ONLY)}
        expected = RESULT_CHANGING.get(stage.name, set())
        if runtime & listed != expected:
            problems.append(
                f"{stage.name}: lists {sorted(runtime & listed)} of compute, not {sorted(expected)}"
            )
        for key in sorted((declared - runtime) - listed):
            problems.append(f"{stage.name}: main() declares {key}, dvc.yaml does not list it")
        for key in sorted((listed - runtime) - declared):
            problems.append(f"{stage.name}: dvc.yaml lists {key}, main() does not declare it")
    assert not problems, "\n".join(problems)


def test_a_problem_description_or_kpi_edit_does_not_rerun_the_model_stages():
    # the contract the test above enforces, stated plainly for the keys people edit most
    model_stages = {"clean", "features", "split", "choose", "train"}
    for stage in load_stages(REPO / "dvc.yaml"):
        if stage.name not in model_stages:
            continue
        declared = [p.split(":")[-1] for p in stage.params]
        for key in (
            "problem.metric_reason",
            "problem.question",
            "problem.kpis.roc_auc_min",
            "problem.kpis.pr_auc_min",
        ):
            assert not any(under(key, d) for d in declared), (
                f"{stage.name} reruns when {key} changes"
            )


def entry(
    root: Path,
    cfg: EvaluateParams,
    problem: Annotated[ProblemParams, Keys("target", "kpis.target_precision")],
    compute: ComputeParams,
) -> None:
    """A step entry as the steps write them."""


def test_a_step_receives_its_section_whole_and_only_the_keys_it_declares_of_others():
    params = Params.model_validate(default_params_dict())
    args = arguments(entry, Path("."), params, "demo")
    assert declared_keys(entry) == [
        "evaluate",
        "problem.target",
        "problem.kpis.target_precision",
        "compute",
    ]
    assert args["cfg"] is params.evaluate and args["compute"] is params.compute
    problem = args["problem"]
    assert problem.target == params.problem.target
    assert problem.kpis.target_precision == params.problem.kpis.target_precision
    with pytest.raises(UndeclaredKey, match=r"step 'demo' read problem\.question, which"):
        problem.question
    with pytest.raises(UndeclaredKey, match=r"problem\.kpis\.roc_auc_min"):
        problem.kpis.roc_auc_min
    assert params.problem.question is not None  # the whole params are untouched


@pytest.mark.parametrize("name", [s.name for s in load_stages(REPO / "dvc.yaml")])
def test_each_stage_declares_keys_params_yaml_has(name):
    # a typo in a declaration fails here, not in a run
    params = Params.model_validate(default_params_dict())
    arguments(dict(steps(REPO))[name].main, Path("."), params, name)
