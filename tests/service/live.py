"""Live traffic for a served project: customers of the days after its data, predicted
through the API and then labelled through ``/feedback``, as the monitoring tests need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.data.simulator import simulate
from tasks.core.data.snapshots import current_snapshot
from tasks.core.paths import PATHS
from tests.service.parity import json_records

AUTH = {"Authorization": "Bearer t"}


def live_customers(
    root: Path, target: str, read: Callable[[pd.Series], pd.Series]
) -> tuple[list[dict], list[Any]]:
    """Three days of simulated customers after the project's last snapshot (ones the
    model never saw), those whose ``target`` ``read`` gives a value: their records as a
    client sends them, and their truth."""
    last = pd.to_datetime(current_snapshot(root / PATHS.raw_dir).read()["snapshot_date"]).max()
    start = last.date() + dt.timedelta(days=1)
    raw = simulate(start, start + dt.timedelta(days=3), 300, seed=11, target=target).data
    truth = read(raw[target])
    raw, truth = raw[truth.notna()].reset_index(drop=True), truth.dropna()
    return json_records(raw.drop(columns=[target])), truth.tolist()


def predict_then_label(client: Any, records: list[dict], truth: list[Any]) -> list[dict]:
    """Each 200 records predicted, then their truth posted to ``/feedback`` (every row
    stored): the predictions, in the records' order."""
    served = []
    for at in range(0, len(records), 200):
        body = client.post("/predict", json={"records": records[at : at + 200]}).json()
        served += body["predictions"]
        labels = [
            {"request_id": body["request_id"], "row": i, "label": y}
            for i, y in enumerate(truth[at : at + 200])
        ]
        reply = client.post("/feedback", json={"labels": labels}, headers=AUTH)
        assert reply.status_code == 200 and reply.json()["labelled_rows"] == len(labels)
    return served
