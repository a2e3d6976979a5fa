"""Every metric name comes from the registry: a run judged by PR-AUC is tuned, gated and
plotted by PR-AUC, and ``dvc plots show`` draws every plot (issue 41).

Before: ``dvc.yaml`` plotted the tuning trials with ``y: roc_auc`` while train named that
column after ``problem.primary_metric``, so choosing ``pr_auc`` broke ``dvc plots``.
"""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from devtools.project import run_in_process
from tasks.core.paths import PATHS
from tests.flow.test_training_flow import dvc

pytestmark = pytest.mark.slow


def test_a_run_judged_by_pr_auc_tunes_gates_and_plots_by_it(project):
    root = project({"problem": {"primary_metric": "pr_auc"}})
    run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "t", "code_version": "t"}
    assert run_in_process(root, run) is not None, "the pipeline runs through"
    selection = json.loads((root / PATHS.selection_json).read_text())
    train = json.loads((root / PATHS.train_json).read_text())
    evaluation = json.loads((root / PATHS.evaluation_json).read_text())
    assert selection["metric"] == "pr_auc" and "valid_pr_auc" in train
    assert evaluation["lift"]["metric"] == "pr_auc", "a ranking metric is the lift's own"
    with (root / PATHS.trials_csv).open() as f:
        trials = list(csv.DictReader(f))
    assert {t["metric"] for t in trials} == {"pr_auc"}
    assert all(t["validation_score"] == t["pr_auc"] for t in trials)

    # every plot's columns exist in the file it reads, and dvc draws them all
    for stage in yaml.safe_load((root / PATHS.dvc_yaml).read_text())["stages"].values():
        for plot in stage.get("plots", []):
            for path, spec in plot.items() if isinstance(plot, dict) else []:
                with (root / path).open() as f:
                    header = next(csv.reader(f))
                wanted = {spec[k] for k in ("x", "y") if isinstance(spec, dict) and k in spec}
                assert wanted <= set(header), f"{path}: {wanted - set(header)} not a column"
    shown = json.loads(dvc(root, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert shown["data"][PATHS.trials_csv], "the tuning trials are drawn"
