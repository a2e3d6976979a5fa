from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tasks.core.io import atomic_path, write_json, write_text
from tests.conftest import REPO


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out" / "report.md"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]
    write_json(target.with_suffix(".json"), {"b": 1, "a": 2})
    assert target.with_suffix(".json").read_text().startswith('{\n  "a": 2')
    assert oct(target.stat().st_mode & 0o777) != "0o600"


SLOW_WRITER = """
import sys, time
from tasks.core.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as fh:
        fh.write("partial")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_a_killed_writer_never_leaves_a_half_written_target(tmp_path):
    target = tmp_path / "model.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not target.exists(), "the target must not exist after a killed write"
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers and all(name.startswith(".tmp-model.json.") for name in leftovers)


def test_the_umask_is_read_without_changing_it(tmp_path, monkeypatch):
    import os
    import stat

    from tasks.core.io import write_text

    mask = os.umask(0o027)
    os.umask(mask)

    def forbidden(_):  # setting the umask, even for a moment, races other threads
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    path = write_text(tmp_path / "f.txt", "x")
    monkeypatch.undo()
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
