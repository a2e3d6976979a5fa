"""Registry files swapped or edited on disk, and injection through every string that reaches SQL.

What must hold:
- a version whose model, card, schema or reference changed after registration is refused at
  load, naming the file; the API keeps serving the model it had and never answers an error;
- request ids, labels and record fields are data to the prediction store, never SQL;
- the SQL source's window is bound as parameters; its URL comes from the environment only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from devtools.project import register_copy
from service.app import create_app
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tasks.core.serving.registry import Registry, RegistryError
from tests.conftest import without_served_state

INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE predictions; --",
    '" OR 1=1 --',
    "x\\'; DELETE FROM predictions; --",
    "1; UPDATE predictions SET label = 1",
    "%' OR request_id LIKE '%",
]


@pytest.fixture
def registry_copy(trained_project: Path, tmp_path: Path) -> tuple[Path, Registry]:
    root = tmp_path / "registry"
    shutil.copytree(trained_project / "registry", root, ignore=without_served_state())
    return root, Registry(root)


LABELLER = {"Authorization": "Bearer t"}


def records(trained_project: Path, n: int = 5) -> list[dict]:
    raw = (
        current_snapshot(trained_project / PATHS.raw_dir)
        .read()
        .drop_duplicates("customer_id")
        .head(n)
    )
    return json.loads(
        raw.drop(columns=["churned_30d", "cancellation_reason"]).to_json(orient="records")
    )


def second_version(registry: Registry):
    return register_copy(registry, "v0001")


def edit(path: Path, change) -> None:
    os.chmod(path, 0o644)
    change(path)


@pytest.mark.parametrize("target", ["model.skops", "card.json", "schema.json", "reference.parquet"])
def test_a_version_file_edited_after_registration_is_refused_naming_it(registry_copy, target):
    _, registry = registry_copy
    v2 = second_version(registry)
    registry.load(v2)  # fine as registered
    if target == "card.json":  # a plausible edit: a lower decision threshold
        edit(v2.folder / target, lambda p: p.write_text(json.dumps({**v2.card, "threshold": 0.01})))
    elif (
        target == "model.skops"
    ):  # the model swapped, and its card edited to match: the index still knows
        other = registry.get("v0001").folder / "reference.parquet"
        edit(v2.model_path, lambda p: p.write_bytes(other.read_bytes()))
        from tasks.core.io import file_sha256

        edit(
            v2.folder / "card.json",
            lambda p: p.write_text(
                json.dumps({**v2.card, "model_sha256": file_sha256(v2.model_path)})
            ),
        )
    else:
        edit(v2.folder / target, lambda p: p.write_bytes(p.read_bytes() + b" "))
    # named: the file that changed (for the swapped model, the card edited to match it is
    # caught too)
    with pytest.raises(
        RegistryError,
        match=target.replace(".", r"\.")
        if target != "model.skops"
        else r"(model\.skops|card\.json) changed since registration",
    ):
        registry.load(registry.get(v2.version))


def test_a_version_copied_in_by_hand_is_refused(registry_copy):
    root, registry = registry_copy
    shutil.copytree(root / "versions" / "v0001", root / "versions" / "v0009")
    card = root / "versions" / "v0009" / "card.json"
    edit(
        card, lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": "v0009"}))
    )
    with pytest.raises(RegistryError, match="not in .*index.jsonl"):
        registry.load(registry.get("v0009"))


def test_the_api_keeps_serving_when_the_new_champion_is_tampered_with(
    registry_copy, trained_project
):
    root, registry = registry_copy
    v2 = second_version(registry)
    edit(v2.model_path, lambda p: p.write_bytes(b"not a model"))
    with TestClient(create_app(root, poll_s=0.05)) as client:
        assert client.get("/health").json()["model_version"] == "v0001"
        # promotion refuses it now (tests/faults/test_registry_guard.py); an alias file
        # edited by hand still names it
        with pytest.raises(RegistryError, match="model file sha256"):
            registry.promote(v2.version, "a tampered challenger")
        aliases = root / "aliases.json"
        aliases.write_text(json.dumps({**json.loads(aliases.read_text()), "champion": "v0002"}))
        time.sleep(0.5)  # ten polls of the alias
        for record in records(trained_project):
            reply = client.post("/predict", json=record)
            assert reply.status_code == 200 and reply.json()["model_version"] == "v0001"
        assert client.get("/health").json() == {"status": "ok", "model_version": "v0001"}


def test_strings_from_requests_are_data_to_the_store_never_sql(registry_copy, trained_project):
    root, _ = registry_copy
    recs = records(trained_project, 3)
    with TestClient(create_app(root, feedback_tokens={"t": "tests"})) as client:
        request_id = client.post("/predict", json={"records": recs}).json()["request_id"]
        hostile = [{**r, "customer_id": s, "region": s} for r, s in zip(recs * 2, INJECTIONS)]
        assert client.post("/predict", json={"records": hostile}).status_code == 200
        for s in INJECTIONS:
            reply = client.post(
                "/feedback", json={"labels": [{"request_id": s, "label": 1}]}, headers=LABELLER
            )
            assert reply.status_code == 200 and reply.json() == {
                "labelled_rows": 0,
                "unknown_request_ids": [s],
                "labelled_by": "tests",
            }
            assert client.get(f"/lineage/{s}").status_code == 404
        assert (
            client.post(
                "/feedback",
                json={"labels": [{"request_id": request_id, "label": 0}]},
                headers=LABELLER,
            ).json()["labelled_rows"]
            == 3
        )
    engine = sa.create_engine(f"sqlite:///{root / 'predictions.db'}")
    with engine.connect() as conn:
        stored = pd.read_sql("SELECT request_id, record_id, label FROM predictions", conn)
    engine.dispose()
    assert len(stored) == 3 + len(INJECTIONS), "no row dropped, none added"
    assert set(stored["record_id"]) >= set(INJECTIONS), "hostile strings stored verbatim, as data"
    assert stored["label"].dropna().tolist() == [0, 0, 0], "only the real request was labelled"


def test_the_sql_source_binds_a_hostile_window_as_data(tmp_path, monkeypatch):
    from tasks.core.config import parse_params
    from tasks.core.data.sources import read_sql
    from tests.conftest import deep_merge, default_params_dict

    db = tmp_path / "src.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "snapshot_date": ["2024-01-05", "2024-01-06"],
            "churned_30d": ["no", "yes"],
        }
    ).to_sql("customers", engine, index=False)
    engine.dispose()
    monkeypatch.setenv("CHURN_SQL_URL", f"sqlite:///{db}")
    query = "SELECT * FROM customers WHERE snapshot_date BETWEEN :start AND :end"
    params = parse_params(
        deep_merge(
            default_params_dict(),
            {
                "collect": {
                    "source": "sql",
                    "sql": {"query": query},
                    "window": {"start": "2024-01-01", "end": "2024-01-31"},
                }
            },
        )
    )
    assert len(read_sql(params.collect)) == 2
    with pytest.raises(Exception, match="date|window|start"):
        parse_params(
            deep_merge(
                default_params_dict(),
                {
                    "collect": {
                        "source": "sql",
                        "sql": {"query": query},
                        "window": {"start": "2024-01-01' OR '1'='1", "end": "2024-01-31"},
                    }
                },
            )
        )
    with pytest.raises(Exception, match="url"):
        parse_params(
            deep_merge(
                default_params_dict(),
                {
                    "collect": {
                        "source": "sql",
                        "sql": {"query": query, "url": "postgresql://user:secret@db/x"},
                    }
                },
            )
        )
