"""Multiclass problems (issue 43): the simulator's next-move target (cancel, downgrade, stay,
upgrade) trained once on the small profile and read by the tests here, and two real tables
with only ``collect`` and ``problem`` edited (modeldata's ``hpc_data`` with its authors'
cost matrix, carData's ``WVS``), each within 5% of a hand-made XGBoost's log loss (WVS's
signal is weak: its gate refuses it, naming the slice and the fairness gap).

Every run takes the steps in this process (``devtools.project.run_in_process``): the flow
around them is the one the binary and regression tests run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from devtools.project import MOVE as MOVE_PROBLEM
from devtools.project import deep_merge, run_in_process
from flows.runtime.processes import tool_env
from scoring.compiled import CompiledModel
from scoring.scoring import LoadedModel
from service.app import create_app
from tasks.core.config import load_params
from tasks.core.data.simulator import MOVE, MOVES, simulate
from tasks.core.ml.models import build_pipeline, model_inputs
from tasks.core.ml.objective import objective_for
from tasks.core.ml.report import PLOT_FILES
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tasks.core.step import run_step
from tests.conftest import fit_in_memory, make_project, without_served_state
from tests.data.real import MULTICLASS_REAL, overrides, plain_log_loss, write_csv
from tests.service.live import AUTH, live_customers, predict_then_label
from tests.service.parity import assert_same_answers, json_records

pytestmark = pytest.mark.slow
RUN = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
# a 358-row test set: a class's recall in a gender group rests on 30 to 80 rows, whose noise
# alone spreads the groups by about 0.1 (the shipped limit, for the full data)
SMALL_TEST_FAIRNESS = {"evaluate": {"fairness": {"max_tpr_gap": 0.25}}}


@pytest.fixture(scope="module")
def move_project(tmp_path_factory) -> Path:
    """The next-move problem (``devtools.project.MOVE``) run through every step once, its
    model champion v0001."""
    overrides = deep_merge(MOVE_PROBLEM, SMALL_TEST_FAIRNESS)
    root = make_project(tmp_path_factory.mktemp("move") / "proj", overrides)
    decision = run_in_process(root, RUN)
    assert decision is not None and decision.promoted, decision
    return root


@pytest.fixture(scope="module")
def move_champion(move_project) -> LoadedModel:
    registry = Registry(move_project / "registry")
    return LoadedModel.load(registry, registry.champion())


@pytest.fixture(scope="module")
def live_records() -> tuple[list[dict], list[str]]:
    """600 raw records the model never saw, and their next moves."""
    data = simulate(dt.date(2024, 4, 1), dt.date(2024, 4, 2), 300, seed=11, target=MOVE).data
    return json_records(data.drop(columns=[MOVE])), data[MOVE].astype(str).tolist()


def test_the_next_move_target_runs_through_every_step_with_its_reports(move_project):
    root = move_project
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    test = metrics["test"]
    assert {"log_loss", "macro_f1", "accuracy", "roc_auc_ovr"} <= set(test)
    # the known model's probabilities are the best achievable ranking; the model comes close
    assert 0.7 < test["roc_auc_ovr"] <= test["oracle_roc_auc_ovr"] + 0.01, test
    assert set(metrics["baseline"]) == {"class_prior", "rule:contract"}
    rule = metrics["baseline"]["rule:contract"]  # the class shares of each contract
    assert metrics["baseline"]["class_prior"]["log_loss"] > rule["log_loss"] > test["log_loss"]
    per_class = metrics["per_class"]
    assert set(per_class) == {"model", "class_prior", "rule:contract"}
    assert set(per_class["model"]) == set(MOVES)
    assert set(per_class["model"]["stay"]) == {"precision", "recall", "f1", "rows"}
    assert metrics["blessed"], json.loads((root / PATHS.evaluation_json).read_text())
    meta = json.loads((root / PATHS.model_meta).read_text())
    assert meta["classes"] == sorted(MOVES) and meta["threshold"] is None
    champion = Registry(root / "registry").champion()
    assert champion.card["classes"] == sorted(MOVES)
    reference = champion.reference()
    assert {f"prediction_{m}" for m in MOVES} <= set(reference.columns)
    assert set(reference["prediction"]) <= set(MOVES)
    # the plots: the confusion matrix by class name and the top-label calibration
    confusion = pd.read_csv(root / PATHS.confusion_csv)
    assert set(confusion["actual"]) == set(MOVES) and set(confusion["predicted"]) <= set(MOVES)
    calibration = pd.read_csv(root / PATHS.top_calibration_csv)
    assert list(calibration.columns) == ["mean_top_probability", "observed_accuracy"]
    assert (root / PATHS.figures_dir / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    plots = subprocess.run(
        ["dvc", "plots", "show", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
        check=True,
    )
    shown = json.loads(plots.stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert {next(iter(p)) for p in PLOT_FILES["multiclass"]} <= set(shown["data"])
    card = (root / PATHS.model_card).read_text()
    assert "| Decision | the most probable class |" in card and "| upgrade |" in card
    brief = (root / PATHS.problem_brief).read_text()
    assert "(one of several classes)" in brief and "4 classes: `cancel`" in brief


def test_a_multiclass_champion_answers_by_class_name_on_both_paths(
    move_project, move_champion, live_records
):
    records, moves = live_records
    assert move_champion.compiled.kind == "LogisticRegression"
    counts = assert_same_answers(move_champion, records, singles_every=10)
    assert counts["scored"] == len(records)
    # XGBoost's softprob on the compiled path too
    problem = load_params(move_project / PATHS.params).problem
    objective = objective_for(problem, MOVES)
    train, valid = (pd.read_parquet(move_project / p) for p in (PATHS.train, PATHS.valid))
    X_train, y_train, _, _ = model_inputs(train, problem, objective)
    X_valid, y_valid, _, _ = model_inputs(valid, problem, objective)
    card = move_champion.version.card
    pipeline = build_pipeline(
        "xgboost",
        card["numeric_features"],
        card["categorical_features"],
        {"n_estimators": 100, "max_depth": 3},
        0,
        50,
        objective,
    )
    fit_in_memory(pipeline, X_train, y_train, X_valid, y_valid, early_stopping_rounds=20)
    xgb_model = dataclasses.replace(move_champion, model=pipeline)
    object.__setattr__(xgb_model, "compiled", CompiledModel(xgb_model))
    assert xgb_model.compiled.kind == "XGBClassifier"
    assert assert_same_answers(xgb_model, records[:200])["scored"] == 200
    # the API: a label and a probability per class; ground truth is a class's name
    root = move_project.parent / "served"
    shutil.copytree(move_project, root, ignore=without_served_state(".git"))
    app = create_app(root / "registry", poll_s=0.1, feedback_tokens={"t": "tests"})
    with TestClient(app) as client:
        answer = client.post("/predict", json={"records": records[:50]}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"request_id", "model_version", "predictions"}
        first = body["predictions"][0]
        assert set(first) == {"id", "label", "probabilities"}
        assert list(first["probabilities"]) == sorted(MOVES)
        assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        right = np.mean([p["label"] == m for p, m in zip(body["predictions"], moves)])
        assert right > 0.4  # the class prior's most frequent class is right 46% of the time
        rid = body["request_id"]
        labels = [{"request_id": rid, "row": i, "label": moves[i]} for i in range(50)]
        stored = client.post("/feedback", json={"labels": labels}, headers=AUTH)
        assert stored.status_code == 200 and stored.json()["labelled_rows"] == 50, stored.text
        wrong = client.post(
            "/feedback", json={"labels": [{"request_id": rid, "label": 1}]}, headers=AUTH
        )
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["loc"] == ["body", "labels", 0, "label"]
        assert "one of the classes" in wrong.json()["detail"][0]["msg"]


def test_batch_scoring_writes_the_label_and_a_probability_per_class(move_champion, tmp_path):
    from flows.batch_scoring import score_chunk

    data = simulate(dt.date(2024, 4, 1), dt.date(2024, 4, 1), 20, seed=3, target=MOVE).data
    scored = score_chunk.fn(move_champion, data.drop(columns=[MOVE]), "batch-1", tmp_path)
    wanted = {"label", *(f"probability_{m}" for m in MOVES)}
    assert wanted <= set(scored.columns) and "decision" not in scored
    assert set(scored["label"]) <= set(MOVES)
    total = scored[[f"probability_{m}" for m in MOVES]].sum(axis=1)
    assert np.allclose(total, 1.0)


def test_a_rare_class_stops_feasibility_naming_it_and_the_two_ways_out(
    move_project, tmp_path, capsys, monkeypatch
):
    root = tmp_path / "proj"
    shutil.copytree(move_project, root, ignore=without_served_state(".git"))
    params = yaml.safe_load((root / PATHS.params).read_text())
    params["feasibility"]["min_minority_rows"] = 350  # cancel: 322 labelled rows
    (root / PATHS.params).write_text(yaml.safe_dump(params, sort_keys=False))
    from tasks import feasibility

    monkeypatch.chdir(root)
    assert run_step("feasibility", feasibility.main) == 1
    err = capsys.readouterr().err
    assert "rows of the rarest class (cancel) = 322 (needs >= 350)" in err, err[-2000:]
    assert "problem.class_aliases (as in {'cancel': 'stay'})" in err
    assert "lower feasibility.min_minority_rows" in err


def test_a_test_label_the_training_split_never_saw_is_named_and_left_out(
    move_project, tmp_path, monkeypatch
):
    from tasks import evaluate
    from tasks.core.io import file_sha256

    root = tmp_path / "proj"
    shutil.copytree(move_project, root, ignore=without_served_state(".git"))
    test = pd.read_parquet(root / PATHS.test)
    test.loc[:4, MOVE] = "moved abroad"  # a class that arrived after training
    test.to_parquet(root / PATHS.test, index=False)
    manifest = json.loads((root / PATHS.split_manifest).read_text())
    manifest["test"]["sha256"] = file_sha256(root / PATHS.test)
    (root / PATHS.split_manifest).write_text(json.dumps(manifest))
    monkeypatch.chdir(root)
    assert run_step("evaluate", evaluate.main) == 0
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    assert metrics["unseen_classes"] == {"moved abroad": 5}
    evaluation = json.loads((root / PATHS.evaluation_json).read_text())
    assert evaluation["data"]["test_rows"] == len(test) - 5
    assert sum(c["rows"] for c in metrics["per_class"]["model"].values()) == len(test) - 5


def test_monitoring_judges_class_labels_the_class_mix_and_the_estimate_before_labels(
    move_project, prefect_api, tmp_path
):
    """Live accuracy and macro-F1 once class labels arrive, the predicted class mix's drift,
    and multiclass CBPE's estimate beside the realised macro-F1."""
    from flows.monitoring import MULTICLASS_ESTIMATE_PANEL, monitoring
    from tests.monitor.dashboard import panel_series

    root = tmp_path / "proj"
    shutil.copytree(move_project, root, ignore=without_served_state(".git"))
    records, truth = live_customers(root, MOVE, lambda moves: moves.astype("string"))
    app = create_app(root / "registry", poll_s=0.1, feedback_tokens={"t": "tests"})
    with TestClient(app) as client:
        served = [p["label"] for p in predict_then_label(client, records, truth)]
    now = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).isoformat()
    summary = monitoring(project_dir=str(root), now=now, window_hours=1)
    prefect_api.check_alive()

    live = summary["live_performance"]
    assert live["evaluated"] and live["figures"] == [
        "log_loss",
        "macro_f1",
        "accuracy",
        "roc_auc_ovr",
    ]
    realised = np.mean([a == b for a, b in zip(served, truth)])
    assert live["accuracy"] == pytest.approx(realised, abs=1e-9), live
    mix = summary["drift"]["prediction_mix"]
    assert set(mix["current"]) <= set(MOVES) and summary["drift"]["prediction_noise_floor"] > 0
    found = summary["estimated_performance"]
    assert found["evaluated"] and found["method"].startswith("CBPE (NannyML, multiclass)")
    then = found["labelled"]
    assert then["rows"] >= 1000 and then["realised_macro_f1"] == pytest.approx(
        live["macro_f1"], abs=1e-4
    )
    assert then["absolute_error"] <= 0.05, then  # the estimate they had, against the truth
    assert set(found["predicted_class_mix"]) == set(MOVES)
    assert summary["shadow"]["note"].startswith("no previous champion")
    drawn = panel_series(root / "monitoring" / "evidently")
    assert drawn["Live accuracy and macro-F1 (labelled requests)"] == [1, 1], drawn
    assert drawn["Predicted class mix drift"] == [1], drawn
    assert drawn[MULTICLASS_ESTIMATE_PANEL] == [1, 1, 1, 1], drawn


@pytest.fixture(scope="module", params=sorted(MULTICLASS_REAL))
def real_run(request, tmp_path_factory) -> tuple[str, Path, object]:
    name = request.param
    params = {  # small budgets: the linear model and XGBoost (the forest is tried on the
        # simulator's target above), 3 folds, 3 tuning trials, importance on 500 test rows
        **overrides(name),
        "choose": {
            **overrides(name)["choose"],
            "candidates": ["logistic_regression", "xgboost"],
            "cv_folds": 3,
        },
        "train": {"n_trials": 3},
        "feasibility": {"n_permutations": 19},
        "evaluate": {**overrides(name)["evaluate"], "importance_rows": 500},
    }
    root = make_project(tmp_path_factory.mktemp(f"mc-{name}") / "proj", params, small=False)
    write_csv(name, root / "data" / "external")
    decision = run_in_process(root, RUN)
    assert decision is not None, "a step failed (its message is on stderr)"
    return name, root, decision


def test_a_real_multiclass_table_runs_end_to_end_and_matches_a_hand_made_xgboost(real_run, capsys):
    from flows.runtime.rerun import print_model_summary

    name, root, decision = real_run
    print_model_summary(root)  # what `make run` prints last: the type's metrics
    assert "test log loss" in capsys.readouterr().out
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    target = MULTICLASS_REAL[name]["params"]["problem"]["target"]
    plain, found = plain_log_loss(root, target), metrics["test"]["log_loss"]
    print(f"{name}: workflow test log loss {found:.4f}, hand-made {plain:.4f}")
    assert found <= 1.05 * plain, (metrics["test"], plain)
    reasons = json.loads((root / PATHS.evaluation_json).read_text())["gate_reasons"]
    if name == "wvs":  # a weak signal (one-vs-rest ROC-AUC 0.64): the gate says where
        assert not metrics["blessed"] and decision.registered is None
        failed = [r for r in reasons if r.startswith("FAIL")]
        assert any(r.startswith("FAIL slice country=australia") for r in failed), reasons
        assert any(r.startswith("FAIL gender: recall gap") for r in failed), reasons
    else:
        assert metrics["blessed"] and decision.promoted, reasons
    raw = pd.read_csv(root / "data" / "external" / MULTICLASS_REAL[name]["file"])
    classes = sorted(raw[target].unique())
    assert sorted(metrics["per_class"]["model"]) == classes, metrics["per_class"]["model"]
    if name == "hpc":  # the authors' costs: the least expected cost, not the likeliest class
        meta = json.loads((root / PATHS.model_meta).read_text())
        assert meta["threshold"][classes.index("L")][classes.index("VF")] == 10.0
        assert 0 < metrics["test"]["expected_cost"] < 1.0, metrics["test"]
        card = (root / PATHS.model_card).read_text()
        assert "least expected cost under evaluate.cost_matrix" in card
        assert "Expected cost per row (`evaluate.cost_matrix`)" in card
