"""Trust boundaries: who may change what, no 5xx for any input, no prediction lost silently.

Each test drives the API (or the store, or batch scoring) as an outside tester would, with
the input that broke a guarantee of the table of docs/guarantees.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flows.batch_scoring import batch_scoring
from scoring.store import LABEL_EVENTS, PREDICTIONS, PredictionStore
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tests.conftest import without_served_state

TOKENS = {"crm-token": "crm"}
CRM = {"Authorization": "Bearer crm-token"}
# what an outside tester throws at every field
HOSTILE = [
    10**310,
    -(10**40),
    True,
    "\x00",
    "a\x07b",
    {"nested": 1},
    [1, 2],
    "x" * 300,
    "",
    "   ",
    None,
    1e308,
    "NaN",
    "Infinity",
]


@pytest.fixture(scope="module")
def project(trained_project: Path, tmp_path_factory) -> Path:
    """A copy of the trained project's registry (tests write to its store)."""
    root = tmp_path_factory.mktemp("trust")
    shutil.copytree(
        trained_project / "registry",
        root / "registry",
        ignore=without_served_state(),
    )
    return root


@pytest.fixture(scope="module")
def client(project: Path):
    app = create_app(project / "registry", admin_token="adm", feedback_tokens=TOKENS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def record(trained_project: Path) -> dict:
    raw = current_snapshot(trained_project / PATHS.raw_dir).read().head(1)
    row = raw.drop(columns=["churned_30d", "cancellation_reason"])
    return json.loads(row.to_json(orient="records"))[0]


def statuses(client) -> dict[str, int]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("churn_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels] = int(float(value))
    return out


# ---------------------------------------------------------------- no 5xx
@pytest.mark.parametrize("field", ["customer_id", "tenure_months", "contract", "not_a_column"])
def test_a_hostile_value_in_any_record_field_gets_a_4xx_never_a_5xx(client, record, field):
    for value in HOSTILE:
        reply = client.post("/predict", json={"records": [{**record, field: value}]})
        assert reply.status_code < 500, (field, value, reply.text)
        if field == "customer_id":  # none of them is an id
            assert reply.status_code == 422, (value, reply.text)


def test_ids_past_the_limits_are_refused_the_same_way_everywhere(client, record):
    for bad, why in [
        ("x" * 129, "at most 128"),
        ("B\x00nul", "control character"),
        ("   ", "required"),
        ("NaN", "required"),
        ("Infinity", "required"),
        (10**310, "too large"),
    ]:
        reply = client.post("/predict", json={**record, "customer_id": bad})
        assert reply.status_code == 422, (bad, reply.text)
        detail = reply.json()["detail"][0]
        assert detail["loc"][-1] == "customer_id" and why in detail["msg"], (bad, detail)


def test_nan_and_infinity_in_a_body_get_422(client, record):
    for text in ('{"records": [{"tenure_months": NaN}]}', '{"x": Infinity}'):
        reply = client.post("/predict", content=text, headers={"Content-Type": "application/json"})
        assert reply.status_code == 422, reply.text
    for label in ("NaN", "Infinity", "true", '"1"', "1.5", "[1]", '{"a": 1}'):
        body = '{"labels": [{"request_id": "r", "label": ' + label + "}]}"
        reply = client.post(
            "/feedback", content=body, headers={**CRM, "Content-Type": "application/json"}
        )
        assert reply.status_code == 422, (label, reply.text)


@pytest.mark.parametrize("value", HOSTILE)
def test_feedback_and_lineage_fields_never_answer_5xx(client, value):
    for position in ("request_id", "label", "row"):
        item = {"request_id": "r1", "label": 1, "row": 0, position: value}
        reply = client.post("/feedback", json={"labels": [item]}, headers=CRM)
        assert reply.status_code < 500, (position, value, reply.text)
    text = value if isinstance(value, str) else json.dumps(value)
    assert client.get(f"/lineage/{quote(text, safe='') or 'x'}").status_code < 500


def test_every_status_is_counted_in_metrics(client, record):
    before = statuses(client)
    client.post("/predict", content="x", headers={"Content-Type": "text/plain"})  # 415
    client.post("/predict", json={**record, "customer_id": 10**310})  # 422
    client.post("/feedback", json={"labels": [{"request_id": "r", "label": 1}]})  # 401
    client.post("/predict", content=b"x" * 2_100_000, headers={"Content-Type": "application/json"})
    after = statuses(client)
    grew = {k for k in after if after[k] > before.get(k, 0)}
    for status, endpoint in (
        ("415", "predict"),
        ("422", "predict"),
        ("401", "feedback"),
        ("413", "predict"),
    ):
        assert any(f'endpoint="{endpoint}"' in k and f'status="{status}"' in k for k in grew), (
            status,
            endpoint,
            sorted(grew),
        )
    assert "churn_prediction_write_failures_total" in client.get("/metrics").text


# ---------------------------------------------------------------- who may change what
def test_predict_takes_json_only_and_sends_no_cors_headers(client, record):
    for headers, content in (
        ({"Content-Type": "text/plain"}, json.dumps(record)),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "a=1"),
        ({}, json.dumps(record)),
    ):
        reply = client.post("/predict", content=content, headers=headers)
        assert reply.status_code == 415, (headers, reply.status_code)
    reply = client.post("/predict", json=record, headers={"Origin": "https://evil.example"})
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers
    pre = client.options(
        "/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_only_for_the_configured_origins(project, record):
    app = create_app(project / "registry", cors_origins=["https://crm.example"])
    with TestClient(app) as c:
        ok = c.post("/predict", json=record, headers={"Origin": "https://crm.example"})
        other = c.post("/predict", json=record, headers={"Origin": "https://evil.example"})
    assert ok.headers.get("access-control-allow-origin") == "https://crm.example"
    assert "access-control-allow-origin" not in other.headers


def test_labels_need_a_token_record_who_and_a_change_is_explicit_and_logged(
    client, record, project
):
    request_id = client.post("/predict", json={"records": [record, record]}).json()["request_id"]
    label = {"labels": [{"request_id": request_id, "label": 1}]}
    assert client.post("/feedback", json=label).status_code == 401
    assert (
        client.post("/feedback", json=label, headers={"Authorization": "Bearer no"}).status_code
        == 401
    )
    first = client.post("/feedback", json=label, headers=CRM)
    assert first.status_code == 200 and first.json()["labelled_by"] == "crm"
    assert first.json()["labelled_rows"] == 2
    flip = {"labels": [{"request_id": request_id, "label": 0}]}
    refused = client.post("/feedback", json=flip, headers=CRM)
    assert refused.status_code == 409 and "overwrite" in refused.json()["detail"]
    two = {
        "labels": [
            {"request_id": request_id, "label": 0, "row": 0},
            {"request_id": request_id, "label": 1, "row": 0},
        ]
    }
    assert client.post("/feedback", json=two, headers=CRM).status_code == 422
    changed = client.post(
        "/feedback", json={**flip, "overwrite": True}, headers={"Authorization": "Bearer adm"}
    )
    assert changed.status_code == 200 and changed.json()["labelled_rows"] == 2
    engine = sa.create_engine(f"sqlite:///{project / 'registry' / 'predictions.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(PREDICTIONS.c.label, PREDICTIONS.c.labelled_by).where(
                PREDICTIONS.c.request_id == request_id
            )
        ).all()
        events = conn.execute(
            sa.select(
                LABEL_EVENTS.c.old_label, LABEL_EVENTS.c.new_label, LABEL_EVENTS.c.labelled_by
            )
            .where(LABEL_EVENTS.c.request_id == request_id)
            .order_by(LABEL_EVENTS.c.id)
        ).all()
    assert set(rows) == {(0, "admin")}
    assert events == [(None, 1, "crm"), (None, 1, "crm"), (1, 0, "admin"), (1, 0, "admin")]


def test_a_tampered_champion_on_reload_gets_409_and_the_old_model_serves(project, record):
    from tasks.core.serving.registry import Registry

    registry = Registry(project / "registry")
    champion = registry.champion()
    model_file = next(p for p in champion.folder.iterdir() if p.suffix == ".skops")
    original = model_file.read_bytes()
    app = create_app(project / "registry", admin_token="adm", poll_s=3600)
    with TestClient(app) as c:
        model_file.write_bytes(original + b" ")
        try:
            reply = c.post("/admin/reload", headers={"Authorization": "Bearer adm"})
            assert reply.status_code == 409 and "refused" in reply.json()["detail"], reply.text
            assert c.post("/predict", json=record).status_code == 200
        finally:
            model_file.write_bytes(original)


# ---------------------------------------------------------------- no silent loss
def write_with_one_bad_row(url: str, bad: dict, log_dir=None) -> PredictionStore:
    """Three requests queued together (one INSERT), the middle one refused by the database."""
    store = PredictionStore(url, log_dir=log_dir, flush_s=0.5)
    store.log("good-1", "v0001", ["a"], [{"x": 1}], [0.5], [1])
    store.log(
        "bad", bad.get("model_version", "v0001"), [bad.get("record_id", "x")], [{}], [0.5], [1]
    )
    store.log("good-2", "v0001", ["b"], [{"x": 2}], [0.6], [1])
    store.flush()
    return store


def test_the_writer_isolates_a_bad_row_counts_it_and_keeps_it(tmp_path):
    # model_version NOT NULL: refused by the database, after the two good rows' segment write
    store = write_with_one_bad_row(
        f"sqlite:///{tmp_path / 'p.db'}", {"model_version": None}, log_dir=tmp_path / "log"
    )
    try:
        assert store.failed_rows == 1
        assert store.get("good-1") and store.get("good-2"), "the good rows were written"
        kept = [
            json.loads(line)
            for path in (tmp_path / "log" / "failed").glob("*.jsonl")
            for line in path.read_text().splitlines()
        ]
        assert [k["request_id"] for k in kept] == ["bad"] and "error" in kept[0]
    finally:
        store.close()


@pytest.mark.slow
def test_on_postgresql_a_too_long_id_is_isolated_and_the_api_refuses_it_first(
    postgres_url, project, record
):

    store = write_with_one_bad_row(postgres_url, {"record_id": "x" * 300})
    try:
        assert store.failed_rows == 1
        assert store.get("good-1") and store.get("good-2")
    finally:
        store.close()
    app = create_app(project / "registry", database_url=postgres_url)
    with TestClient(app) as c:
        for rid in ("x" * 300, "B\x00nul"):
            assert c.post("/predict", json={**record, "customer_id": rid}).status_code == 422
        ok = c.post("/predict", json={**record, "customer_id": "y" * 128})
        assert ok.status_code == 200
        assert c.get(f"/lineage/{ok.json()['request_id']}").status_code == 200


@pytest.mark.slow
def test_batch_scoring_keeps_the_apis_rules(trained_project, tmp_path, record, prefect_api):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root, ignore=without_served_state(".git"))
    ext = root / "data" / "external"
    ext.mkdir(parents=True, exist_ok=True)
    cases = {}
    frame = pd.DataFrame([record] * 3)
    frame.assign(contract=[[1, 2]] * 3).to_parquet(ext / "lists.parquet")
    cases["lists.parquet"] = "must be a single value"
    frame.head(0).to_csv(ext / "header.csv", index=False)
    cases["header.csv"] = "no rows"
    nul = frame.assign(customer_id=["B\x00nul", "c2", "c3"]).to_csv(index=False)
    assert "\x00" in nul
    (ext / "nul.csv").write_text(nul)
    cases["nul.csv"] = "NUL byte"
    blank = frame.copy()
    blank["customer_id"] = ["c1", "   ", "c3"]
    blank.to_csv(ext / "blank.csv", index=False)
    cases["blank.csv"] = "the id is required"
    for name, why in cases.items():
        with pytest.raises(Exception, match=why):
            batch_scoring(f"data/external/{name}", project_dir=str(root))
    # read a row at a time, the bad row is still named by its place in the file
    with pytest.raises(Exception, match="record 1, field 'customer_id'"):
        batch_scoring("data/external/blank.csv", project_dir=str(root), chunk_rows=1)
    out = root / "data" / "06_predictions"  # a refused file leaves no output, whole or partial
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
