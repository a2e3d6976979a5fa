"""Runs on another machine through Prefect: the deployments on a process work pool, run by a
``prefect worker`` started elsewhere, in its own checkout of the project.

The "other machine" is a folder that is not the deploying checkout: the worker process
starts in an empty directory and knows the project only through ``CHURN_PROJECT_DIR``, a
git clone of it, as ``make worker`` sets it on a machine of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.project import git
from devtools.services import spawn, wait_for
from tests.prefect_server import stop

pytestmark = pytest.mark.slow
POOL = "churn-test-pool"


def prefect(env: dict[str, str], cwd: Path, *args: str, timeout: int = 120):
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_worker_elsewhere_runs_the_training_deployment_in_its_own_checkout(
    prefect_server, tmp_path
):
    from tests.conftest import make_project

    deployer = make_project(tmp_path / "deployer" / "proj")
    # the worker's machine: a clone of the project (as `git clone` on that machine gives)
    checkout = tmp_path / "worker-machine" / "proj"
    checkout.parent.mkdir()
    git(checkout.parent, "clone", "-q", str(deployer), str(checkout))
    git(checkout, "config", "user.name", "worker")
    git(checkout, "config", "user.email", "worker@localhost")
    env = {**prefect_server.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    made = subprocess.run(
        [sys.executable, "-m", "flows.deployments", "--pool", POOL],
        cwd=deployer,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"deployments on work pool '{POOL}'" in made.stdout
    pool = prefect_server.get(f"/work_pools/{POOL}").json()
    assert pool["type"] == "process"
    deployment = prefect_server.get("/deployments/name/retrain/training").json()
    assert deployment["work_pool_name"] == POOL
    assert deployment["pull_steps"] == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ $CHURN_PROJECT_DIR }}"
            }
        }
    ]

    # `make worker` on the other machine: started in a folder with no checkout
    elsewhere = tmp_path / "worker-machine" / "home"
    elsewhere.mkdir()
    log = tmp_path / "worker.log"
    worker_env = {**env, "CHURN_PROJECT_DIR": str(checkout), "PYTHONPATH": str(checkout)}
    worker = spawn(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
        log,
        worker_env,
        cwd=elsewhere,
    )
    try:
        wait_for(
            lambda: any(
                w["status"] == "ONLINE"
                for w in prefect_server.post(f"/work_pools/{POOL}/workers/filter").json()
            ),
            90,
            "Prefect worker online",
            worker,
            log,
        )
        run = prefect(
            env,
            tmp_path,
            "deployment",
            "run",
            "retrain/training",
            "--param",
            'reason="worker test"',
            "--param",
            "params=" + json.dumps({"train.n_trials": 2}),
            "--watch",
            "--watch-timeout",
            "540",
            timeout=600,
        )
        assert run.returncode == 0 and "Completed" in run.stdout, (
            f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}\n{log.read_text()[-5000:]}"
        )
    finally:
        stop(worker)
    text = log.read_text()
    assert "Running 1 deployment pull step" in text or "pull step" in text, text[-3000:]
    # the run happened in the worker's checkout: its registry, its experiment, its reports
    aliases = json.loads((checkout / "registry" / "aliases.json").read_text())
    assert aliases["champion"] == "v0001"
    assert git(checkout, "for-each-ref", "refs/exps").strip(), "no DVC experiment recorded"
    assert list((checkout / "runs").glob("*/reports/metrics.json"))
    # and nowhere else: the deploying checkout and the worker's start folder are untouched
    assert not (deployer / "registry").exists()
    assert not git(deployer, "for-each-ref", "refs/exps").strip()
    assert not any(elsewhere.iterdir())
