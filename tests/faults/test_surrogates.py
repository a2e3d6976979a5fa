"""A lone surrogate (``"\\ud800"``) is valid JSON but no Unicode text (issue 40, case 8).

Before: ``/predict`` logged the prediction, then failed to encode its answer (HTTP 500, and
a request id in the log that no client ever got); ``/feedback``'s 422 handler could not
encode its own reply. Now both answer 422, and nothing is logged. The same holds for a text
longer than any field may hold (``collect.max_field_chars``' 10,000 characters; a 1.9 MB
string in a category field was scored and logged).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tasks.core.paths import PATHS, PREDICTIONS_DB
from tests.conftest import without_served_state

LONE = '"\\ud800"'  # the JSON text of a string holding one lone surrogate


@pytest.fixture(scope="module")
def served(trained_project, tmp_path_factory):
    registry = tmp_path_factory.mktemp("surrogates") / "registry"
    shutil.copytree(trained_project / "registry", registry, ignore=without_served_state())
    app = create_app(registry, admin_token="s3cret-admin-token", poll_s=0.1)
    with TestClient(app) as client:
        yield client, registry


def record_json(trained_project) -> dict:
    test = pd.read_parquet(trained_project / PATHS.test).head(1)
    row = test.drop(columns=["churned_30d"]).iloc[0]
    return json.loads(row.to_json(date_format="iso"))


@pytest.mark.parametrize("where", ["value", "id", "key"])
def test_a_lone_surrogate_in_a_record_is_refused_and_nothing_is_logged(
    served, trained_project, where
):
    client, registry = served
    record = record_json(trained_project)
    text = json.dumps({"records": [record]})
    if where == "value":
        text = text.replace('"plan": "', '"plan": ' + LONE[:-1], 1)
    elif where == "id":
        text = text.replace(f'"customer_id": "{record["customer_id"]}"', f'"customer_id": {LONE}')
    else:
        text = text.replace('{"customer_id"', "{" + LONE + ': 1, "customer_id"', 1)
    assert "\\ud800" in text
    before = logged(registry)
    answer = client.post(
        "/predict", content=text.encode(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "lone surrogate" in answer.json()["detail"][0]["msg"]
    # still serving: the next, clean request is answered, and only it reaches the log
    good = client.post("/predict", json={"records": [record]})
    assert good.status_code == 200
    deadline = time.monotonic() + 10
    while logged(registry) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logged(registry) == before + [good.json()["request_id"]]


def logged(registry) -> list[str]:
    """The request ids in the prediction store, oldest first."""
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM predictions ORDER BY rowid")]


def test_feedback_with_a_lone_surrogate_gets_a_422_it_can_encode(served):
    client, _ = served
    body = '{"labels": [{"request_id": ' + LONE + ', "label": 1}]}'
    answer = client.post(
        "/feedback",
        content=body.encode(),
        headers={"content-type": "application/json", "authorization": "Bearer s3cret-admin-token"},
    )
    assert answer.status_code == 422, answer.text
    assert "\\\\ud800" in answer.text or "\\ud800" in answer.text  # shown as its escape


def test_a_text_longer_than_any_field_holds_is_refused_before_it_is_logged(served, trained_project):
    # before: a 1.9 MB string in a category field was scored and written to the log
    client, registry = served
    record = record_json(trained_project)
    before = logged(registry)
    for batch in (
        [{**record, "plan": "x" * 1_900_000}],
        [record] * 3 + [{**record, "plan": "y" * 10_001}],
    ):
        answer = client.post("/predict", json={"records": batch})
        assert answer.status_code == 422, answer.text
        assert "characters; at most 10,000" in answer.json()["detail"][0]["msg"]
    client.post("/predict", json={"records": [record]})  # a clean one, to know the log caught up
    deadline = time.monotonic() + 10
    while len(logged(registry)) == len(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(logged(registry)) == len(before) + 1
