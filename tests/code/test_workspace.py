"""Isolated workspaces for deployment runs: a worktree sharing DVC storage, validated overrides."""

from __future__ import annotations

import pytest
import yaml

from devtools.project import git
from flows.runtime import workspace
from tasks.core.config import ParamsError


def test_overrides_are_validated_before_the_file_changes(project):
    root = project()
    params = root / "params.yaml"
    original = params.read_text()
    with pytest.raises(
        ParamsError, match=r"train\.n_trails: unknown key \(did you mean 'n_trials'\?\)"
    ):
        workspace.apply_overrides(params, {"train.n_trails": 5})
    with pytest.raises(ParamsError, match=r"train\.n_trials"):
        workspace.apply_overrides(params, {"train.n_trials": "many"})
    assert params.read_text() == original
    assert workspace.apply_overrides(
        params, {"train.n_trials": 5, "retrain.cron": "0 4 * * *"}
    ) == ["train.n_trials=5", "retrain.cron='0 4 * * *'"]
    raw = yaml.safe_load(params.read_text())
    assert raw["train"]["n_trials"] == 5 and raw["retrain"]["cron"] == "0 4 * * *"


def test_a_workspace_is_a_worktree_of_a_commit_that_shares_the_dvc_cache_and_remote(project):
    main = project()
    (main / "params.yaml").write_text((main / "params.yaml").read_text() + "\n# uncommitted edit\n")
    ws = workspace.create(main, "run-1", on_line=lambda _: None)
    try:
        assert ws.root == main / ".runs" / "run-1"
        assert "uncommitted edit" not in (ws.root / "params.yaml").read_text(), (
            "committed code only"
        )
        local = (ws.root / ".dvc" / "config.local").read_text()
        assert str(main / ".dvc" / "cache") in local and str(main / ".dvc-storage") in local
        assert git(main, "status", "--porcelain") == " M params.yaml\n", (
            "the main checkout is unchanged"
        )
        with pytest.raises(workspace.WorkspaceError, match="exists already"):
            workspace.create(main, "run-1", on_line=lambda _: None)
    finally:
        workspace.remove(ws, on_line=lambda _: None)
    assert not ws.root.exists() and git(main, "worktree", "list").count("\n") == 1
    with pytest.raises(workspace.WorkspaceError, match="revision 'no-such-branch' is not a commit"):
        workspace.create(main, "run-2", "no-such-branch", on_line=lambda _: None)


def test_a_workspace_runs_objects_land_in_the_main_cache_by_hash(project):
    import subprocess

    from flows.runtime.processes import dvc_executable, tool_env

    main = project()
    ws = workspace.create(main, "run-cache", on_line=lambda _: None)
    try:
        (ws.root / "blob.txt").write_text("an output of a deployment run\n")
        subprocess.run(
            [dvc_executable(), "add", "blob.txt"],
            cwd=ws.root,
            env=tool_env(),
            check=True,
            capture_output=True,
        )
        md5 = yaml.safe_load((ws.root / "blob.txt.dvc").read_text())["outs"][0]["md5"]
        cache = main / ".dvc" / "cache" / "files" / "md5"
        assert (cache / md5[:2] / md5[2:]).is_file(), "the object is in the main cache"
        assert not (cache / "files").exists(), "no cache nested inside the cache"
    finally:
        workspace.remove(ws, on_line=lambda _: None)


def test_only_allowed_overrides_apply_and_nested_keys_are_checked_each(project):
    root = project()
    params = root / "params.yaml"
    original = params.read_text()
    allowed = ["collect.window.*", "train.*"]
    for bad in (
        {"collect.path": "/etc/passwd"},
        {"collect": {"source": "csv", "path": "/etc/passwd"}},
        {"promote.registry_dir": "/tmp/elsewhere"},
        {"collect.sql.url_env": "AWS_SECRET_ACCESS_KEY"},
        {"retrain.allowed_overrides": ["*"]},
    ):
        with pytest.raises(ParamsError, match="not allowed") as caught:
            workspace.apply_overrides(params, bad, allowed)
        assert next(iter(workspace.leaf_overrides(bad))) in str(caught.value)
    assert params.read_text() == original
    assert workspace.apply_overrides(
        params, {"train": {"n_trials": 4}, "collect.window.end": "2024-02-01"}, allowed
    ) == ["train.n_trials=4", "collect.window.end='2024-02-01'"]
