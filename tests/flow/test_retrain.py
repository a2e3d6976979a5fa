"""A retraining that fails leaves the champion serving, and says why."""

from __future__ import annotations

import shutil

import pytest

from flows.retrain import retrain
from tasks.core.registry import Registry
from tests.conftest import git

pytestmark = pytest.mark.slow


def test_a_failed_retraining_leaves_the_champion_in_place(trained_project, tmp_path, prefect_api):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=shutil.ignore_patterns("predictions.db*"))
    registry = Registry(root / "registry")
    champion, aliases, history = registry.champion().version, registry.aliases(), len(registry.history())
    # an impossible feasibility bar: the run stops at step 2, after collecting
    state = retrain(reason="test: failing run", params={"feasibility.min_labelled_rows": 10_000_000},
                    project_dir=str(root), return_state=True)
    prefect_api.check_alive()
    assert state.is_failed()
    assert "feasibility" in str(state.message) or "feasibility" in repr(state.result(raise_on_failure=False))
    assert registry.champion().version == champion and registry.aliases() == aliases
    assert len(registry.history()) == history, "nothing registered, nothing switched"
    kept = list((root / "runs").glob("*/reports/feasibility.md"))
    assert len(kept) == 1 and "NO-GO" in kept[0].read_text(), "the failed run's reports say why"
    assert not any((root / ".runs").iterdir()) and git(root, "worktree", "list").count("\n") == 1
