"""A full disk under the prediction log (issue 40, cases 1 and 2).

Before: when an Arrow write failed mid-message, the segment writer kept the same stream and
appended every later batch after the torn one, so every later prediction of that hour had
unreadable inputs and every monitoring window over it failed, for good; and rows the
database refused were logged as "kept in failed/" before that write, which then failed too:
predictions answered 200 were in neither place.

Now: a failed segment write ends its file at its last complete batch and the next batch
starts a new one; a row is said to be kept only once it is; a row that can be neither
written nor kept is held in memory while ``/predict`` answers 503, and kept once the disk
takes writes again. The disk is a 2 MiB tmpfs the test mounts (root only).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from scoring.segments import SegmentWriter, read_hours
from service.app import create_app
from tasks.core.paths import PATHS, PREDICTIONS_DB
from tests.conftest import without_served_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounts a small tmpfs to fill: needs root and mount(8)",
)


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; the filler file, to delete to free it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
        try:  # the last partial block
            while out.write(b"\0"):
                pass
        except OSError:
            pass
    return filler


def test_a_segment_write_that_fails_never_tears_later_batches(small_disk):
    writer = SegmentWriter(small_disk / "log")
    hour = dt.datetime(2024, 1, 1, 5, tzinfo=dt.timezone.utc)
    batch = pa.RecordBatch.from_pydict(
        {"request_id": [f"r{i}" for i in range(2000)], "in.x": [float(i) for i in range(2000)]}
    )
    writer.append(hour, "v1", batch)
    filler = fill(small_disk)
    failures = 0
    for _ in range(3):
        try:
            writer.append(hour, "v1", batch)
        except OSError:
            failures += 1
    assert failures, "the full disk refused a batch"
    filler.unlink()
    for _ in range(2):
        writer.append(hour, "v1", batch)
    writer.close()
    frame = read_hours(small_disk / "log", [hour])  # no ArrowException: every batch kept whole
    assert len(frame) == 2000 * (1 + 3 - failures + 2)


def records(trained_project: Path, n: int) -> list[dict]:
    test = pd.read_parquet(trained_project / PATHS.test).head(n)
    return json.loads(
        test.drop(columns=["churned_30d"]).to_json(orient="records", date_format="iso")
    )


def test_no_prediction_answered_200_is_lost_and_none_is_said_kept_before_it_is(
    trained_project, small_disk, caplog
):
    registry = small_disk / "registry"
    shutil.copytree(trained_project / "registry", registry, ignore=without_served_state())
    rows = records(trained_project, 40)
    answered, refused = [], 0
    with TestClient(create_app(registry, poll_s=0.1)) as client:
        for record in rows[:5]:
            answered.append(client.post("/predict", json=record).json()["request_id"])
        filler = fill(small_disk)
        for record in rows[5:30]:
            reply = client.post("/predict", json=record)
            assert reply.status_code in (200, 503), reply.text
            if reply.status_code == 200:
                answered.append(reply.json()["request_id"])
            else:
                refused += 1
                # the log cannot write, or is behind while it retries
                assert any(w in reply.json()["detail"] for w in ("cannot write", "behind"))
            time.sleep(0.05)
        filler.unlink()  # space again: the writer's probe notices within about a second
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = client.post("/predict", json=rows[30])
            if reply.status_code == 200:
                answered.append(reply.json()["request_id"])
                break
            time.sleep(0.2)
        else:
            pytest.fail("the API did not accept predictions again after space was freed")
        for record in rows[31:]:
            answered.append(client.post("/predict", json=record).json()["request_id"])
    assert refused, "with the disk full, /predict answered 503 rather than lose rows"
    with sqlite3.connect(registry / PREDICTIONS_DB) as conn:
        stored = {r[0] for r in conn.execute("SELECT request_id FROM predictions")}
    kept = set()
    for path in (registry / "prediction_log" / "failed").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            kept.add(json.loads(line)["request_id"])  # whole lines only
    missing = [r for r in answered if r not in stored | kept]
    assert not missing, f"answered 200 but neither stored nor kept: {missing}"
    # no "kept" claim for a row that was not
    for message in caplog.messages:
        if "kept in" in message and "could not write prediction row" in message:
            request_id = message.split("row ")[1].split("/")[0]
            assert request_id in kept, message
    # every hour of the log reads whole again
    now = dt.datetime.now(dt.timezone.utc)
    hours = [now - dt.timedelta(hours=1), now]
    read_hours(registry / "prediction_log", hours)
