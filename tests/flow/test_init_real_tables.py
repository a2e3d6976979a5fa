"""Two public tables no other test has seen, set up only as a new user would: the CSV into
``data/external/``, ``make init WRITE=1`` (``python -m tasks.core.quality.inspect FILE
--write``), the target's name, then every step's code in this process (the training flow
around them is the one the other real-data tests run).

- HMDA mortgage applications: no feature is taken for personal data (its decimals were
  "phone numbers" before), the race column is proposed as sensitive, and a fairness check
  it cannot judge (too few applicants in a group of the test split) blocks the blessing
  with its reason, in the gate, the card and ``reports/metrics.json``.
- New York flights (a 20,000-row sample, every column as exported): the ISO 8601
  ``time_hour`` is the time column, ``arr_delay`` (alone), ``dep_time`` (beside
  ``sched_dep_time``) and ``arr_time`` are found to give the outcome away, and the 3,000-odd
  tail numbers are target encoded, not one-hot encoded.

Each run scores within 0.02 ROC-AUC of a plain logistic regression or XGBoost on its split.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml

from devtools.project import run_in_process
from flows.runtime.processes import tool_env
from tasks.core.config import parse_params
from tasks.core.paths import PATHS
from tests.conftest import make_project
from tests.data.real import flights, hmda, plain_roc_auc

pytestmark = pytest.mark.slow

TABLES = {"hmda": (hmda, "deny"), "flights": (flights, "late")}


@pytest.fixture(scope="module", params=sorted(TABLES))
def init_run(request, tmp_path_factory):
    name = request.param
    load, target = TABLES[name]
    # the shipped params.yaml; smaller budgets than the shipped 20 trials and 39 permutations
    budgets = {"train": {"n_trials": 5}, "feasibility": {"n_permutations": 19}}
    root = make_project(tmp_path_factory.mktemp(f"init-{name}") / "proj", budgets, small=False)
    load().to_csv(root / "data" / "external" / f"{name}.csv", index=False)
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.core.quality.inspect",
            f"data/external/{name}.csv",
            "--write",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=600,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    params = yaml.safe_load((root / PATHS.params).read_text())
    assert params["problem"]["target"] == target, "make init proposed another target"
    # every step's code in this process (devtools.project.run_in_process), without the
    # flow's own ~50 s of DVC and Prefect work: the flow is the same for every table, and the
    # real-dataset and training-flow tests run it; the steps' log is kept for the checks
    logged: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    churn = logging.getLogger("churn")
    level = churn.level
    churn.addHandler(handler)
    churn.setLevel(logging.INFO)
    try:
        run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
        ran = run_in_process(root, run) is not None or (root / PATHS.metrics_json).exists()
    finally:
        churn.removeHandler(handler)
        churn.setLevel(level)
    flow = subprocess.CompletedProcess([], 0 if ran else 1, "", "\n".join(logged))
    return name, root, init, flow


def test_init_drops_no_feature_and_the_run_matches_a_plain_model(init_run):
    name, root, init, flow = init_run
    out = flow.stdout + flow.stderr
    assert flow.returncode == 0, out[-4000:]
    params = parse_params(yaml.safe_load((root / PATHS.params).read_text()))
    assert params.collect.pii == {}, f"a feature was proposed as personal: {init.stdout}"
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    skip = {params.problem.id_column, params.problem.time_column} - {None}
    plain = plain_roc_auc(root, params.problem.target, skip)
    print(f"{name}: workflow test ROC-AUC {metrics['test']['roc_auc']:.4f}, plain {plain:.4f}")
    assert metrics["test"]["roc_auc"] >= plain - 0.02, (metrics["test"], plain)
    # the keys init wrote for this data, and the defaults it kept, said in comments
    text = (root / PATHS.params).read_text()
    assert "make init: floors from the best single column" in text
    assert "make init: the churn defaults, kept" in text
    assert params.problem.horizon_days is None and params.problem.label_delay_days is None


def test_hmda_keeps_its_decimals_and_a_fairness_check_it_cannot_judge_blocks(init_run):
    name, root, init, flow = init_run
    if name != "hmda":
        pytest.skip("the mortgage table's findings")
    params = parse_params(yaml.safe_load((root / PATHS.params).read_text()))
    assert params.evaluate.sensitive == ["afam"]
    meta = json.loads((root / PATHS.model_meta).read_text())
    assert {"lvrat", "unemp", "pirat", "hirat"} <= set(meta["numeric_features"])
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    evaluation = json.loads((root / PATHS.evaluation_json).read_text())
    judged = [f["column"] for f in evaluation["fairness"]]
    if "afam" in judged:  # both groups large enough: judged, not skipped
        assert not any("afam" in s for s in metrics["skipped"])
        return
    assert any("fairness on 'afam' could not be judged" in r for r in evaluation["gate_reasons"])
    assert not metrics["blessed"] and any("afam" in s for s in metrics["skipped"])
    card = (root / PATHS.model_card).read_text()
    assert "**skipped** afam" in card


def test_flights_runs_with_its_columns_as_exported(init_run):
    name, root, init, flow = init_run
    if name != "flights":
        pytest.skip("the flights table's findings")
    params = parse_params(yaml.safe_load((root / PATHS.params).read_text()))
    assert params.problem.time_column == "time_hour"
    assert {"arr_delay", "dep_time", "arr_time"} <= set(params.problem.post_outcome_columns)
    meta = json.loads((root / PATHS.model_meta).read_text())
    assert {"tailnum", "carrier", "dest"} <= set(meta["categorical_features"])
    selection = json.loads((root / PATHS.selection_json).read_text())
    assert selection["folds"] == "time"  # model choice validated on later flights
    log = flow.stdout + flow.stderr
    assert "fold 1/5" in log, "choose reports each fit as it ends"
