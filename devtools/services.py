"""Start and stop the real services the demo (and the tests) run: a Prefect server, the
deployments served to it, and the prediction API, each a child process on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devtools.cleanup import register
from tasks.core.env import TELEMETRY_OFF


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    check: Callable[[], Any],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    every_s: float = 1.0,
) -> Any:
    """Poll ``check`` until it returns something true; fail with the process's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{what}: process exited "
                f"{proc.returncode}\n{log.read_text()[-5000:] if log else ''}"
            )
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(every_s)
    raise RuntimeError(
        f"{what} not ready after {timeout_s:.0f} s\n{log.read_text()[-5000:] if log else ''}"
    )


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def spawn(
    args: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``args`` in its own process group, output to ``log``; stopped when the session
    ends, however it ends (:mod:`devtools.cleanup`)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    register(lambda: stop(proc))
    return proc


@dataclass
class Server:
    """A running Prefect server."""

    api_url: str
    ui_url: str
    env: dict[str, str]
    auth: tuple[str, str] | None
    log: Path
    proc: subprocess.Popen

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` of the API (authenticated when auth is on)."""
        return httpx.get(self.api_url + path, auth=self.auth, timeout=5)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """POST ``body`` (JSON) to ``path`` of the API (authenticated when auth is on)."""
        return httpx.post(self.api_url + path, json=body or {}, auth=self.auth, timeout=5)

    def check_alive(self) -> None:
        """Fail with the server's log if it has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"the Prefect server exited {self.proc.returncode}:\n{self.log.read_text()[-5000:]}"
            )


def start_server(
    home: Path, auth: tuple[str, str] | None = None, ui: bool = True, port: int | None = None
) -> Server:
    """``prefect server start`` on ``port`` (default: a free one), ``home`` as PREFECT_HOME.

    With ``auth``, the server checks the API auth string and ``Server.env`` makes clients
    send it, as in docker-compose.yml.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {
        **os.environ,
        **TELEMETRY_OFF,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
    }
    if auth:
        env |= {
            "PREFECT_SERVER_API_AUTH_STRING": ":".join(auth),
            "PREFECT_API_AUTH_STRING": ":".join(auth),
        }
    log = home / "server.log"
    proc = spawn(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log,
        env,
    )
    server = Server(
        f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", env, auth, log, proc
    )
    try:
        wait_for(lambda: server.get("/health").status_code == 200, 180, "Prefect server", proc, log)
    except BaseException:
        stop(proc)
        raise
    return server


def start_api(
    project: Path,
    env: dict[str, str],
    log: Path,
    timeout_s: float = 90,
    quiet: bool = False,
    workers: int = 1,
) -> tuple[subprocess.Popen, str]:
    """``make serve``'s server (``python -m service.serve``) for ``project`` on a free port,
    with ``workers`` worker processes, once it answers ``/health``.

    Returns the process and the base URL.
    """
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "service.serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = spawn([*args, "--log-level", "warning"] if quiet else args, log, env, cwd=project)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(url + "/health", timeout=2).status_code == 200,
            timeout_s,
            "prediction API",
            proc,
            log,
        )
    except BaseException:
        stop(proc)
        raise
    return proc, url


CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")
"""Debian's headless browser and its driver (.ci/run installs them)."""


def start_evidently_ui(workspace: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``evidently ui`` (``make monitor-ui``) on ``workspace`` at a free port, once it answers:
    the process and its URL."""
    from flows.runtime.processes import tool_env

    port = free_port()
    evidently = Path(sys.executable).with_name("evidently")
    command = [str(evidently), "ui", "--workspace", str(workspace)]
    ui = spawn([*command, "--host", "127.0.0.1", "--port", str(port)], log, tool_env({}))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url).status_code == 200, 60, "evidently ui", ui, log, 0.5)
    except BaseException:
        stop(ui)
        raise
    return ui, url


def chromium_or_skip(reason: str = "") -> None:
    """Skip the calling test when Chromium is missing (fail instead under CI)."""
    import pytest

    if all(Path(p).exists() for p in CHROMIUM):
        return
    message = "Debian's chromium and chromium-driver are needed (.ci/run installs them)" + reason
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def chromium(*args: str, performance_log: bool = False) -> Any:
    """A headless Chromium driven by Selenium (``driver.quit()`` when done)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *args):
        options.add_argument(arg)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMIUM[1]), options=options)


DEPLOYMENTS = ("retrain/training", "batch_scoring/batch-scoring", "monitoring/scheduled")


def serve_deployments(
    project: Path, env: dict[str, str], log: Path, server: Server, timeout_s: float = 120
) -> subprocess.Popen:
    """``make deploy`` for ``project`` against ``server``, once every deployment is there."""
    proc = spawn([sys.executable, "-m", "flows.deployments"], log, env, cwd=project)
    try:
        wait_for(
            lambda: all(
                server.get(f"/deployments/name/{n}").status_code == 200 for n in DEPLOYMENTS
            ),
            timeout_s,
            "served deployments",
            proc,
            log,
        )
    except BaseException:
        stop(proc)
        raise
    return proc
