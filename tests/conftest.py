"""Shared fixtures: the small test profile and throw-away project copies."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.cleanup import install as install_cleanup
from devtools.cleanup import register as register_stop
from devtools.project import SMALL, deep_merge, default_params, run_in_process
from devtools.project import make_project as copy_project
from tasks.core.config import Params, parse_params
from tasks.core.data.schema import kinds_for
from tasks.core.env import telemetry_off
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS, PREDICTION_LOG, PREDICTIONS_DB
from tests.prefect_server import Server, reset_client_services, start_server, stop

REPO = Path(__file__).resolve().parents[1]
telemetry_off()

# The longest test files, longest first (minutes each). `make test` runs two pytest-xdist
# workers that take one file at a time; starting these first keeps one of them from being
# left to run a long file alone at the end.
LONG_FILES = (
    "flow/test_real_datasets.py",
    "demo/test_demo.py",
    "flow/test_init_real_tables.py",
    "flow/test_multiclass.py",
    "flow/test_regression.py",
    "code/test_partitioned.py",
    "deploy/test_deployments.py",
    "flow/test_training_flow.py",
    "code/test_partitioned_dask.py",
    "flow/test_spend.py",
    "faults/test_killed_runs.py",
    "deploy/test_remote_cluster.py",
    "flow/test_retrain.py",
    "flow/test_foreign_data.py",
    "deploy/test_worker.py",
    "faults/test_secrets.py",
    "monitor/test_monitoring_flow.py",
    "service/test_compiled_parity.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Servers started by this session stop however it ends (devtools/cleanup.py); the main
    process forwards SIGTERM to its xdist workers."""
    install_cleanup(forward=not os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``LONG_FILES`` first, in its order; the rest as collected."""
    tests = REPO / "tests"

    def rank(item: pytest.Item) -> int:
        try:
            return LONG_FILES.index(item.path.relative_to(tests).as_posix())
        except ValueError:
            return len(LONG_FILES)

    items.sort(key=rank)  # stable: within a file, tests keep their order


def default_params_dict() -> dict[str, Any]:
    """The repository's params.yaml, parsed."""
    return default_params(REPO)


@pytest.fixture
def small_params(params) -> Params:
    """Typed params of the small profile (frozen: the session's ``params``)."""
    return params


@pytest.fixture(scope="session")
def params() -> Params:
    """Typed params of the small profile, shared by the session."""
    return parse_params(deep_merge(default_params_dict(), SMALL))


@pytest.fixture(scope="session")
def splits(params) -> dict[str, Any]:
    """A small simulator dataset, cleaned, with features, split like the pipeline does."""
    import datetime as dt

    from tasks.core.data.simulator import simulate

    raw = simulate(dt.date(2024, 1, 1), dt.date(2024, 4, 30), 60, seed=3).data
    return split_frames(featured(raw, params), params)


def fit_in_memory(
    pipeline: Any,
    X_train: Any,
    y_train: Any,
    X_valid: Any = None,
    y_valid: Any = None,
    early_stopping_rounds: int = 0,
) -> Any:
    """Fit in memory, as scikit-learn's API does (the reference train's one data path is held
    to); XGBoost stops early on the validation split when it is given."""
    from tasks.core.ml.models import is_xgboost

    model = pipeline.named_steps["model"]
    if early_stopping_rounds and X_valid is not None and is_xgboost(model):
        prep = pipeline.named_steps["prep"]
        # fit_transform, not fit then transform: a target encoding is cross-fitted on the
        # rows it is fitted on (the same matrix for every other transformer)
        Z_train = prep.fit_transform(X_train, y_train)
        model.set_params(early_stopping_rounds=early_stopping_rounds)
        model.fit(
            Z_train,
            y_train,
            eval_set=[(prep.transform(X_valid), y_valid)],
            verbose=False,
        )
        return pipeline
    return pipeline.fit(X_train, y_train)


@pytest.fixture(scope="session")
def split_files(splits, tmp_path_factory) -> dict[str, Path]:
    """``splits`` as the split step writes them: a Parquet file each (train and tune read
    files)."""
    folder = tmp_path_factory.mktemp("splits")
    for name, frame in splits.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return {name: folder / f"{name}.parquet" for name in splits}


def featured(raw: Any, params: Params) -> Any:
    """Raw rows standardised, cleaned and with features, as the pipeline's steps 4 and 5 do."""
    from tasks.core.data.features import build_features
    from tasks.core.data.schema import standardise
    from tests.whole_frame import clean_frame

    p, c = params.problem, params.clean
    std = standardise(
        raw,
        kinds_for(raw, p, c),
        objective_for(p).read_target,
        c.date_formats,
        c.category_aliases,
        [f.model_dump() for f in c.unit_fixes],
    ).frame
    clean, _ = clean_frame(std, p)
    return build_features(clean, p, [])[0]


def split_frames(features: Any, params: Params) -> dict[str, Any]:
    """``features`` split into train, valid and test as step 6 does."""
    from tasks.split import assign_splits

    labels = assign_splits(features, params.split, params.problem)
    return {
        name: features[labels == name].reset_index(drop=True) for name in ("train", "valid", "test")
    }


def make_project(
    dest: Path, overrides: dict[str, Any] | None = None, commit: bool = True, small: bool = True
) -> Path:
    """A project copy for a test (``devtools.project``), on the small profile unless told."""
    return copy_project(dest, overrides, commit, SMALL if small else None, name="test")


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``project(overrides=None)`` makes a throw-away project copy."""

    def factory(
        overrides: dict[str, Any] | None = None, name: str = "proj", commit: bool = True
    ) -> Path:
        return make_project(tmp_path / name, overrides, commit)

    return factory


# --------------------------------------------------------------------------- a trained project
@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """A project that has run every step once, its model registered as champion v0001."""
    root = make_project(tmp_path_factory.mktemp("served") / "proj")
    decision = run_in_process(
        root,
        {
            "flow_run_id": "test",
            "flow_run_name": "test",
            "experiment": "test-exp",
            "code_version": "test",
        },
    )
    assert decision is not None and decision.promoted, decision
    return root


def without_served_state(*more: str) -> Callable[[Any, list[str]], set[str]]:
    """``copytree``'s ignore: a registry's prediction store and log (and ``more`` names)."""
    return shutil.ignore_patterns(f"{PREDICTIONS_DB}*", PREDICTION_LOG, *more)


def served_copy(trained_project, dest):
    """The trained project's params and registry, without its prediction log."""
    dest.mkdir()
    for name in (PATHS.params, PATHS.dvc_yaml):
        shutil.copy(trained_project / name, dest / name)
    shutil.copytree(
        trained_project / "registry",
        dest / "registry",
        ignore=without_served_state(),
    )
    return dest


class Load:
    """Clients posting records (every ``batch_every``-th request a batch of ``batch_size``) to
    ``/predict`` until :meth:`stop`; ``answers`` holds (status, JSON body or text, monotonic
    time) of each answer. A client whose server goes away stops quietly."""

    def __init__(
        self, url: str, records: list[dict], clients: int, batch_every: int, batch_size: int
    ) -> None:
        import threading

        self.answers: list[tuple[int, Any, float]] = []
        self._lock, self._done = threading.Lock(), threading.Event()
        self._args = (url, records, batch_every, batch_size)
        self.threads = [
            threading.Thread(target=self._client, args=(k,), daemon=True) for k in range(clients)
        ]
        for t in self.threads:
            t.start()

    def _client(self, k: int) -> None:
        import time

        import httpx

        url, records, batch_every, batch_size = self._args
        with httpx.Client(base_url=url, timeout=30) as http:
            i = 0
            while not self._done.is_set():
                body = records[(k * 7 + i) % len(records)]
                if i % batch_every == batch_every - 1:  # batches run off the event loop
                    body = {"records": records[:batch_size]}
                i += 1
                try:
                    r = http.post("/predict", json=body)
                except httpx.HTTPError:
                    return
                with self._lock:
                    self.answers.append(
                        (r.status_code, r.json() if r.is_success else r.text, time.monotonic())
                    )

    def stop(self) -> list[tuple[int, Any, float]]:
        """Stop the clients; every answer."""
        self._done.set()
        for t in self.threads:
            t.join(60)
        return self.answers


# --------------------------------------------------------------------------- a Prefect server
@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory) -> Iterator[Server]:
    """One real Prefect server for the session's flow tests; this process's client talks to it.

    The same ``prefect server start`` a user runs (``make server``), without the UI, with its own
    home and SQLite database; if it dies, ``Server.check_alive`` shows its log.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_server(tmp_path_factory.mktemp("prefect-api"), ui=False)
    reset_client_services()  # none may still point at another test's server
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
            from prefect.logging.handlers import APILogWorker

            APILogWorker.instance().drain()  # the flows' last log lines, before the server goes
            reset_client_services()
    finally:
        stop(server.proc)


# --------------------------------------------------------------------------- PostgreSQL
def pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 for the session (trust auth: any password is
    accepted)."""
    bindir = pg_bindir()
    if bindir is None:
        message = (
            "PostgreSQL server binaries not found (.ci/run installs Debian's postgresql package)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="churn-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop_postgres() -> None:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )

    register_stop(stop_postgres)  # also when the session is terminated
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop_postgres()
        shutil.rmtree(base, ignore_errors=True)


def dvc_up_to_date(status: str) -> bool:
    """Whether ``dvc status`` says nothing is to run: "up to date", or only that collect
    always runs (it queries a SQL source each time and reads nothing else unchanged)."""
    lines = [ln.strip() for ln in status.strip().splitlines() if ln.strip()]
    return "up to date" in status or lines == ["collect:", "always changed"]
