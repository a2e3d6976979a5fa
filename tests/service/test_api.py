"""The prediction API against a real registered champion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tasks.core.config import load_params
from tasks.core.data.snapshots import current_snapshot
from tasks.core.ml.models import load_model, model_inputs
from tasks.core.paths import PATHS


@pytest.fixture(scope="module")
def client(trained_project):
    app = create_app(trained_project / "registry", admin_token="s3cret", poll_s=0.1)
    with TestClient(app) as c:
        yield c


def raw_records(root, ids):
    raw = current_snapshot(root / PATHS.raw_dir).read().drop_duplicates("customer_id")
    rows = raw[raw["customer_id"].isin(ids)].drop(columns=["churned_30d", "cancellation_reason"])
    return json.loads(rows.to_json(orient="records"))


def test_same_rows_give_identical_probabilities_through_the_api_and_the_pipeline(
    client, trained_project
):
    params = load_params(trained_project / "params.yaml")
    test = pd.read_parquet(trained_project / PATHS.test).head(60)
    X, _, _, _ = model_inputs(test, params.problem)
    expected = dict(
        zip(
            test["customer_id"],
            load_model(trained_project / PATHS.model_file).predict_proba(X)[:, 1],
        )
    )
    response = client.post(
        "/predict", json={"records": raw_records(trained_project, list(test["customer_id"]))}
    )
    assert response.status_code == 200, response.text
    got = {p["id"]: p["probability"] for p in response.json()["predictions"]}
    assert got.keys() == expected.keys()
    np.testing.assert_allclose(
        [got[k] for k in expected], [expected[k] for k in expected], atol=1e-6
    )


def test_a_single_record_gets_probability_decision_version_request_id_and_explanations(
    client, trained_project
):
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]
    body = client.post("/predict?explain=true", json=record).json()
    assert body["model_version"] == "v0001" and len(body["request_id"]) == 32
    p = body["predictions"][0]
    assert 0 <= p["probability"] <= 1 and p["decision"] in (0, 1) and len(p["contributions"]) == 5


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"tenure_months": "abc"}, "tenure_months", "expected a number"),
        ({"signup_date": "next tuesday"}, "signup_date", "expected a date"),
        ({"age": {"nested": 1}}, "age", "single value"),
        ({"customer_id": None}, "customer_id", "id is required"),
        ({"tenure_months": True}, "tenure_months", "expected a number"),
        ({"tenure_months": "1e999"}, "tenure_months", "number, got"),
        ({"tenure_months": 10**400}, "tenure_months", "finite number"),
    ],
)
def test_a_bad_field_gets_422_naming_the_field_and_reason(
    client, trained_project, change, field, reason
):
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]
    response = client.post("/predict", json={"records": [record, {**record, **change}]})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "records", 1, field] and reason in detail["msg"]


def test_a_batch_reports_its_first_bad_field_in_record_then_field_order(client, trained_project):
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]
    # record 1 has a bad text number; record 2 a bad type, found without parsing: record 1 is named
    batch = [record, {**record, "age": "old", "tenure_months": "x"}, {**record, "age": [1]}]
    detail = client.post("/predict", json={"records": batch}).json()["detail"][0]
    assert detail["loc"][:3] == ["body", "records", 1]
    assert detail["loc"][3] == next(k for k in record if k in ("age", "tenure_months"))


@pytest.mark.parametrize("batch", [False, True], ids=["one record", "batch"])
def test_the_fast_json_reading_answers_as_the_standard_library_reads(
    client, trained_project, batch
):
    # orjson reads the body first: an integer beyond 64 bits becomes a float there, and
    # numbers beyond a float's range, UTF-16 and a byte-order mark are refused; each must
    # get the answer of the standard library's reading
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]

    def post(body: bytes):
        return client.post("/predict", content=body, headers={"content-type": "application/json"})

    def wrap(*records: dict) -> dict:
        return {"records": [record, *records]} if batch else records[0]

    for change, field, reason in (
        ({"notes": 2**70}, "notes", "at most 19 digits"),
        ({"tenure_months": -(2**64)}, "tenure_months", "at most 19 digits"),
        ({"tenure_months": 1e400}, "tenure_months", "finite number"),
    ):
        text = json.dumps(wrap({**record, **change})).replace("Infinity", "1e400")
        reply = post(text.encode())
        assert reply.status_code == 422, (change, reply.text)
        detail = reply.json()["detail"][0]
        assert detail["loc"][-1] == field and reason in detail["msg"], (change, detail)
        assert detail["loc"][2] == (1 if batch else 0)
    plain = json.dumps(wrap(record))
    want = post(plain.encode()).json()["predictions"]
    for body in (plain.encode("utf-16"), b"\xef\xbb\xbf" + plain.encode()):
        reply = post(body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == want


def test_unseen_categories_and_missing_values_are_handled_as_in_training(client, trained_project):
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]
    odd = {
        **record,
        "payment_method": "Crypto Wallet",
        "age": None,
        "usage_hours_30d": "",
        "region": None,
    }
    assert client.post("/predict", json=odd).status_code == 200


def test_request_size_is_bounded_and_bad_json_is_422_not_500(client):
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert (
        client.post("/predict", json={"records": [{"customer_id": "x"}] * 1001}).status_code == 422
    )
    assert client.post("/predict", content=b"x" * 2_100_000).status_code == 413


def test_health_model_metrics_feedback_and_admin(client, trained_project):
    assert client.get("/health").json() == {"status": "ok", "model_version": "v0001"}
    info = client.get("/model").json()
    assert info["version"] == "v0001" and "contract" in info["input_schema"]["columns"]
    record = raw_records(
        trained_project, list(pd.read_parquet(trained_project / PATHS.test)["customer_id"][:1])
    )[0]
    request_id = client.post("/predict", json=record).json()["request_id"]
    admin = {"Authorization": "Bearer s3cret"}
    fb = client.post(
        "/feedback",
        json={
            "labels": [{"request_id": request_id, "label": 1}, {"request_id": "nope", "label": 0}]
        },
        headers=admin,
    ).json()
    assert fb == {"labelled_rows": 1, "unknown_request_ids": ["nope"], "labelled_by": "admin"}
    assert (
        client.post(
            "/feedback", json={"labels": [{"request_id": request_id, "label": 7}]}, headers=admin
        ).status_code
        == 422
    )
    text = client.get("/metrics").text
    assert 'churn_requests_total{endpoint="predict",model_version="v0001",status="200"}' in text
    assert "churn_request_latency_seconds_count" in text
    assert client.post("/admin/reload").status_code == 401
    assert (
        client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert (
        client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    )
