"""A remote cluster, on real protocols: S3 storage, a Dask scheduler and workers elsewhere.

Started on 127.0.0.1, as a team would run them on their own machines: moto's S3 server
(``moto_server``, the S3 REST protocol) holds the bucket, a ``dask scheduler`` and two
``dask worker`` processes run from a folder with no checkout of the project and no
``PYTHONPATH`` (the stages ship their code to them, ``tasks.core.runtime.compute.ship_code``).
The training flow runs with ``compute.engine: dask``, ``compute.address`` at that scheduler
and ``compute.shared_dir`` in the bucket, the DVC remote in the same bucket; a second clone
restores the run with ``dvc pull``. The results match the local engine's run of the same
params (the session's ``trained_project``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from devtools.project import git
from devtools.services import free_port, spawn, stop, wait_for
from flows.runtime.processes import dvc_executable, tool_env
from tasks.core.paths import PATHS
from tests.conftest import dvc_up_to_date

pytestmark = pytest.mark.slow
BUCKET = "churn"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "cluster-test",
    "AWS_SECRET_ACCESS_KEY": "cluster-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def dvc(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [dvc_executable(), *args], cwd=root, capture_output=True, text=True, env=tool_env()
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def objects(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """An S3 server, a scheduler and two workers on 127.0.0.1, for this module's tests."""
    import boto3
    from distributed import Client

    tmp_path = tmp_path_factory.mktemp("cluster")
    bindir = Path(sys.executable).parent
    home = tmp_path / "cluster-machine"  # where the cluster runs: no project in it
    home.mkdir()
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "HOME": str(home),
        "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "cluster-tmp"),
        "AWS_ENDPOINT_URL": endpoint,
        **CREDENTIALS,
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("s3", "scheduler", "worker-1", "worker-2")}
    procs = [
        spawn(
            [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]],
            logs["s3"],
            env,
            cwd=home,
        )
    ]
    patch = pytest.MonkeyPatch()
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, **_boto(CREDENTIALS))
        wait_for(lambda: s3.list_buckets() is not None, 60, "S3 server", procs[0], logs["s3"])
        s3.create_bucket(Bucket=BUCKET)
        address = f"tcp://127.0.0.1:{free_port()}"
        dask = [str(bindir / "dask")]
        procs.append(
            spawn(
                [*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1]]
                + ["--no-dashboard"],
                logs["scheduler"],
                env,
                cwd=home,
            )
        )
        for n in (1, 2):
            procs.append(
                spawn(
                    [*dask, "worker", address, "--name", f"worker-{n}", "--nthreads", "1"]
                    + ["--memory-limit", "3GiB", "--no-dashboard"],
                    logs[f"worker-{n}"],
                    env,
                    cwd=home,
                )
            )
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=90)
        # the flow's process (and the DVC commands it runs) reach the same S3 server
        for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(key, value)
        yield {"address": address, "endpoint": endpoint, "s3": s3, "logs": logs, "home": home}
    finally:
        patch.undo()
        for proc in reversed(procs):
            stop(proc)


def compute(cluster: dict, **more: object) -> dict[str, object]:
    """``compute`` params for the cluster: its scheduler, partitions in its bucket."""
    return {
        "engine": "dask",
        "address": cluster["address"],
        "shared_dir": f"s3://{BUCKET}/dask-scratch",
        **more,
    }


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "region_name": credentials["AWS_DEFAULT_REGION"],
    }


def test_the_training_flow_runs_on_a_remote_dask_cluster_with_s3_storage_and_dvc_remote(
    cluster, trained_project, prefect_api, tmp_path
):
    from flows.training import training
    from tests.conftest import make_project

    root = make_project(
        tmp_path / "team" / "proj",
        # more partitions than workers on the test profile
        {"compute": compute(cluster, partition_rows=1000)},
        commit=False,
    )
    # the team's DVC remote: the same S3 server, committed with the project
    dvc(root, "remote", "add", "--force", "--default", "s3", f"s3://{BUCKET}/dvc")
    dvc(root, "remote", "modify", "s3", "endpointurl", cluster["endpoint"])
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project on the cluster")

    state = training(project_dir=str(root), return_state=True)
    assert state.is_completed(), state
    logs = {name: path.read_text() for name, path in cluster["logs"].items()}

    # the work went to the remote workers, with the code the stages shipped them
    for n in (1, 2):
        assert "Starting Worker plugin churn-code" in logs[f"worker-{n}"], logs[f"worker-{n}"]
    assert not any((cluster["home"]).iterdir()), "the cluster's folder holds no project files"
    # partitions went through the bucket, and were removed when each stage ended
    assert "/dask-scratch/" in logs["s3"], logs["s3"][-3000:]
    assert objects(cluster["s3"], "dask-scratch/") == []
    assert objects(cluster["s3"], "dvc/"), "the flow pushed the run to the S3 DVC remote"

    # the same outputs as the local engine's run of the same params
    local = trained_project  # the local engine, the same params but compute
    for rel in (PATHS.features_table, PATHS.train, PATHS.valid, PATHS.test):
        pd.testing.assert_frame_equal(pd.read_parquet(root / rel), pd.read_parquet(local / rel))
    chosen = [json.loads((p / PATHS.selection_json).read_text())["chosen"] for p in (root, local)]
    assert chosen[0] == chosen[1]
    remote_auc, local_auc = (
        json.loads((p / PATHS.metrics_json).read_text())["test"]["roc_auc"] for p in (root, local)
    )
    # xgboost.dask splits the histogram work across workers: within noise (docs/scale-out.md)
    assert abs(remote_auc - local_auc) < 0.02, (remote_auc, local_auc)

    # a teammate's clone restores the run from the S3 remote
    git(root, "add", "dvc.lock")
    git(root, "commit", "-qm", "the cluster's run")
    clone = tmp_path / "teammate" / "proj"
    clone.parent.mkdir()
    git(clone.parent, "clone", "-q", str(root), str(clone))
    dvc(clone, "pull")
    assert dvc_up_to_date(dvc(clone, "status")), "every output restored as dvc.lock records it"
    for rel in (PATHS.model_file, PATHS.metrics_json, PATHS.train):
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_xgboost_dask_trains_on_the_remote_workers_from_partitions_in_the_bucket(
    cluster, params, splits, split_files
):
    """The training flow above chose logistic regression; XGBoost takes the xgboost.dask path."""
    from tasks.core.config import ComputeParams
    from tasks.core.metrics import metric as metric_named
    from tasks.core.ml.tuning import Tuning, tune
    from tasks.core.runtime.compute import engine

    train, valid = split_files["train"], split_files["valid"]
    hashes = {"train": "0" * 16, "valid": "0" * 16}
    base = params.choose.params.get("xgboost", {})
    before = cluster["logs"]["s3"].read_text().count("/dask-scratch/xgb-")
    _, (_, _, local_proba) = tune("xgboost", base, train, valid, Tuning.of(params), hashes)
    cfg = ComputeParams(**compute(cluster, partition_rows=1000))
    with engine(cfg, Path.cwd(), "xgb") as eng:
        workers = eng.client.scheduler_info()["workers"].values()
        assert {w["name"] for w in workers} == {"worker-1", "worker-2"}  # the remote ones
        _, (_, _, dask_proba) = tune("xgboost", base, train, valid, Tuning.of(params), hashes, eng)
    roc = metric_named("roc_auc")
    y_valid = splits["valid"][params.problem.target].to_numpy(int)
    assert abs(roc(y_valid, dask_proba) - roc(y_valid, local_proba)) < 0.02
    assert cluster["logs"]["s3"].read_text().count("/dask-scratch/xgb-") > before
    assert objects(cluster["s3"], "dask-scratch/") == []
