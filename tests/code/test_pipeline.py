from __future__ import annotations

import pytest
import yaml

from flows.runtime.pipeline import load_stages, parse_stages
from tests.conftest import REPO


def test_stages_come_in_dependency_order_with_their_upstream():
    stages = load_stages(REPO / "dvc.yaml")
    names = [s.name for s in stages]
    assert names[:3] == ["collect", "problem", "feasibility"]
    by_name = {s.name: s for s in stages}
    assert by_name["collect"].retries >= 1, "collect reads a source: it retries"
    assert "collect" in by_name["problem"].upstream
    for stage in stages:
        for up in stage.upstream:
            assert names.index(up) < names.index(stage.name)


def test_order_follows_data_not_file_order_and_cycles_are_refused():
    spec = {
        "stages": {
            "b": {"cmd": "x", "deps": ["data/a.csv"], "outs": ["data/b.csv"]},
            "a": {"cmd": "x", "outs": ["data/a.csv"]},
            "c": {"cmd": "x", "deps": ["data"], "metrics": [{"m.json": {"cache": False}}]},
        }
    }
    stages = parse_stages(spec)
    assert [s.name for s in stages] == ["a", "b", "c"]
    assert set(stages[2].upstream) == {"a", "b"}, "a folder dependency covers outputs inside it"
    spec["stages"]["a"]["deps"] = ["data/b.csv"]
    with pytest.raises(ValueError, match="cycle"):
        parse_stages(spec)


def test_a_stage_added_to_dvc_yaml_appears_without_code_changes(tmp_path):
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    spec["stages"]["summary"] = {
        "cmd": "echo hi > reports/hi.txt",
        "deps": ["reports/feasibility.json"],
        "outs": ["reports/hi.txt"],
        "meta": {"retries": 3},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    stages = {s.name: s for s in load_stages(tmp_path / "dvc.yaml")}
    assert set(stages) == set(spec["stages"])
    assert stages["summary"].retries == 3 and stages["summary"].upstream == ("feasibility",)
