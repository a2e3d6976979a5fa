"""The prediction API under fuzzing: schemathesis against its own OpenAPI schema, over HTTP.

What must hold: no request makes the server answer 5xx or die; the body size is bounded
(413); the admin endpoint refuses requests without the token, or with a wrong one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from devtools.services import start_api, stop
from tests.conftest import without_served_state

TOKEN = "fuzz-admin-token-0123456789"


@pytest.fixture(scope="module")
def api_url(trained_project: Path, tmp_path_factory) -> Iterator[str]:
    """``make serve`` on a copy of the trained project (the fuzzer's requests stay out of its
    store)."""
    root = tmp_path_factory.mktemp("fuzzed") / "proj"
    root.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy2(trained_project / name, root / name)
    shutil.copytree(
        trained_project / "registry",
        root / "registry",
        ignore=without_served_state(),
    )
    log = root / "api.log"
    env = {
        **os.environ,
        "CHURN_ADMIN_TOKEN": TOKEN,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc, url = start_api(root, env, log, timeout_s=60)
    try:
        yield url
        assert proc.poll() is None, f"the API died under fuzzing:\n{log.read_text()[-3000:]}"
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        stop(proc)


def operations(api_url: str) -> list:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_no_request_gets_a_server_error(api_url):
    """Up to 60 generated requests per operation (valid and invalid bodies, paths, queries)."""
    ops = operations(api_url)
    assert {f"{op.method.upper()} {op.path}" for op in ops} >= {
        "POST /predict",
        "POST /feedback",
        "GET /lineage/{request_id}",
        "POST /admin/reload",
    }
    for op in ops:

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )  # the same requests in every run (CI); vary it locally with a seed
        @given(case=op.as_strategy())
        def fuzz(case):
            case.call_and_validate(base_url=api_url, checks=[not_a_server_error], timeout=30)

        fuzz()


def test_body_size_is_bounded_and_admin_needs_the_token(api_url):
    with httpx.Client(base_url=api_url, timeout=30) as http:
        assert (
            http.post(
                "/predict", content=b"[" * 3_000_000, headers={"content-type": "application/json"}
            ).status_code
            == 413
        )
        assert http.post("/admin/reload").status_code == 401
        assert (
            http.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert (
            http.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
            == 200
        )
        deep = (
            b'{"records": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}"
        )  # nesting, under the size bound
        assert (
            http.post(
                "/predict", content=deep, headers={"content-type": "application/json"}
            ).status_code
            == 422
        )


def test_a_streamed_body_without_a_length_is_bounded_too(api_url):
    def chunks():
        for _ in range(30):
            yield b" " * 100_000  # 3 MB, no Content-Length (chunked)

    with httpx.Client(base_url=api_url, timeout=30) as http:
        reply = http.post(
            "/predict", content=chunks(), headers={"content-type": "application/json"}
        )
        assert reply.status_code == 413 and "larger than" in reply.json()["detail"]
        assert http.get("/health").status_code == 200
