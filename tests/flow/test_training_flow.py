"""End to end: the Prefect flow generated from dvc.yaml, experiments, and reproduction."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import yaml
from prefect.client.orchestration import get_client

from devtools.project import git
from flows.runtime.experiments import NOT_BYTE_FOR_BYTE, locked_output_hashes
from flows.runtime.lock import workspace_lock
from flows.runtime.processes import dvc_executable, tool_env
from flows.runtime.rerun import unchanged_workspace
from flows.runtime.stages import stale_stages
from flows.training import training
from tasks.core.serving.registry import Registry

pytestmark = pytest.mark.slow


def dvc(root, *args, check=True):
    proc = subprocess.run(
        [dvc_executable(), *args], cwd=root, capture_output=True, text=True, env=tool_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def harness(prefect_api):
    """The session's Prefect server, checked to be still up after the test."""
    yield prefect_api
    prefect_api.check_alive()


async def task_run_names(flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {r.name for r in runs}


def test_flow_runs_dvc_yaml_records_an_experiment_and_a_fresh_clone_reproduces_it(
    project, tmp_path, harness
):
    root = project(commit=False)
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    # a stage added to dvc.yaml becomes a Prefect task with no change to flow code
    spec["stages"]["summary"] = {
        "cmd": "python -c \"import json; d=json.load(open('reports/feasibility.json')); "
        "open('reports/summary.txt','w').write(str(d['go']))\"",
        "deps": ["reports/feasibility.json"],
        "outs": ["reports/summary.txt"],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")

    state = training(project_dir=str(root), return_state=True)
    assert state.is_completed(), state
    result = state.result()
    order = [s["stage"] for s in result["stages"]]
    assert order[:3] == ["collect", "problem", "feasibility"]
    assert set(order) == set(spec["stages"]), "one task per dvc.yaml stage, the added one included"
    assert order.index("summary") > order.index("feasibility") and order.index(
        "split"
    ) > order.index("features")
    assert all(s["ran"] for s in result["stages"])
    assert (root / "reports" / "summary.txt").read_text() == "True"
    import asyncio

    # task runs reach the server as events, recorded asynchronously: give it a moment
    deadline = time.monotonic() + 60
    while not set(order) <= (names := asyncio.run(task_run_names(state.state_details.flow_run_id))):
        assert time.monotonic() < deadline, f"task runs on the server: {sorted(names)}"
        time.sleep(2)

    name = result["experiment"]
    assert name and name.count("-") >= 1
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    recorded = [r for e in exps for r in e["revs"] if r.get("name") == name]
    assert recorded, f"{name} not in dvc exp show"
    data = recorded[0]["data"]
    assert data["params"]["params.yaml"]["data"]["collect"]["simulator"]["customers_per_day"] == 40
    assert data["metrics"]["reports/feasibility.json"]["data"]["go"] is True
    assert any((root / ".dvc-storage").rglob("*")), "data pushed to the local DVC remote"

    # a second dvc repro right after does nothing, in a few seconds: collect always runs
    # (a database can change under the same query), finds the simulator's settings
    # unchanged and reads nothing, and no other stage runs
    started = time.monotonic()
    again = dvc(root, "repro")
    assert re.findall(r"Running stage '(\w+)'", again.stdout) == ["collect"], again.stdout
    assert "unchanged since snapshot" in again.stdout + again.stderr
    assert time.monotonic() - started < 15

    # step 10: a blessed model is registered and, with no champion yet, promoted
    assert json.loads((root / "reports" / "metrics.json").read_text())["blessed"]

    def compared(lock):  # Data Docs name their validation time: rebuilt, not compared
        return {
            p: h
            for p, h in locked_output_hashes(lock).items()
            if not p.startswith(NOT_BYTE_FOR_BYTE)
        }

    recorded = compared(root / "dvc.lock")  # what the first run's experiment holds
    first = result["promotion"]
    assert first.registered == "v0001" and first.promoted and first.champion == "v0001"
    card = json.loads((root / "registry" / "versions" / "v0001" / "card.json").read_text())
    assert card["experiment"] == name and card["flow_run_id"] == str(
        state.state_details.flow_run_id
    )
    assert (
        card["data"]["snapshot_id"] and card["code_version"] and card["params"]["problem"]["target"]
    )

    # a second run with nothing changed records, pushes and registers nothing, and names
    # the experiment that already holds it
    second = training(project_dir=str(root))
    assert second["unchanged"] and second["experiment"] == name and "promotion" not in second
    assert not any(s["ran"] for s in second["stages"])
    # the command line tells it before importing Prefect, and starts no flow run
    cli = subprocess.run(
        [sys.executable, "-m", "flows.training"],
        cwd=root,
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"experiment {name} already holds it" in cli.stdout, cli.stdout
    assert "Beginning flow run" not in cli.stdout + cli.stderr
    with workspace_lock(root, holder="a test"):
        assert unchanged_workspace(root) is None, "a run in progress: the flow waits for it"
    assert unchanged_workspace(root)["experiment"] == name
    # an edit of the problem's wording reruns what reads it, not the model: a new experiment,
    # and the same model on the same data is not registered a second time
    params_text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(
        params_text.replace("metric_reason: ", "metric_reason: (edited) ", 1)
    )
    assert unchanged_workspace(root) is None
    third = training(project_dir=str(root))
    ran = {s["stage"] for s in third["stages"] if s["ran"]}
    assert "train" not in ran and "clean" not in ran, ran
    assert third["experiment"] not in (None, name)
    again = third["promotion"]
    assert again.registered is None and not again.promoted and again.existing == "v0001"
    assert again.champion == "v0001" and "already registered as v0001" in again.reasons[0]
    assert [v.version for v in Registry(root / "registry").versions()] == ["v0001"]

    # the flow asks `dvc status` once which stages are stale, instead of a `dvc repro` per stage
    assert stale_stages(root) == set()
    params_text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params_text.replace("n_trials: 3", "n_trials: 4"))
    assert stale_stages(root) == {"train"}
    (root / "params.yaml").write_text(params_text)

    # reproduction: a fresh clone with an empty cache pulls the run and recomputes it
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    git(clone, "config", "user.name", "test")
    git(clone, "config", "user.email", "test@localhost")
    dvc(clone, "remote", "modify", "--local", "storage", "url", str(root / ".dvc-storage"))
    assert not (clone / ".dvc" / "cache").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "flows.reproduce", name],
        cwd=clone,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reproduced: every output has its recorded hash" in proc.stdout
    assert "not collecting again" in proc.stdout

    assert compared(clone / "dvc.lock") == recorded
    snapshots = [p for p in (clone / "data" / "01_raw").iterdir() if p.is_dir()]
    assert len(snapshots) == 1, "no new snapshot was collected"
