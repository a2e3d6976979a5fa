"""A real Prefect server on 127.0.0.1 and the project's deployments served to it."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools.services import serve_deployments
from tests.prefect_server import Server, reset_client_services, start_server, stop


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[Server]:
    """``prefect server start`` on a free port with its own home and SQLite database.

    API auth is on, as in docker-compose.yml: the server checks the auth string, clients send it.
    """
    server = start_server(
        tmp_path_factory.mktemp("prefect-home"), auth=("admin", secrets.token_urlsafe(12))
    )
    reset_client_services()  # none may still point at another test's server
    try:
        assert (
            httpx.get(server.api_url + "/deployments/filter", timeout=5).status_code == 401
            or httpx.post(server.api_url + "/deployments/filter", timeout=5).status_code == 401
        )
        yield server
    finally:
        reset_client_services()  # before the server goes: they would keep talking to it
        stop(server.proc)


@dataclass
class Served:
    """The project's deployments, served from ``root`` to ``server``; alerts posted to
    ``webhook``."""

    root: Path
    server: Server
    log: Path
    webhook: "Receiver"


class Receiver:
    """A local HTTP endpoint that records the JSON bodies posted to it (the alert webhook)."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def served(prefect_server: Server, tmp_path_factory) -> Iterator[Served]:
    """A small project copy whose deployments ``python -m flows.deployments`` serves."""
    from tests.conftest import make_project

    root = make_project(tmp_path_factory.mktemp("deployed") / "proj")
    log = root.parent / "deploy.log"
    receiver = Receiver()
    env = {
        **prefect_server.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CHURN_ALERT_WEBHOOK_URL": receiver.url,
    }
    proc = serve_deployments(root, env, log, prefect_server)
    try:
        yield Served(root, prefect_server, log, receiver)
    finally:
        stop(proc)
        receiver.close()
