"""Child processes of a pipeline run: the tools' environment, streamed output, orphans.

Every DVC or step process a run starts is recorded in the workspace's children file, so
the next run can stop what a killed run left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from tasks.core.env import TELEMETRY_OFF
from tasks.core.io import write_json

# The DVC/step processes a pipeline run started, so the next run can stop them if it died
CHILDREN_NAME = "churn-pipeline.children.json"
_tracking: dict[str, Path | None] = {"file": None}  # set while this process holds a workspace lock
_tracking_guard = threading.Lock()


@contextlib.contextmanager
def tracking_children(folder: Path) -> Iterator[None]:
    """Record every child process started inside the block in ``folder``'s children file."""
    _tracking["file"] = folder / CHILDREN_NAME
    try:
        yield
    finally:
        _tracking["file"] = None


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for DVC and step subprocesses: this interpreter's tools first, no telemetry."""
    env = {**TELEMETRY_OFF, **os.environ}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def dvc_executable() -> str:
    """The ``dvc`` installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else "dvc"


def run_streaming(
    args: list[str], cwd: Path, on_line: Callable[[str], None], env: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run a command, calling ``on_line`` for each output line (stdout and stderr merged)."""
    lines: list[str] = []
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=env or tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    ) as proc:
        track_child(proc.pid, " ".join(Path(a).name if k == 0 else a for k, a in enumerate(args)))
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                on_line(line)
            returncode = proc.wait()
        finally:
            track_child(proc.pid, None)
    return returncode, lines


def _edit_children(path: Path, edit: Callable[[list[dict]], list[dict]]) -> None:
    with _tracking_guard:
        try:
            entries = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            entries = []
        write_json(path, edit(entries))


def track_child(pid: int, command: str | None) -> None:
    """Record (or, with ``command=None``, forget) a child of the run holding the workspace lock."""
    path = _tracking["file"]
    if path is None:
        return
    if command is None:
        _edit_children(path, lambda es: [e for e in es if e["pid"] != pid])
        return
    import psutil

    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:  # it has already ended
        return
    entry = {"pid": pid, "created": created, "command": command, "parent": os.getpid()}
    _edit_children(path, lambda es: [*es, entry])


def clear_orphans(
    folder: Path, on_line: Callable[[str], None] = print, grace_s: float = 10.0
) -> list[int]:
    """Stop the processes a dead pipeline run left behind; the pids stopped.

    Called by the next run once it holds the workspace lock: the previous holder is gone
    (the kernel released its lock), so a child it recorded that still runs (same pid and
    start time) is an orphan: its process group gets SIGTERM (and SIGCONT, so a stopped one
    handles it), then SIGKILL.
    """
    import psutil

    path = folder / CHILDREN_NAME
    try:
        entries = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    stopped = []
    for e in entries:
        try:
            proc = psutil.Process(e["pid"])
            if abs(proc.create_time() - e["created"]) > 0.5:
                continue  # the pid was reused by an unrelated process
        except psutil.Error:
            continue
        on_line(
            f"stopping `{e['command']}` (pid {e['pid']}): left running by a pipeline run that died "
            f"(pid {e['parent']})"
        )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(e["pid"], signal.SIGTERM)  # started in its own session: pgid == pid
            os.killpg(e["pid"], signal.SIGCONT)  # a stopped process (kill -STOP, ^Z) gets it now
        _, alive = psutil.wait_procs([proc], timeout=grace_s)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(e["pid"], signal.SIGKILL)
            psutil.wait_procs(alive, timeout=grace_s)
        stopped.append(e["pid"])
    path.unlink(missing_ok=True)
    return stopped
