"""Promotion and rollback verify a version's files; a missing index is no pass (issue 40,
cases 4 and 5).

Before: ``promote`` and ``rollback`` switched the alias to a tampered version (the running
API then refused it and logged a traceback twice a second; a fresh start exited), and a
missing or empty ``index.jsonl`` turned the file check off, so an edited card (threshold
0.99) was served.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.project import register_copy
from flows.runtime.processes import tool_env
from tasks.core.serving.registry import Registry, RegistryError
from tests.conftest import without_served_state


@pytest.fixture
def registry(trained_project: Path, tmp_path: Path) -> Registry:
    root = tmp_path / "registry"
    shutil.copytree(trained_project / "registry", root, ignore=without_served_state())
    return Registry(root)


def tamper(path: Path) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b" ")


def test_promotion_and_rollback_to_a_tampered_version_are_refused(registry):
    v2 = register_copy(registry, "v0001")
    aliases = registry.aliases()
    tamper(v2.model_path)
    with pytest.raises(RegistryError, match="does not match its card"):
        registry.promote(v2.version, "a tampered challenger")
    with pytest.raises(RegistryError, match="does not match its card"):
        registry.rollback(to=v2.version)
    assert registry.aliases() == aliases, "the alias did not move"
    # a version whose card was edited (a threshold of 0.99) is refused the same way
    v3 = register_copy(registry, "v0001")
    card = v3.folder / "card.json"
    os.chmod(card, 0o644)
    card.write_text(json.dumps({**v3.card, "threshold": 0.99}))
    with pytest.raises(RegistryError, match=r"card\.json changed since registration"):
        registry.promote(v3.version, "an edited card")
    assert registry.aliases() == aliases


@pytest.mark.parametrize("how", ["missing", "empty"])
def test_a_missing_or_empty_index_refuses_every_load_until_rebuilt(trained_project, tmp_path, how):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state())
    registry = Registry(root / "registry")
    champion = registry.champion()
    index = registry.root / "index.jsonl"
    if how == "missing":
        index.unlink()
    else:
        index.write_text("")
    card = champion.folder / "card.json"
    os.chmod(card, 0o644)
    card.write_text(json.dumps({**champion.card, "threshold": 0.99}))  # the edit it hid
    with pytest.raises(RegistryError, match="missing or empty.*make reindex"):
        registry.load(registry.champion())
    # the rebuild trusts the files as they are (the edited card included): restore first
    card.write_text(json.dumps(champion.card))
    done = subprocess.run(
        [sys.executable, "-m", "tasks.core.serving.registry_cli", "reindex"],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    assert done.returncode == 0, done.stderr
    assert f"indexed: {champion.version}" in done.stdout
    assert registry.load(registry.champion()) is not None
