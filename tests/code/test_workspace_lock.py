"""One pipeline run per workspace: a second one waits, then is refused naming the holder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import zc.lockfile

from flows.runtime.lock import PipelineBusy, workspace_lock
from flows.runtime.stages import repro_stage
from tests.conftest import REPO

HOLDER = """
import sys, time
from pathlib import Path
from flows.runtime.lock import workspace_lock
with workspace_lock(Path(sys.argv[1]), holder="flow run other-run (1234)"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(root):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_naming_the_holder_and_gets_the_lock_once_the_holder_dies(tmp_path):
    (tmp_path / ".dvc").mkdir()
    proc = hold(tmp_path)
    waits = []
    try:
        with pytest.raises(PipelineBusy, match="other-run"):
            with workspace_lock(tmp_path, holder="me", timeout_s=1.5, on_wait=waits.append):
                pass
        assert waits and "other-run" in waits[0]
    finally:
        proc.send_signal(signal.SIGKILL)  # a killed holder must not leave the lock stuck
        proc.wait()
    started = time.monotonic()
    with workspace_lock(tmp_path, holder="me", timeout_s=5):
        pass
    assert time.monotonic() - started < 3


def test_a_stage_waits_while_dvc_is_busy_then_gives_up_with_a_clear_message(project):
    root = project()
    lock = zc.lockfile.LockFile(str(root / ".dvc" / "tmp" / "lock"))  # what `dvc repro` holds
    lines = []
    try:
        with pytest.raises(PipelineBusy, match="DVC stayed busy"):
            repro_stage(root, "collect", on_line=lines.append, busy_timeout_s=6, poll_s=1)
    finally:
        lock.close()
    assert any("retrying" in ln for ln in lines)
    assert not (root / "data" / "01_raw").exists(), "nothing ran while DVC was busy"
