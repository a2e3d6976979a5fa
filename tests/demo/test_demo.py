"""A short ``make demo``: real server, deployments, API and store on a simulated clock."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_a_short_demo_alerts_on_the_injection_day_and_the_trigger_starts_retraining(tmp_path):
    args = [
        "--days",
        "5",
        "--drift-day",
        "2",
        "--drift",
        "covariate",
        "--customers",
        "500",
        "--label-delay",
        "2",
        "--min-drifted-label-days",
        "1",
        "--train-days",
        "10",
        "--retrain-days",
        "10",
        "--n-trials",
        "2",
        "--window-days",
        "1",
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "demo", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["drift_kind"] == "covariate" and summary["injection_day"] == 2
    assert summary["false_alerts_before_injection"] == 0 and summary["no_drift_windows"] == 2
    assert summary["first_alert_day"] == 2 and summary["targets"]["alert_within_one_window"]
    # labels 2 days late, 1 day of them needed: the request comes on day 4, the trigger runs it
    assert summary["retraining_requests"] == [4], summary["retraining_requests"]
    runs = summary["retraining_runs"]
    assert len(runs) == 1 and runs[0]["reason"].startswith("monitoring alert:")
    assert runs[0]["params"] == {
        "collect.window.start": "2025-02-23",
        "collect.window.end": "2025-03-04",
    }
    assert runs[0]["state"] in ("Completed", "Failed")
    assert (
        summary["live_roc_auc"]["before_drift"] > 0.7
        and summary["oracle_roc_auc"]["before_drift"] > 0.7
    )
    # 500 customers a day, and the ~1% duplicate rows a real export has
    assert len(summary["by_day"]) == 5 and all(
        500 <= d["predictions"] <= 520 for d in summary["by_day"]
    )
    # each window's estimate, made before its labels, beside what its labels turned out to say
    estimate = summary["estimate"]
    assert estimate["windows"] >= 4 and estimate["mean_absolute_error"] <= 0.06, estimate
    assert all(
        0.5 < w["estimated"] < 1 and w["band"][0] < w["band"][1] for w in estimate["by_window"]
    )
    assert (tmp_path / "out" / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "day   4" in done.stdout and "retraining" in done.stdout
