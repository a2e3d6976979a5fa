"""The warm step process: a step it runs behaves as under a fresh ``python -m``, only sooner.

Each test runs the command line DVC runs (``sh -c "python -m tasks.<step> ..."``) with and
without the flow's warm server, on a probe step that reports what a step can observe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from flows.runtime.processes import tool_env
from flows.runtime.warm import SOCKET_NAME, active_env, sweep, warm_steps

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, sys, time
warm = "great_expectations" in sys.modules  # imported before this module ran: the warm server
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "probe": os.environ.get("PROBE"),
                  "name": __name__, "pid": os.getpid(), "warm": warm}), flush=True)
print("to stderr", file=sys.stderr)
if sys.argv[1:2] == ["sleep"]:
    time.sleep(120)
if sys.argv[1:2] == ["pool"]:  # joblib's workers, left for the interpreter's exit to stop
    from joblib import Parallel, delayed

    Parallel(n_jobs=2)(delayed(abs)(-k) for k in range(4))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__")
    for package in ("tasks", "flows"):  # the steps, and the warm server beside the flows
        shutil.copytree(REPO / package, tmp_path / package, ignore=skip)
    (tmp_path / "tasks" / "probe_step.py").write_text(PROBE)
    return tmp_path


def step(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the probe as DVC runs a stage: through a shell, ``python`` from PATH."""
    env = env or tool_env(active_env())
    return subprocess.run(
        ["sh", "-c", "python -m tasks.probe_step " + " ".join(args)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_ready(timeout_s: float = 60) -> None:
    folder = Path(active_env()["PATH"].split(os.pathsep)[0])
    deadline = time.monotonic() + timeout_s
    while not (folder / SOCKET_NAME).exists():
        assert time.monotonic() < deadline, "the warm server never listened"
        time.sleep(0.1)


def test_a_step_sees_what_a_fresh_interpreter_gives_it(root):
    env = tool_env({"PROBE": "x y", "PROBE_EXIT": "3"})
    cold = step(root, "a", "'b c'", env=env)
    with warm_steps(root, env):
        wait_ready()
        warm = step(root, "a", "'b c'", env=tool_env({**env, **active_env()}))
    assert cold.returncode == warm.returncode == 3
    assert cold.stderr == warm.stderr == "to stderr\n"
    c, w = json.loads(cold.stdout), json.loads(warm.stdout)
    assert (c["warm"], w["warm"]) == (False, True), "the second ran in the warm process"
    assert c.pop("pid") != w.pop("pid")
    c.pop("warm"), w.pop("warm")
    assert c == w == {"argv": ["a", "b c"], "cwd": str(root), "probe": "x y", "name": "__main__"}


def test_a_step_with_another_environment_is_declined_and_runs_fresh(root):
    with warm_steps(root, tool_env()):
        wait_ready()
        done = step(root, env=tool_env({**active_env(), "PROBE": "changed"}))
    assert done.returncode == 0
    out = json.loads(done.stdout)
    assert (out["warm"], out["probe"]) == (False, "changed")
    assert "declined (environment differs: PROBE)" in done.stderr


def test_a_stopped_stage_command_stops_its_step_and_the_server_ends_with_the_block(root):
    with warm_steps(root, tool_env()):
        wait_ready()
        folder = Path(active_env()["PATH"].split(os.pathsep)[0])
        shell = subprocess.Popen(
            ["sh", "-c", "python -m tasks.probe_step sleep"],
            cwd=root,
            env=tool_env(active_env()),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert shell.stdout is not None
        probe = json.loads(shell.stdout.readline())
        assert probe["warm"]
        child = psutil.Process(probe["pid"])
        server = psutil.Process(child.ppid())
        os.killpg(shell.pid, signal.SIGKILL)  # DVC's process group dies: the shim with it
        shell.wait()
        _, alive = psutil.wait_procs([child], timeout=15)
        assert not alive, "the step outlived its stage command"
        assert server.is_running()
    assert not server.is_running(), "the server ends with the block"
    assert not folder.exists(), "the socket folder is removed with the server"
    assert active_env() == {}


def test_switched_off_nothing_is_started(root, monkeypatch):
    monkeypatch.setenv("CHURN_WARM_STEPS", "0")
    with warm_steps(root, tool_env()):
        assert active_env() == {}
        assert json.loads(step(root).stdout)["warm"] is False


def test_worker_processes_a_step_leaves_running_end_with_it_as_in_a_fresh_interpreter(root):
    # the stage's output pipe closes only when they end: DVC and the flow wait for that
    with warm_steps(root, tool_env()):
        wait_ready()
        started = time.monotonic()
        done = step(root, "pool")
        assert json.loads(done.stdout)["warm"]
        assert done.returncode == 0 and time.monotonic() - started < 30


def test_an_interpreter_path_a_shebang_cannot_hold_runs_steps_fresh(root, monkeypatch):
    monkeypatch.setattr("sys.executable", "/opt/my envs/bin/python")
    with warm_steps(root, tool_env()):
        assert active_env() == {}


def test_folders_of_servers_killed_outright_are_swept_and_live_ones_kept(tmp_path):
    old = time.time() - 7200
    dead, live, new = (tmp_path / f"churn-warm-{k}" for k in ("dead", "live", "new"))
    for folder in (dead, live, new):
        folder.mkdir()
        (folder / "python").write_text("#!/bin/sh\n")
    (live / SOCKET_NAME).touch()
    for folder in (dead, live):
        os.utime(folder, (old, old))
    assert sweep(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and new.exists()
