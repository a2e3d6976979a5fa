"""A test session stopped by SIGTERM leaves no server running (issue 40).

Before: when ``make test`` was stopped by SIGTERM (a CI time limit, ``timeout``), the
PostgreSQL, Prefect and API servers its fixtures had started stayed running (seen: four, two
for over an hour): the servers run in sessions of their own, and no fixture teardown runs on
a signal. A pytest session with one xdist worker starts a server through the fixtures'
``spawn`` and is sent SIGTERM; the server must be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.conftest import REPO

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from devtools.services import free_port, spawn

    def test_hold(tmp_path):
        port = free_port()
        proc = spawn(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            tmp_path / "server.log",
            env=dict(PATH="/usr/bin:/bin"),
        )
        Path({pid_file!r}).write_text(str(proc.pid))
        time.sleep(120)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_a_terminated_session_stops_the_servers_it_started(tmp_path):
    pid_file = tmp_path / "server.pid"
    test_file = tmp_path / "test_hold.py"
    test_file.write_text(HOLD.format(pid_file=str(pid_file)))
    session = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "1",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(REPO),
            "-c",
            str(REPO / "pyproject.toml"),
            str(test_file),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its forwarded signal stays in its own group
    )
    try:
        deadline = time.monotonic() + 90
        while not pid_file.exists():
            assert session.poll() is None, session.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the held test never started its server"
            time.sleep(0.2)
        server = int(pid_file.read_text())
        assert alive(server)
        session.send_signal(signal.SIGTERM)  # what a CI time limit or `timeout` sends
        session.wait(60)
        deadline = time.monotonic() + 30
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(server), "the server outlived the terminated test session"
    finally:
        if session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
