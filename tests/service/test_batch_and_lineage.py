"""Batch scoring matches the API, is logged like it, and every prediction has a traceable
lineage."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flows.batch_scoring import batch_scoring
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS

pytestmark = pytest.mark.slow


def test_batch_scoring_writes_versioned_predictions_equal_to_the_api_and_logs_them(
    trained_project, prefect_api
):
    raw = (
        current_snapshot(trained_project / PATHS.raw_dir)
        .read()
        .drop_duplicates("customer_id")
        .head(300)
    )
    raw = raw.drop(columns=["churned_30d", "cancellation_reason"])
    (trained_project / "data/external").mkdir(parents=True, exist_ok=True)
    raw.to_csv(trained_project / "data/external/to_score.csv", index=False)
    result = batch_scoring(
        "data/external/to_score.csv", project_dir=str(trained_project), chunk_rows=128
    )
    out = pd.read_parquet(result["output"])
    assert (
        len(out) == 300
        and set(out["model_version"]) == {"v0001"}
        and result["output"].endswith(".v0001.parquet")
    )
    app = create_app(trained_project / "registry")
    with TestClient(app) as client:
        records = json.loads(
            pd.read_csv(
                trained_project / "data/external/to_score.csv", dtype=str, keep_default_na=False
            )
            .head(40)
            .to_json(orient="records")
        )
        api = client.post("/predict", json={"records": records}).json()["predictions"]
        assert [p["probability"] for p in api] == pytest.approx(
            out["probability"].head(40).tolist(), abs=1e-6
        )
        chain = client.get(f"/lineage/{out['request_id'][0]}").json()
        assert len(chain["predictions"]) == 128, (
            "the batch's first chunk is logged like an API request"
        )


def test_a_request_id_leads_to_model_code_data_and_their_validation(trained_project):
    app = create_app(trained_project / "registry")
    raw = (
        current_snapshot(trained_project / PATHS.raw_dir)
        .read()
        .drop_duplicates("customer_id")
        .head(1)
    )
    record = json.loads(raw.drop(columns=["churned_30d"]).to_json(orient="records"))[0]
    with TestClient(app) as client:
        request_id = client.post("/predict", json=record).json()["request_id"]
        chain = client.get(f"/lineage/{request_id}").json()
        assert client.get("/lineage/unknown").status_code == 404
    assert chain["model"]["version"] == "v0001" and chain["model"]["model_sha256"]
    assert chain["code_version"] == "test" and chain["training_run"]["dvc_experiment"] == "test-exp"
    assert chain["data"]["snapshot_id"] and chain["data"]["split_manifest"]["test"]["sha256"]
    assert chain["data_validation"]["data_quality"]["checks_passed"] > 0
    assert chain["data_validation"]["leakage_audit"]["passed"] is True
    assert any(g.startswith("PASS") for g in chain["evaluation_gate"])
    cli = subprocess.run(
        [sys.executable, "-m", "service.lineage", request_id],
        cwd=trained_project,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["model"]["version"] == "v0001"
