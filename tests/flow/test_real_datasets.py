"""Four real public datasets through every step, as a user runs them (``make run``).

Each dataset is written as a CSV into ``data/external/`` of a project copy whose
``params.yaml`` is the shipped one with only ``collect``, ``problem`` and
``evaluate.slices``/``sensitive`` changed (``tests/data/real.py``), and 5 tuning trials.
The flow runs as ``python -m flows.training`` against the session's Prefect server (telco,
with personal data whose absence from the server's logs is checked, and creditcard, whose
leak stops it at the split); caravan and credit run every step's code in this process
(``devtools.project.run_in_process``: the same steps without the flow's DVC and Prefect
work, to keep ``make test`` within its budget). Each run's test ROC-AUC is compared with a
plain scikit-learn/XGBoost script on the same split, and a registered champion answers
``/predict`` with records as the CSV holds them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from devtools.project import run_in_process
from flows.runtime.processes import tool_env
from scoring.scoring import LoadedModel
from service.app import create_app
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry
from tests.conftest import make_project
from tests.data.real import (
    PLANTED_DOMAIN,
    PLANTED_PHONE,
    REAL,
    overrides,
    plain_roc_auc,
    write_csv,
)
from tests.service.parity import assert_same_answers, tricky_records

pytestmark = pytest.mark.slow
PII_KEY = "a-test-key-for-pseudonyms"
IN_PROCESS = {"caravan", "credit"}
"""Run in this process, not through the flow (the module docstring says why)."""

# what each run must end in with the shipped defaults (docs/own-data.md)
EXPECTED = {
    "telco": "champion",
    "caravan": "champion",
    # a true finding: the model flags single applicants far more often than married ones
    "credit": "fairness",
    # a true finding: two columns exist only once the card was granted, and leak the label
    "creditcard": "leak",
}


@pytest.fixture(scope="module", params=sorted(REAL))
def real_run(request, prefect_api, tmp_path_factory):
    name = request.param
    # the user's edits, and smaller budgets than the shipped 20 trials and 39 permutations
    # (the data's handling is the point here; the model is held to a plain script's all the
    # same)
    params = {**overrides(name), "train": {"n_trials": 5}, "feasibility": {"n_permutations": 19}}
    root = make_project(tmp_path_factory.mktemp(f"real-{name}") / "proj", params, small=False)
    write_csv(name, root / "data" / "external")
    if name in IN_PROCESS:
        assert not REAL[name].get("collect", {}).get("pii"), "personal data: run it as a flow"
        run = {"flow_run_id": "t", "flow_run_name": "t", "experiment": "e", "code_version": "c"}
        decision = run_in_process(root, run)
        ran = decision is not None or (root / PATHS.evaluation_json).exists()
        return name, root, subprocess.CompletedProcess([], 0 if ran else 1, "", ""), decision
    env = tool_env({"PREFECT_API_URL": prefect_api.api_url, "CHURN_PII_KEY": PII_KEY})
    env.pop("CHURN_ADMIN_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "flows.training"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    return name, root, proc, None


def test_a_real_dataset_runs_end_to_end_as_a_user_runs_it(real_run):
    name, root, proc, decision = real_run
    out = proc.stdout + proc.stderr
    if EXPECTED[name] == "leak":
        assert proc.returncode != 0 and "FAILED step 'split', check 'leakage audit'" in out
        assert all(f"'{column}'" in out for column in REAL[name]["leaks"]), out[-3000:]
        assert not (root / PATHS.train).exists(), "no split was written"
        return
    assert proc.returncode == 0, out[-4000:]
    metrics = json.loads((root / PATHS.metrics_json).read_text())
    problem = REAL[name]["params"]["problem"]
    skip = {problem["id_column"], problem["time_column"]} - {None}
    plain = plain_roc_auc(root, problem["target"], skip)
    print(f"{name}: workflow test ROC-AUC {metrics['test']['roc_auc']:.4f}, plain {plain:.4f}")
    assert metrics["test"]["roc_auc"] >= plain - 0.02, (metrics["test"], plain)
    registry = Registry(root / "registry")
    champion = registry.champion()
    if EXPECTED[name] == "champion":
        assert metrics["blessed"], json.loads((root / PATHS.evaluation_json).read_text())[
            "gate_reasons"
        ]
        assert champion is not None
        assert "promoted to champion" in out if name not in IN_PROCESS else decision.promoted
    else:
        evaluation = json.loads((root / PATHS.evaluation_json).read_text())
        assert not metrics["blessed"] and champion is None
        assert any(r.startswith("FAIL Marital:") for r in evaluation["gate_reasons"])
        assert (
            "NOT BLESSED" in out if name not in IN_PROCESS else not (decision and decision.promoted)
        )


def test_a_real_champion_answers_predict_with_records_as_the_csv_holds_them(real_run, monkeypatch):
    name, root, proc, _ = real_run
    if EXPECTED[name] != "champion":
        pytest.skip(f"{name} stops at the gate (a true finding), so it has no champion")
    raw = pd.read_csv(root / "data" / "external" / REAL[name]["file"], nrows=50)
    records = json.loads(
        raw.drop(columns=[REAL[name]["params"]["problem"]["target"]]).to_json(orient="records")
    )
    monkeypatch.setenv("CHURN_PII_KEY", PII_KEY)
    app = create_app(root / "registry", f"sqlite:///{root / 'predictions.db'}", admin_token="")
    with TestClient(app) as client:
        answer = client.post("/predict", json={"records": records})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    probabilities = [p["probability"] for p in body["predictions"]]
    assert len(probabilities) == 50 and all(0 <= p <= 1 for p in probabilities)
    assert np.std(probabilities) > 0.01  # the records are scored, not defaulted
    ids = [p["id"] for p in body["predictions"]]
    id_column = REAL[name]["params"]["problem"]["id_column"]
    assert ids == (raw[id_column].astype(str).tolist() if id_column else [None] * 50)


def test_the_data_docs_and_the_card_say_what_was_checked(real_run):
    name, root, proc, _ = real_run
    if EXPECTED[name] == "leak":
        pytest.skip(f"{name} stops at the split (a true finding): no model card")
    card = (root / PATHS.model_card).read_text()
    assert "slices judged:" in card and "fairness judged:" in card
    assert os.path.getsize(root / PATHS.eda_html) > 10_000


# an address starts where a run of word characters starts: without the lookbehind, the
# search retries from every character of a long run (83 s over one run's files)
_PLANTED = re.compile(
    rf"(?<![\w.])[\w.]+@{re.escape(PLANTED_DOMAIN)}|{re.escape(PLANTED_PHONE)}\d+"
)


def _planted(text: str) -> list[str]:
    return sorted(set(_PLANTED.findall(text)))


def _file_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:4] == b"PAR1":  # compressed pages: read the values
        table = pq.read_table(path)
        return " ".join(str(v) for column in table.columns for v in column.to_pylist())
    return data.decode("utf-8", errors="replace")


def test_planted_personal_data_reaches_no_file_and_no_log(real_run, prefect_api):
    name, root, proc, _ = real_run
    if not REAL[name].get("collect", {}).get("pii"):
        pytest.skip(f"{name} has no personal columns")
    assert not _planted(proc.stdout + proc.stderr)
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in (".git",) or rel.parts[:2] == ("data", "external"):
            continue
        hits = _planted(_file_text(path))
        if hits:
            found[str(rel)] = hits[:3]
    assert not found, f"personal data in files the run wrote: {found}"
    snapshot = json.loads(next((root / "data" / "01_raw").glob("*/provenance.json")).read_text())
    assert snapshot["pii"]["columns"] == {"email": "drop", "phone": "pseudonymise"}
    logs = asyncio.run(_server_logs())
    assert logs, "the flow's logs reached the Prefect server"
    assert not _planted("\n".join(logs))


async def _server_logs() -> list[str]:
    from prefect.client.orchestration import get_client

    messages: list[str] = []
    async with get_client() as client:
        while True:
            page = await client.read_logs(limit=200, offset=len(messages))
            messages += [log.message for log in page]
            if len(page) < 200:
                return messages


def test_a_real_champion_gives_the_same_answers_through_the_compiled_path(real_run, monkeypatch):
    """Every row of the CSV, as a client sends it, through both scoring paths (issue 16)."""
    name, root, proc, _ = real_run
    if EXPECTED[name] != "champion":
        pytest.skip(f"{name} stops before registration (a true finding), so it has no champion")
    monkeypatch.setenv("CHURN_PII_KEY", PII_KEY)
    raw = pd.read_csv(root / "data" / "external" / REAL[name]["file"])
    target = REAL[name]["params"]["problem"]["target"]
    records = json.loads(raw.drop(columns=[target]).to_json(orient="records"))
    registry = Registry(root / "registry")
    model = LoadedModel.load(registry, registry.champion())
    counts = assert_same_answers(model, records)
    assert counts["scored"] == len(raw), counts
    assert_same_answers(model, tricky_records(model, records, fields=12))
