"""Deployments on a real Prefect server: triggered runs are isolated, share one pipeline slot."""

from __future__ import annotations

import contextvars
import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools.project import git
from devtools.services import chromium, chromium_or_skip
from flows.runtime.processes import dvc_executable, tool_env

pytestmark = pytest.mark.slow


def checkout_state(root: Path) -> dict[str, str]:
    """What the user works on: params.yaml, dvc.lock, every file under data/, git status."""
    state = {
        "git status": git(root, "status", "--porcelain"),
        "dvc.lock exists": str((root / "dvc.lock").exists()),
    }
    for path in sorted(
        [root / "params.yaml", *(p for p in (root / "data").rglob("*") if p.is_file())]
    ):
        state[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def prefect_cli(served, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=served.root,
        env=served.server.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_training(served, overrides: dict, timeout_s: int, *params: str):
    """``prefect deployment run retrain/training`` with ``overrides``, watched to its end."""
    return prefect_cli(
        served,
        "deployment",
        "run",
        "retrain/training",
        *[arg for p in params for arg in ("--param", p)],
        "--param",
        "params=" + json.dumps(overrides),
        "--watch",
        "--watch-timeout",
        str(timeout_s),
    )


def test_training_deployment_run_registers_a_model_and_leaves_the_checkout_alone(served):
    root = served.root
    before = checkout_state(root)
    proc = run_training(served, {"train.n_trials": 2}, 540, 'reason="test trigger"')
    assert proc.returncode == 0, (
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{served.log.read_text()[-4000:]}"
    )
    assert "Completed" in proc.stdout, proc.stdout[-2000:]

    # a new model version, promoted (the first one), with the run's lineage
    aliases = json.loads((root / "registry" / "aliases.json").read_text())
    assert aliases["champion"] == "v0001"
    # the run is a DVC experiment of the main checkout, with the UI's override recorded
    shown = subprocess.run(
        [dvc_executable(), "exp", "show", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
        check=True,
    ).stdout
    revs = [
        r for rev in json.loads(shown) for e in (rev.get("experiments") or []) for r in e["revs"]
    ]
    assert len(revs) == 1, revs
    assert revs[0]["data"]["params"]["params.yaml"]["data"]["train"]["n_trials"] == 2
    # reports kept, worktree gone, checkout untouched
    kept = list((root / "runs").glob("*/reports/metrics.json"))
    assert len(kept) == 1 and kept[0].parent.parent.name == revs[0]["name"]
    assert not any((root / ".runs").iterdir())
    assert git(root, "worktree", "list").count("\n") == 1
    assert checkout_state(root) == before
    assert (root / "params.yaml").read_text().count("n_trials: 3") == 1, (
        "the override stays in the run"
    )


def refused_run(served, overrides: dict) -> str:
    """Start the training deployment with ``overrides``; it must fail and change nothing.

    Returns the served deployments' log.
    """
    before = checkout_state(served.root)
    proc = run_training(served, overrides, 120)
    assert proc.returncode != 0 or "Failed" in proc.stdout
    assert checkout_state(served.root) == before
    assert not any((served.root / ".runs").iterdir())
    return served.log.read_text()


def test_a_bad_override_fails_the_run_naming_the_key_and_changes_nothing(served):
    log = refused_run(served, {"train.n_trails": 2})
    assert "train.n_trails: unknown key (did you mean 'n_trials'?)" in log


FORBIDDEN = {
    "collect.source": "csv",
    "collect.path": "/etc/passwd",
    "collect.allow_outside_data_dir": True,
    "collect.csv.sep": ":",
}


def test_an_override_outside_the_allowlist_is_refused_naming_the_keys(served):
    """A run's params may not point collection at a file of the machine (or at a secret)."""
    log = refused_run(served, FORBIDDEN)
    keys = "collect.source, collect.path, collect.allow_outside_data_dir, collect.csv.sep"
    assert f"{keys} not allowed" in log
    assert "root:x:0:0" not in log
    assert not list((served.root / "data" / "01_raw").glob("*/data.parquet"))


def test_pipeline_deployments_share_one_concurrency_slot(served):
    from prefect.concurrency.sync import concurrency
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.common import PIPELINE_LIMIT, pipeline_slot

    held, release = threading.Event(), threading.Event()
    waits: list[str] = []
    settings = {
        PREFECT_API_URL: served.server.api_url,
        PREFECT_API_AUTH_STRING: ":".join(served.server.auth),
    }
    with temporary_settings(settings):

        def holder() -> None:
            with pipeline_slot(waits.append):
                held.set()
                release.wait(30)

        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(holder,)
        )  # same settings
        thread.start()
        assert held.wait(30)
        try:
            with pytest.raises(TimeoutError):
                with pipeline_slot(waits.append, timeout_s=4):
                    pass
            assert waits == [
                f"another pipeline run holds the '{PIPELINE_LIMIT}' concurrency slot: "
                "queued until it finishes"
            ]
        finally:
            release.set()
            thread.join()
        with concurrency(PIPELINE_LIMIT, timeout_seconds=10, strict=True):
            pass  # free again once the holder is done
    deployment = served.server.get("/deployments/name/retrain/training").json()
    assert deployment["global_concurrency_limit"]["limit"] == 1, (
        "one run of the deployment at a time"
    )


def test_the_prefect_ui_lists_the_deployments(served, tmp_path):
    chromium_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium("--window-size=1400,900")
    try:
        driver.get(f"{served.server.ui_url}/deployments")
        # the server's API auth is on: the UI asks for the auth string first
        password = WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=password]")
        )
        password[0].send_keys(":".join(served.server.auth) + Keys.ENTER)
        WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
        driver.get(f"{served.server.ui_url}/deployments")
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        WebDriverWait(driver, 90).until(
            lambda d: all(n in body(d) for n in ("batch-scoring", "training", "scheduled"))
        )
        text = body(driver)
        driver.save_screenshot(str(tmp_path / "deployments.png"))
    finally:
        driver.quit()
    assert "retrain" in text and "batch_scoring" in text and "monitoring" in text


def test_a_retraining_request_starts_the_deployment_and_an_alert_reaches_the_webhook(served):
    """Last in this file: the retraining it starts is cancelled, not run (other tests run one)."""
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelled

    from flows.monitoring import ALERT_EVENT, RETRAIN_EVENT

    settings = {
        PREFECT_API_URL: served.server.api_url,
        PREFECT_API_AUTH_STRING: ":".join(served.server.auth),
    }
    deployment = served.server.get("/deployments/name/retrain/training").json()
    scheduled = served.server.get("/deployments/name/monitoring/scheduled").json()
    assert scheduled["schedules"][0]["schedule"]["cron"] == "0 * * * *"

    with temporary_settings(settings):
        emit_event(
            ALERT_EVENT,
            resource={"prefect.resource.id": "churn.model.v0001"},
            payload={
                "reason": "data drift: 40% of features drifted",
                "model_version": "v0001",
                "window_end": "2026-11-23T00:00:00+00:00",
                "retraining": "waits for labels",
            },
        )
        # an event carrying forbidden overrides starts a run that is refused at once
        emit_event(
            RETRAIN_EVENT,
            resource={"prefect.resource.id": "churn.model.v0001"},
            payload={"reason": "forged", "model_version": "v0001", "params": FORBIDDEN},
        )
        deadline = time.monotonic() + 90
        while "collect.path" not in served.log.read_text().split("forged", 1)[-1]:
            assert time.monotonic() < deadline, "the forged request's run was not refused"
            time.sleep(2)
        assert "not allowed: a run may override only keys matching" in served.log.read_text()
        window = {"collect.window.start": "2024-01-01", "collect.window.end": "2024-02-29"}
        emit_event(
            RETRAIN_EVENT,
            resource={"prefect.resource.id": "churn.model.v0001"},
            payload={
                "reason": "data drift: 40% of features drifted",
                "model_version": "v0001",
                "params": window,
            },
        )

        async def triggered():
            async with get_client() as client:
                runs = await client.read_flow_runs()
            return [
                r
                for r in runs
                if r.deployment_id is not None
                and str(r.deployment_id) == deployment["id"]
                and str(r.parameters.get("reason", "")).startswith("monitoring alert:")
                and "forged" not in str(r.parameters.get("reason", ""))
            ]

        deadline = time.monotonic() + 90
        while not (runs := asyncio.run(triggered())):
            assert time.monotonic() < deadline, "the retraining request started no retraining run"
            time.sleep(2)
        assert len(runs) == 1, "the alert itself starts no run; the request starts one"
        assert (
            runs[0].parameters["reason"] == "monitoring alert: data drift: 40% of features drifted"
        )
        assert runs[0].parameters["params"] == window, (
            "the collect window reaches the run as overrides"
        )

        async def cancel(run_id):
            async with get_client() as client:
                await client.set_flow_run_state(
                    run_id, Cancelled(message="test: trigger checked"), force=True
                )

        asyncio.run(cancel(runs[0].id))
    deadline = time.monotonic() + 60
    while not served.webhook.bodies:
        assert time.monotonic() < deadline, "no alert reached the webhook"
        time.sleep(1)
    body = served.webhook.bodies[0]
    assert body["event"] == ALERT_EVENT and body["reason"] == "data drift: 40% of features drifted"
    assert body["model_version"] == "v0001"
