"""problem.type: the keys that depend on it agree with it, each error naming its key, and
the objective of each type answers as its contract says (regression: issue 42)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devtools.project import deep_merge
from flows.runtime.pipeline import load_stages, missing_params
from tasks.core.config import ParamsError, parse_params
from tasks.core.ml.objective import Regression, TargetError, objective_for
from tests.conftest import REPO, default_params_dict

REGRESSION = {
    "problem": {
        "type": "regression",
        "target": "spend",
        "positive_label": None,
        "primary_metric": "rmse",
        "kpis": {"rmse_max": 20.0, "r2_min": 0.3},
        "baseline": {"majority_class": True, "rule": None},
    },
    "choose": {"candidates": ["ridge", "random_forest", "xgboost"], "params": {}},
}


def regression_dict() -> dict:
    raw = deep_merge(default_params_dict(), REGRESSION)
    raw["problem"]["kpis"] = dict(REGRESSION["problem"]["kpis"])  # not merged with binary's
    raw["choose"]["params"] = {}
    return raw


def regression(**problem):
    raw = regression_dict()
    raw["problem"].update(problem)
    return parse_params(raw)


def refused(**problem) -> str:
    with pytest.raises(ParamsError) as err:
        regression(**problem)
    return str(err.value)


def test_a_regression_problem_reads_its_bounds_and_its_default_metric():
    params = regression()
    assert params.problem.type == "regression"
    objective = objective_for(params.problem)
    assert isinstance(objective, Regression)
    assert {f.key: f.value for f in objective.floors()} == {"rmse_max": 20.0, "r2_min": 0.3}
    raw = regression_dict()
    del raw["problem"]["primary_metric"], raw["problem"]["positive_label"]
    raw["problem"]["kpis"] = {}
    found = parse_params(raw).problem  # absent positive_label; kpis {} means no floors
    assert found.primary_metric == "rmse" and objective_for(found).floors() == []


def test_keys_that_do_not_fit_the_type_are_named():
    assert "problem.positive_label: applies to a binary problem only" in refused(
        positive_label="yes"
    )
    text = refused(kpis={"rmse_min": 1.0, "roc_auc_min": 0.7})
    assert "problem.kpis.rmse_min: rmse is lower-is-better, so its bound is rmse_max" in text
    assert "problem.kpis.roc_auc_min: not a bound of a regression problem" in text
    assert "problem.primary_metric: 'roc_auc' is not a metric of a regression problem" in refused(
        primary_metric="roc_auc"
    )
    raw = regression_dict()
    raw["choose"]["candidates"] = ["logistic_regression", "xgboost"]
    with pytest.raises(ParamsError, match="choose.candidates: logistic_regression is not a model"):
        parse_params(raw)
    binary = deep_merge(default_params_dict(), {"problem": {"positive_label": None}})
    with pytest.raises(ParamsError, match="problem.positive_label: a binary problem needs"):
        parse_params(binary)
    with pytest.raises(ParamsError, match="recall_at_precision is measured at"):
        parse_params(
            deep_merge(
                default_params_dict(), {"problem": {"primary_metric": "recall_at_precision"}}
            )
        )


def test_the_regression_objective_reads_scores_and_stratifies_numbers():
    objective = objective_for(regression().problem)
    y = objective.check_target(pd.Series(["12.5", "1,300", "", "n/a", "7", "40"]))
    assert y.iloc[:2].tolist() == [12.5, 1300.0] and y.iloc[2:4].isna().all()
    with pytest.raises(TargetError, match="distinct value"):
        objective.check_target(pd.Series([0, 1, 1, 0]))
    strata = objective.strata(np.arange(100.0))
    assert sorted(np.unique(strata)) == [0, 1, 2, 3, 4]
    frame = pd.DataFrame({"spend": [1.0, 2.0, 3.0, 10.0]})
    base = objective.baseline_scores(frame.iloc[:2], frame)
    assert base["mean"].tolist() == [4.0, 4.0] and base["median"].tolist() == [2.5, 2.5]
    headline = objective.headline(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert set(headline) == {"rmse", "mae", "r2"}
    assert headline["mae"] == pytest.approx(2 / 3)


def test_a_key_dvc_yaml_lists_and_params_yaml_lacks_is_named_before_any_stage(tmp_path):
    (tmp_path / "params.yaml").write_text(
        (REPO / "params.yaml").read_text().replace("  type: binary", "")
    )
    stages = load_stages(REPO / "dvc.yaml")
    found = missing_params(tmp_path, stages)
    assert found and found[0].startswith("problem.type (read by feasibility, clean, split")
    assert missing_params(REPO, stages) == []


def test_live_performance_of_a_regression_model_judges_ceilings_and_the_rise_in_error():
    from tasks.monitor.checks import live_performance

    objective = objective_for(regression().problem)
    rng = np.random.default_rng(0)
    y = rng.normal(100, 20, 400)
    window = pd.DataFrame({"label": y, "score": y + rng.normal(0, 10, 400)})
    found = live_performance(window, {"rmse": 5.0, "r2": 0.1}, 200, 7.0, 0.2, objective)
    assert found["evaluated"] and 9 < found["rmse"] < 11
    assert (
        found["below_floor"][0].startswith("rmse ") and "> ceiling 5.0" in found["below_floor"][0]
    )
    assert not any(r.startswith("r2") for r in found["below_floor"])  # r2 is above its floor
    assert (
        "above the champion's test RMSE 7.0000 (alert at 20% above it)" in found["below_floor"][-1]
    )
    calm = live_performance(window, {}, 200, 9.8, 0.2, objective)
    assert calm["below_floor"] == []  # within 20% of the test RMSE


def test_promotion_judges_a_regression_slice_by_the_errors_relative_rise():
    from tasks.core.ml.comparison import compare

    raw = regression_dict()
    raw["evaluate"]["slices"] = ["group"]
    raw["evaluate"]["slice_min_rows"] = 50
    params = parse_params(raw)
    rng = np.random.default_rng(1)
    y = rng.normal(1000.0, 200.0, 600)
    frame = pd.DataFrame({"group": np.repeat(["a", "b"], 300)})
    champion = y + rng.normal(0, 50.0, 600)
    challenger = y + rng.normal(0, 40.0, 600)  # better everywhere: promoted
    found = compare(y, challenger, champion, frame, params)
    assert found["promote"] and found["slice_regressions"] == [], found["reasons"]
    worse = challenger.copy()
    worse[300:] = y[300:] + rng.normal(0, 60.0, 300)  # slice b: an RMSE about 20% higher
    found = compare(y, worse, champion, frame, params)
    assert [r["slice"] for r in found["slice_regressions"]] == ["group=b"]
    assert 0.1 < found["slice_regressions"][0]["loss"] < 0.4  # a share, not dollars


def test_the_multiclass_metrics_score_a_probability_matrix_and_survive_a_missing_class():
    """The multiclass table (issue 43's metrics): the scores are one column per class, the
    labels the class index; a resample or a slice that lacks a class still scores."""
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    from tasks.core.metrics import metrics_for

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    s = rng.dirichlet([1, 1, 1], 300)
    s[np.arange(300), y] += 0.5  # some signal
    s /= s.sum(axis=1, keepdims=True)
    table = metrics_for("multiclass")
    assert list(table) == ["log_loss", "macro_f1", "accuracy", "roc_auc_ovr"]
    assert table["log_loss"](y, s) == pytest.approx(log_loss(y, s))
    assert table["macro_f1"](y, s) == pytest.approx(f1_score(y, s.argmax(1), average="macro"))
    assert table["accuracy"](y, s) == pytest.approx(np.mean(y == s.argmax(1)))
    assert table["roc_auc_ovr"](y, s) == pytest.approx(roc_auc_score(y, s, multi_class="ovr"))
    assert not table["log_loss"].higher_is_better and table["roc_auc_ovr"].higher_is_better
    two = y != 2  # class 2 missing from the rows
    for m in table.values():
        assert np.isfinite(m(y[two], s[two])), m.name


def test_monitoring_judges_the_serving_champions_problem_not_a_newer_params_yaml():
    """A project switched to a regression while its classifier still serves (a model of
    another problem never replaces the champion): monitoring reads the champion's problem."""
    from devtools.project import SMALL, SPEND, profile_params
    from flows.monitoring import served_problem

    regression = parse_params(profile_params(SMALL, SPEND))
    binary = parse_params(deep_merge(default_params_dict(), SMALL))
    card = {"params": {"problem": binary.problem.model_dump(mode="json")}}
    judged = served_problem(regression, card)
    assert judged.problem == binary.problem and judged.problem.type == "binary"
    assert judged.monitor == regression.monitor  # the rest is params.yaml's
    assert served_problem(regression, {}).problem.type == "regression"


def multiclass(**problem):
    from devtools.project import MOVE, SMALL, profile_params

    raw = profile_params(SMALL, MOVE)
    raw["problem"].update(problem)
    return parse_params(raw)


def test_a_multiclass_problem_reads_text_labels_and_names_what_does_not_fit():
    """Issue 43: the labels are text (numbers read by value, aliases merged), a class the
    model never saw is -1 and named, never a crash; two classes or a number are refused
    with the type to use."""
    from tasks.core.ml.objective import Multiclass

    params = multiclass(class_aliases={"upgrade ": "upgrade", "up": "upgrade"})
    assert params.problem.primary_metric == "log_loss" and params.problem.kpis.bounds() == {}
    objective = objective_for(params.problem)
    assert isinstance(objective, Multiclass) and objective.classes is None
    y = objective.check_target(pd.Series(["stay", " cancel", "up", None, "", "downgrade"]))
    assert y.tolist()[:3] == ["stay", "cancel", "upgrade"] and y.iloc[3:5].isna().all()
    bound = objective.for_labels(y)
    assert bound.classes == ("cancel", "downgrade", "stay", "upgrade")
    assert bound.labels(pd.Series(["stay", "moved", "cancel"])).tolist() == [2, -1, 0]
    assert bound.unseen(pd.Series(["stay", "moved", "moved", None])) == {"moved": 2}
    codes = objective.read_target(pd.Series([1, 2.0, 3, "3.0"]))
    assert codes.tolist() == ["1", "2", "3", "3"]  # integer codes by value
    with pytest.raises(TargetError, match="problem.type: binary"):
        objective.check_target(pd.Series(["a", "b", "a"]))
    with pytest.raises(TargetError, match="problem.type: regression"):
        objective.check_target(pd.Series(np.arange(200.0) / 7))
    with pytest.raises(ParamsError, match="problem.class_aliases: applies to a multiclass"):
        parse_params(deep_merge(default_params_dict(), {"problem": {"class_aliases": {"a": "b"}}}))
    with pytest.raises(ParamsError, match="'roc_auc' is not a metric of a multiclass problem"):
        multiclass(primary_metric="roc_auc")


def test_the_multiclass_objective_scores_decides_and_answers_by_class_name():
    objective = objective_for(multiclass().problem, ["cancel", "stay", "upgrade"])
    scores = np.array([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]])
    assert objective.decide(scores, None).tolist() == [1, 0]
    assert objective.answer(scores[0], None) == {
        "label": "stay",
        "probabilities": {"cancel": 0.2, "stay": 0.5, "upgrade": 0.3},
    }
    columns = objective.output_columns(scores, None)
    assert columns["label"].tolist() == ["stay", "cancel"]
    assert columns["probability_upgrade"].tolist() == [0.3, 0.1]
    assert objective.logged_scores(scores.tolist()) == [0.5, 0.7]
    assert objective.label_error("stay") is None
    assert "one of the classes" in objective.label_error(1)
    assert objective.label_value("upgrade") == 2.0
    assert objective.labels(pd.Series([2.0, 0.0])).tolist() == [2, 0]  # the log's indices
    costs = [[0, 1, 1], [5, 0, 1], [10, 5, 0]]  # true class by row
    assert objective.decide(scores, costs).tolist() == [2, 2]  # least cost, not the likeliest
    margins = np.array([[1.0, 2.0, 3.0]])
    assert objective.link(margins).sum() == pytest.approx(1.0)
    frame = pd.DataFrame({"next_move_30d": ["stay", "stay", "cancel", "upgrade"]})
    prior = objective.baseline_scores(frame.iloc[:1], frame)["class_prior"]
    assert prior.shape == (1, 3) and prior[0] == pytest.approx([0.25, 0.5, 0.25])
    per_class = objective.per_class(np.array([1, 0, 2]), np.array([1, 0, 0]))
    assert per_class["upgrade"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "rows": 1}
    assert per_class["cancel"]["recall"] == 1.0 and per_class["cancel"]["precision"] == 0.5
    y = np.array([0] * 60 + [1] * 60 + [2] * 40)
    groups = [
        objective.group_figures(y, np.r_[np.zeros(60), np.ones(60), np.full(40, 2)]),
        objective.group_figures(y, np.r_[np.zeros(45), np.ones(75), np.zeros(40)]),
    ]
    gaps = objective.fairness_gaps(groups)  # upgrade: too few rows in either group to judge
    assert gaps == {"recall_gap": 0.25, "recall_gap_class": "cancel"}


def test_a_rare_class_is_named_with_its_count_and_the_two_ways_out():
    from tasks.core.ml.objective import Multiclass

    problem = multiclass().problem
    cfg = multiclass().feasibility
    y = pd.Series(["stay"] * 400 + ["cancel"] * 200 + ["upgrade"] * 12)
    (check,) = Multiclass(problem).label_checks(y, cfg)
    assert not check["passed"] and check["check"] == "rows of the rarest class (upgrade)"
    assert "'upgrade' (12 rows)" in check["advice"]
    assert "problem.class_aliases (as in {'upgrade': 'stay'})" in check["advice"]
    assert "feasibility.min_minority_rows" in check["advice"]


def profile_params_small() -> dict:
    from devtools.project import MOVE, SMALL, profile_params

    return profile_params(SMALL, MOVE)


def test_the_multiclass_rule_baseline_and_feasibility_judge_against_the_class_prior():
    """The rule (``problem.baseline.rule``) of a multiclass problem: the class shares within
    each value of its column, smoothed toward the prior; feasibility's signal is the primary
    metric against the class prior's on the same labels."""
    from sklearn.metrics import f1_score, log_loss

    from tasks.core.ml.objectives.multiclass import (
        prior_accuracy,
        prior_macro_f1,
        prior_neg_log_loss,
    )

    problem = multiclass(baseline={"majority_class": True, "rule": {"column": "contract"}}).problem
    objective = objective_for(problem, ["cancel", "stay"])
    train = pd.DataFrame(
        {
            "next_move_30d": ["cancel"] * 30 + ["stay"] * 10 + ["stay"] * 40,
            "contract": ["m"] * 40 + ["y"] * 40,
        }
    )
    rows = pd.DataFrame({"contract": ["m", "y", "two-year"], "next_move_30d": ["stay"] * 3})
    found = objective.baseline_scores(rows, train)
    prior = np.array([30, 50]) / 80
    assert found["class_prior"][0] == pytest.approx(prior)
    rule = found["rule:contract"]
    assert rule[0] == pytest.approx((np.array([30, 10]) + 10 * prior) / 50)
    assert rule[1] == pytest.approx((np.array([0, 40]) + 10 * prior) / 50)
    assert rule[2] == pytest.approx(prior)  # a contract the training rows lack
    y = np.array([0, 0, 1, 2])
    assert prior_neg_log_loss(y) == pytest.approx(-log_loss(y, np.tile([0.5, 0.25, 0.25], (4, 1))))
    assert prior_accuracy(y) == 0.5
    assert prior_macro_f1(y) == pytest.approx(f1_score(y, np.zeros(4), average="macro"))
    name, _, scoring, dummy, _ = objective.signal_score()
    assert (name, scoring, dummy) == ("neg_log_loss", "neg_log_loss", prior_neg_log_loss)


@pytest.mark.parametrize("kind", ["binary", "regression", "multiclass"])
def test_each_type_builds_every_model_kind_it_offers_seeded_and_told_its_objective(kind):
    from tasks.core.config import MODEL_KINDS, ProblemParams
    from tasks.core.ml.objective import OBJECTIVES

    objective = OBJECTIVES[kind](ProblemParams(target="y", positive_label=1))
    assert tuple(objective.ESTIMATORS) == MODEL_KINDS[kind]
    for name in MODEL_KINDS[kind]:
        built = objective.estimator(name, {}, random_state=7).get_params()
        seeded = objective.ESTIMATORS[name].seeded  # Ridge's default solver draws nothing
        assert built["random_state"] == (7 if seeded else None)
    xgb = objective.estimator("xgboost", {"max_depth": 3}, random_state=7).get_params()
    assert xgb["max_depth"] == 3 and xgb["tree_method"] == "hist"
    assert {k: xgb[k] for k in objective.XGBOOST} == objective.XGBOOST
    dask = objective.dask_xgboost({"max_depth": 3}, random_state=7, early_stopping_rounds=0)
    assert type(dask).__name__ == objective.DASK_XGBOOST
    assert dask.get_params()["early_stopping_rounds"] is None
    with pytest.raises(ValueError, match="unknown model kind 'svm'; known: "):
        objective.estimator("svm", {}, random_state=7)


def test_an_unjudged_slice_is_explained_in_the_types_words():
    from tasks.core.ml.gate import unjudged_slices

    slices = [{"column": "plan", "value": "pro", "rows": 12, "checked": False}]
    cfg = regression().evaluate
    (numbers,) = unjudged_slices(slices, cfg, objective_for(regression().problem))
    assert "under evaluate.slice_min_rows=" in numbers["reason"]
    assert "class" not in numbers["reason"], numbers
    classes = parse_params(default_params_dict())
    (binary,) = unjudged_slices(slices, classes.evaluate, objective_for(classes.problem))
    assert "or of one class (largest of them 12 rows)" in binary["reason"]


def late_class_frame(first_share: float) -> tuple[pd.DataFrame, object]:
    """2,000 hourly rows of a multiclass target whose class 'c' only appears after
    ``first_share`` of them, and the problem's params (a time split's folds)."""
    from devtools.project import MOVE

    raw = deep_merge(default_params_dict(), MOVE)
    raw["problem"].update(target="y", time_column="t", id_column="id", kpis={})
    raw["problem"]["baseline"] = {"majority_class": True, "rule": None}
    raw["choose"].update(cv_folds=4, candidates=["logistic_regression", "xgboost"], params={})
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    y = np.where(x > 0.5, "b", "a").astype(object)
    y[(np.arange(2000) > first_share * 2000) & (rng.random(2000) < 0.2)] = "c"
    t = pd.date_range("2024-01-01", periods=2000, freq="h")
    frame = pd.DataFrame({"id": np.arange(2000), "t": t, "x": x, "y": y})
    return frame, parse_params(raw)


def test_a_fold_whose_training_rows_lack_a_late_class_is_left_out_and_too_few_is_named(caplog):
    from tasks.choose_model import selection_markdown
    from tasks.core.errors import StepError
    from tasks.core.ml.crossval import cross_validate

    frame, params = late_class_frame(0.3)
    objective = objective_for(params.problem).for_labels(frame["y"])
    rows = cross_validate(frame, params.problem, params.choose, None, "time", None, 50, objective)
    assert "fold 1/4 left out: its 400 training rows hold no row of class c" in caplog.text
    assert [len(r["folds"]) for r in rows] == [3, 3]  # XGBoost fitted on every class left
    text = selection_markdown(rows, "xgboost", "why", "log_loss", 3, "time", 4)
    assert "3-fold time-ordered" in text and "1 of 4 folds left out" in text

    frame, params = late_class_frame(0.7)
    objective = objective_for(params.problem).for_labels(frame["y"])
    with pytest.raises(StepError, match="only 1 of 4 cross-validation folds") as err:
        cross_validate(frame, params.problem, params.choose, None, "time", None, 50, objective)
    assert "fold 1: c; fold 2: c; fold 3: c" in str(err.value)
    assert "problem.class_aliases" in str(err.value)
