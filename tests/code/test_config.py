from __future__ import annotations

import pytest

from devtools.project import deep_merge
from tasks.core.config import ParamsError, load_params, parse_params
from tests.conftest import REPO, default_params_dict


def test_repository_params_load_into_typed_sections():
    params = load_params(REPO / "params.yaml")
    assert params.problem.target == "churned_30d"
    assert params.collect.source == "simulator"
    assert params.collect.window.start.year == 2024
    assert params.feasibility.cv_folds >= 2


def test_unknown_key_is_named_with_a_suggestion():
    raw = deep_merge(default_params_dict(), {"problem": {"targt": "x"}})
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert "problem.targt: unknown key (did you mean 'target'?)" in str(err.value)


def test_nested_unknown_key_and_wrong_type_are_both_named():
    raw = deep_merge(
        default_params_dict(),
        {"feasibility": {"cv_folds": "many"}, "collect": {"simulator": {"sead": 1}}},
    )
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    text = str(err.value)
    assert "feasibility.cv_folds" in text and "'many'" in text
    assert "collect.simulator.sead: unknown key (did you mean 'seed'?)" in text


def test_unknown_metric_is_refused_with_the_allowed_ones():
    raw = deep_merge(default_params_dict(), {"problem": {"primary_metric": "accuracy"}})
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert "problem.primary_metric" in str(err.value) and "roc_auc" in str(err.value)


def test_missing_required_key_and_source_rules():
    raw = default_params_dict()
    del raw["problem"]["target"]
    with pytest.raises(ParamsError, match="problem.target: required key is missing"):
        parse_params(raw)
    csv_without_path = deep_merge(
        default_params_dict(), {"collect": {"source": "csv", "path": None}}
    )
    with pytest.raises(ParamsError, match="needs collect.path"):
        parse_params(csv_without_path)


def test_unknown_section_is_refused():
    raw = deep_merge(default_params_dict(), {"colect": {}})
    with pytest.raises(ParamsError, match="colect: unknown key \\(did you mean 'collect'\\?\\)"):
        parse_params(raw)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("problem: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"engine": "dask", "address": "dask-scheduler:8786"}, "write it as tcp://host:8786"),
        ({"engine": "dask", "address": "tcp://dask-scheduler:8786"}, "needs compute.shared_dir"),
        ({"engine": "spark"}, "compute.engine"),
    ],
)
def test_a_dask_setting_that_cannot_work_is_refused_before_any_step(compute, message):
    with pytest.raises(ParamsError) as err:
        parse_params(deep_merge(default_params_dict(), {"compute": compute}))
    assert message in str(err.value)


def test_an_unreachable_scheduler_is_a_clear_step_error(tmp_path, monkeypatch):
    from tasks.core.config import ComputeParams
    from tasks.core.errors import StepError
    from tasks.core.runtime import compute
    from tasks.core.runtime.compute import engine

    monkeypatch.setattr(compute, "CONNECT_TIMEOUT", "2s")
    cfg = ComputeParams(engine="dask", address="tcp://127.0.0.1:9", shared_dir=str(tmp_path))
    with pytest.raises(StepError) as err, engine(cfg, tmp_path, "clean"):
        pass
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:9" in str(err.value)


def test_the_old_deploy_section_is_refused_with_where_each_key_lives_now():
    from tasks.core.config import ParamsError, parse_params
    from tests.conftest import default_params_dict

    raw = default_params_dict()
    raw["deploy"] = {"registry_dir": "models-registry", "retrain_schedule_active": True}
    with pytest.raises(ParamsError) as refused:
        parse_params(raw)
    message = str(refused.value)
    assert "'deploy' section was split into 'promote' and 'retrain'" in message
    assert "deploy.registry_dir -> promote.registry_dir" in message
    assert "deploy.retrain_schedule_active -> retrain.schedule_active" in message


def test_a_role_for_a_column_collect_pii_drops_names_both_keys():
    import yaml

    from tasks.core.config import ParamsError, parse_params

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["collect"]["pii"] = {"signup_date": "drop"}
    raw["problem"]["time_column"] = "signup_date"
    with pytest.raises(ParamsError, match=r"problem.time_column names 'signup_date'.*collect.pii"):
        parse_params(raw)
    raw["collect"]["pii"] = {"signup_date": "pseudonymise"}
    assert parse_params(raw).problem.time_column == "signup_date"
