"""``/admin/reload`` reaches every API worker, and a refused champion is logged once (issue
40, cases 4 and 5).

Before: the reload reached only the worker that received the request, so two workers could
serve different files under one version name; and a champion alias naming a version the
workers refused made each of them log a traceback twice a second.
"""

from __future__ import annotations

import json
import logging
import shutil
import time

from fastapi.testclient import TestClient

from service.app import create_app
from service.champion import Champion
from tasks.core.serving.registry import Registry
from tests.conftest import without_served_state


def wait_for(check, seconds=10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_reload_on_one_worker_reloads_every_worker(trained_project, tmp_path):
    root = tmp_path / "registry"
    shutil.copytree(trained_project / "registry", root, ignore=without_served_state())
    other = Champion(Registry(root), poll_s=0.05)  # a second worker on the same registry
    try:
        before = other.current
        with TestClient(create_app(root, admin_token="an-admin-token", poll_s=0.05)) as client:
            reply = client.post("/admin/reload", headers={"Authorization": "Bearer an-admin-token"})
            assert reply.status_code == 200, reply.text
            wait_for(lambda: other.current is not before)  # loaded again from the files
    finally:
        other.stop()


def test_a_refused_champion_is_logged_once_not_at_every_poll(trained_project, tmp_path, caplog):
    root = tmp_path / "registry"
    shutil.copytree(trained_project / "registry", root, ignore=without_served_state())
    registry = Registry(root)
    worker = Champion(registry, poll_s=0.02)
    try:
        serving = worker.current.version.version
        aliases = root / "aliases.json"  # edited by hand to name a version that is not there
        with caplog.at_level(logging.ERROR, logger="churn.service"):
            caplog.clear()
            aliases.write_text(json.dumps({**json.loads(aliases.read_text()), "champion": "v0404"}))
            time.sleep(1.0)  # fifty polls
        refusals = [r for r in caplog.records if "could not load the new champion" in r.message]
        assert len(refusals) == 1, len(refusals)
        assert worker.current.version.version == serving, "the previous model keeps serving"
    finally:
        worker.stop()
