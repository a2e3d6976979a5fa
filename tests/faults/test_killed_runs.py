"""A training run killed with SIGKILL mid-step: the next run completes without manual repair.

What must hold afterwards:
- the next run completes (exit 0) with no one touching the workspace;
- the DVC and step processes the killed run had started, still running, are stopped by the
  next run with a log line (they would otherwise keep writing beside it);
- no half-written file is left in data/, models/ or reports/;
- the raw snapshots that existed before keep their hashes;
- DVC's own lock held by a killed ``dvc repro`` does not block the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from flows.runtime.processes import tool_env
from tasks.core.io import file_sha256
from tests.conftest import dvc_up_to_date

pytestmark = pytest.mark.slow


def start_training(root: Path, api_url: str, log: Path) -> subprocess.Popen:
    env = tool_env({"PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "INFO"})
    return subprocess.Popen(
        [sys.executable, "-m", "flows.training"],
        cwd=root,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )


def wait_for_line(proc: subprocess.Popen, log: Path, text: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        assert proc.poll() is None, f"the run ended before '{text}':\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, (
            f"no '{text}' within {timeout_s} s:\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.2)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process started under ``pid``, also those in a session of their own (DVC, the step)."""
    return psutil.Process(pid).children(recursive=True)


def set_trials(root: Path, n: int) -> int:
    """Set ``train.n_trials`` in the project's params.yaml; returns the value it had."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    before, params["train"]["n_trials"] = params["train"]["n_trials"], n
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return before


def snapshot_hashes(root: Path) -> dict[str, str]:
    raw = root / "data" / "01_raw"
    return {
        str(p.relative_to(root)): file_sha256(p)
        for p in sorted(raw.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def half_written(root: Path) -> list[Path]:
    return [p for d in ("data", "models", "reports") for p in (root / d).rglob(".tmp-*")]


def test_runs_killed_in_collect_and_in_train_leave_nothing_the_next_run_must_repair(
    project, prefect_api, tmp_path
):
    root = project()

    # 1. the whole run dies during collect (flow, `dvc repro` holding DVC's lock, the step): a crash
    first = start_training(root, prefect_api.api_url, tmp_path / "first.log")
    wait_for_line(first, tmp_path / "first.log", "Running stage 'collect'")
    victims = [psutil.Process(first.pid), *descendants(first.pid)]
    assert any("dvc" in " ".join(p.cmdline()) for p in victims[1:]), "DVC runs the stage"
    for p in victims:
        p.send_signal(signal.SIGKILL)
    first.wait(30)

    # 2. only the flow process dies during train: its `dvc repro` and the train step run on,
    # orphaned (a long search, so they still run when the next run starts)
    n_trials = set_trials(root, 500)
    second = start_training(root, prefect_api.api_url, tmp_path / "second.log")
    wait_for_line(second, tmp_path / "second.log", "Running stage 'train'")
    orphans = descendants(second.pid)
    assert orphans, "the train stage runs in child processes"
    before = snapshot_hashes(root)
    assert before, "the second run collected a snapshot"
    os.kill(second.pid, signal.SIGKILL)
    second.wait(30)
    assert any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans), (
        "orphans still run"
    )
    # paused, so they are still there when the next run starts however fast training is here
    for p in orphans:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.suspend()
    set_trials(root, n_trials)

    # 3. the next run: no manual repair
    third = start_training(root, prefect_api.api_url, tmp_path / "third.log")
    assert third.wait(600) == 0, (tmp_path / "third.log").read_text()[-4000:]
    log = (tmp_path / "third.log").read_text()
    assert "left running by a pipeline run that died" in log, log[-3000:]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    assert half_written(root) == []
    assert {k: v for k, v in snapshot_hashes(root).items() if k in before} == before
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"],
        cwd=root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and dvc_up_to_date(status.stdout), status.stdout + status.stderr
    assert (root / "reports" / "metrics.json").exists()


def test_a_half_written_file_of_a_killed_step_is_removed_by_the_next_run_and_never_read(tmp_path):
    from flows.runtime.lock import workspace_lock

    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    leftover = tmp_path / "data" / "02_interim" / ".tmp-clean.parquet.abc123"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"PAR1 half a file")
    lines: list[str] = []
    with workspace_lock(tmp_path, holder="test", on_wait=lines.append):
        assert not leftover.exists()
    assert any("half-written" in ln and "02_interim" in ln for ln in lines), lines


def test_a_running_dvc_command_keeps_its_temporary_files(tmp_path):
    import fcntl

    from flows.runtime.lock import sweep_half_written

    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    work = tmp_path / "reports" / ".tmp-metrics.json.x1"
    work.parent.mkdir(parents=True)
    work.write_text("{")
    with open(tmp_path / ".dvc" / "tmp" / "lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `dvc repro` holds it
        assert sweep_half_written(tmp_path, print) == [] and work.exists()
    assert sweep_half_written(tmp_path, print) == [work] and not work.exists()
