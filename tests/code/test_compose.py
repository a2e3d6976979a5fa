"""docker-compose.yml and the Dockerfile: structure, secrets, and that what they run exists.

No Docker engine runs here; the same services are started natively by other tests
(tests/deploy: Prefect server, served deployments and a worker on a work pool; tests/service:
the API, PostgreSQL and Prometheus; tests/scale: an S3-compatible store, a Dask scheduler and
workers). Debian's docker-compose reads the file as an engine would (``config``).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROJECT_SERVICES = [n for n, s in SERVICES.items() if s.get("build")]
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|ACCESS_KEY|SECRET_KEY")
VAR = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def test_the_stack_has_every_service_the_design_names():
    expected = {
        "postgres",
        "prefect-server",
        "prefect-worker",
        "api",
        "prometheus",
        "evidently-ui",
        "dask-scheduler",
        "dask-worker",
        "s3",
        "s3-init",
    }
    assert expected <= set(SERVICES)
    assert set(PROJECT_SERVICES) == {
        "prefect-worker",
        "api",
        "evidently-ui",
        "dask-scheduler",
        "dask-worker",
    }
    for name, svc in SERVICES.items():
        assert svc.get("image") or svc.get("build"), f"{name}: no image"
        if svc.get("image") and not svc.get("build"):
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), (
                f"{name}: pin the image tag"
            )
        for dep in svc.get("depends_on") or {}:
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
    prefect_image = SERVICES["prefect-server"]["image"]
    pinned = re.search(r"^prefect==([\d.]+)", (REPO / "requirements.lock").read_text(), re.M).group(
        1
    )
    assert prefect_image.startswith(f"prefecthq/prefect:{pinned}-python3.11"), (
        "server and clients same version"
    )


def test_ports_are_bound_to_loopback_and_distinct():
    published = [p for svc in SERVICES.values() for p in svc.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published)
    host_ports = [p.split(":")[1] for p in published]
    assert len(host_ports) == len(set(host_ports))
    assert "8000" in SERVICES["api"]["ports"][0] and "8001" in SERVICES["evidently-ui"]["ports"][0]


def test_secrets_come_from_env_and_every_variable_is_documented_in_env_example():
    documented = env_example()
    text = (REPO / "docker-compose.yml").read_text()
    used = set(VAR.findall(text))
    assert used, "compose reads its secrets from .env"
    assert used <= set(documented), (
        f"undocumented in .env.example: {sorted(used - set(documented))}"
    )

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_KEY.search(str(key)) and isinstance(value, str):
                    assert VAR.search(value), (
                        f"{path}.{key} holds a literal secret; use ${{VAR}} from .env"
                    )
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(COMPOSE)
    assert SERVICES["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"].startswith(
        "${"
    )
    assert SERVICES["api"]["environment"]["PREFECT_API_AUTH_STRING"].startswith("${")
    assert "--secret" in SERVICES["evidently-ui"]["command"]
    assert ".env" in (REPO / ".gitignore").read_text().split()


def _check_command(argv: list[str]) -> None:
    program, *args = argv
    if program == "sh" and args[:1] == ["-c"]:
        for part in args[1].split("&&"):
            words = shlex.split(part)
            _check_command(words[1:] if words[0] == "exec" else words)
        return
    if program == "python" and args[:1] == ["-m"]:
        module = args[1]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"python -m {module}: no such module"
        if module.split(".")[0] in ("flows", "tasks", "service", "scoring"):
            assert Path(spec.origin).is_relative_to(REPO), module
            assert "def main" in Path(spec.origin).read_text(), (
                f"{module} has no command-line main()"
            )
    elif program == "uvicorn":
        module, _, attr = args[0].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), args[0]
    else:
        tool = Path(sys.executable).parent / program
        assert tool.exists() or shutil.which(program), (
            f"{program}: not installed by requirements.lock"
        )


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_every_project_service_runs_a_command_that_exists(name):
    svc = SERVICES[name]
    command = svc["command"]
    argv = command if isinstance(command, list) else shlex.split(command)
    _check_command(argv)


def test_the_dockerfile_installs_the_lock_and_its_files_exist():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "make install" in dockerfile and "requirements.lock" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and " . ." not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies missing {src}"
    entry = re.search(r'ENTRYPOINT \["/app/([^"]+)"\]', dockerfile).group(1)
    assert (REPO / entry).exists() and (REPO / entry).stat().st_mode & 0o111, (
        "entrypoint script executable"
    )
    default_cmd = re.search(r"^CMD (.+)$", dockerfile, re.M).group(1)
    _check_command(yaml.safe_load(default_cmd))
    init_sql = REPO / "docker" / "postgres-init.sql"
    assert "CREATE DATABASE predictions" in init_sql.read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv/", ".env", "registry/", ".dvc/cache/"} <= set(ignored)


# What the tests start natively, by the compose service that runs the same thing.
NATIVE = {
    "s3": "moto_server, S3 (tests/deploy/test_remote_cluster.py)",
    "dask-scheduler": "dask scheduler (tests/deploy/test_remote_cluster.py)",
    "dask-worker": "dask worker x2 (tests/deploy/test_remote_cluster.py)",
    "prefect-server": "prefect server start (tests/deploy, tests/flow)",
    "prefect-worker": "prefect worker start --pool (tests/deploy/test_worker.py)",
    "postgres": "PostgreSQL (tests/service/test_postgres.py)",
    "api": "python -m service.serve (tests/service)",
    "prometheus": "Debian's prometheus (tests/service/test_prometheus.py)",
}


def test_docker_compose_reads_the_file_and_names_the_services_the_tests_start():
    tool = shutil.which("docker-compose")
    if tool is None:
        message = "Debian's docker-compose is needed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    args = [tool, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml")]
    read = subprocess.run(
        [*args, "--env-file", str(REPO / ".env.example"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    resolved = yaml.safe_load(read.stdout)
    assert set(NATIVE) <= set(resolved["services"]), sorted(resolved["services"])
    assert resolved["services"]["prefect-worker"]["environment"]["CHURN_PROJECT_DIR"]
    # every secret filled in from the env file: none left empty or as a ${...} reference
    text = read.stdout
    assert not VAR.search(text) and "change-me" in text  # ($${X} is the container's own)
    # without the secrets, compose refuses to start and says which one is missing
    empty = REPO / "tests" / "data" / "empty.env"
    missing = subprocess.run(
        [*args, "--env-file", str(empty), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode != 0 and "set " in missing.stderr and " in .env" in missing.stderr
