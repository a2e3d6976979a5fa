"""dvc.yaml lists exactly the params keys each stage reads.

The shared trained project runs every stage with ``tracing_reads``; a key a stage reads but
does not list would leave its results cached after an edit, and a section listed whole where
the stage reads a few of its keys reruns the stage (and everything after it) for nothing:
editing ``problem.metric_reason`` must not retrain the model.
"""

from __future__ import annotations

import json

import pytest

from flows.runtime.pipeline import load_stages
from tasks.core.config import Params, Section
from tests.conftest import PARAMS_READS, REPO


def leaves(model: type[Section], prefix: str) -> set[str]:
    """Every leaf key under a section type."""
    out = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        kinds = [
            a
            for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, Section)
        ]
        out |= leaves(kinds[0], key) if kinds else {key}
    return out


ALL_LEAVES = leaves(Params, "")

# Where the work runs does not change a stage's results (tests/code/test_dask_engine.py shows
# the same outputs on both engines), so compute.* need not be listed; train lists
# compute.engine because xgboost.dask trains a slightly different model.
RUNTIME_ONLY = ("compute",)
# Keys read only on a branch the small simulator profile does not take.
BRANCH_ONLY = {
    "clean": {
        "clean.max_categories": "suite proposal for a new source",
        "clean.proposal.mostly": "suite proposal for a new source",
        "clean.proposal.null_margin": "suite proposal for a new source",
        "collect.path": "the suite's name for a file source",
    },
    "split": {"split.group_column": "split.strategy group"},
}


def under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


@pytest.mark.slow
def test_each_stage_lists_exactly_the_params_it_reads(trained_project):
    reads = json.loads((trained_project / PARAMS_READS).read_text())
    problems = []
    for stage in load_stages(REPO / "dvc.yaml"):
        declared = [p.split(":")[-1] for p in stage.params]
        read = set(reads[stage.name])
        for key in sorted(read):
            if key.split(".")[0] in RUNTIME_ONLY and stage.name != "train":
                continue
            if not any(under(key, d) for d in declared):
                problems.append(f"{stage.name}: reads {key} but dvc.yaml does not list it")
        for d in declared:
            if any(under(d, r) for r in read):
                continue  # read whole (or a leaf listed as such)
            unread = sorted(
                leaf
                for leaf in ALL_LEAVES
                if under(leaf, d)
                and not any(under(leaf, r) for r in read)
                and leaf not in BRANCH_ONLY.get(stage.name, {})
            )
            if unread:
                problems.append(f"{stage.name}: lists {d} but never reads {', '.join(unread)}")
    assert not problems, "\n".join(problems)


def test_a_problem_description_or_kpi_edit_does_not_rerun_the_model_stages():
    # the contract the trace test enforces, stated plainly for the keys people edit most
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
