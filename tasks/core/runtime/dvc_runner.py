"""Running DVC from Python: one stage at a time, one pipeline run per workspace.

Used by the Prefect flows. Each stage runs as ``dvc repro --single-item <stage>`` in a
subprocess whose output is streamed line by line to a callback (the Prefect logger), so
DVC keeps deciding what is stale and keeps ``dvc.lock`` and the cache right.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.core.env import TELEMETRY_OFF
from tasks.core.io import TMP_PREFIX, write_json
from tasks.core.paths import PATHS

LOCK_NAME = "churn-pipeline.lock"
# The DVC/step processes a pipeline run started, so the next run can stop them if it died
CHILDREN_NAME = "churn-pipeline.children.json"
# Pipeline output folders swept for half-written files (``tasks.core.io.atomic_path``)
# of a killed run
SWEPT_DIRS = ("data", "models", "reports")
_tracking: dict[str, Path | None] = {"file": None}  # set while this process holds a workspace lock
_tracking_guard = threading.Lock()
BUSY_PATTERNS = ("is busy", "Unable to acquire lock")
EXP_NAME_MAX = 60
# Outputs that record when they were made (Data Docs pages name the validation time), so a
# reproduction recomputes them but they never match byte for byte: left out of the check.
NOT_BYTE_FOR_BYTE = (PATHS.data_docs_dir + "/",)


class PipelineBusy(RuntimeError):
    """Another pipeline run holds this workspace."""


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero."""

    def __init__(self, stage: str, returncode: int, tail: list[str]) -> None:
        self.stage = stage
        self.returncode = returncode
        self.tail = tail
        reason = next(
            (ln.strip() for ln in reversed(tail) if ln.strip().startswith(("FAILED", "ERROR"))), ""
        )
        detail = "\n".join(tail[-12:])
        super().__init__(
            f"stage '{stage}' failed (exit {returncode}){': ' + reason if reason else ''}\n{detail}"
        )


@dataclass(frozen=True)
class StageOutcome:
    """What running one stage did."""

    stage: str
    ran: bool
    seconds: float


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
        _track_child(proc.pid, " ".join(Path(a).name if k == 0 else a for k, a in enumerate(args)))
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                on_line(line)
            returncode = proc.wait()
        finally:
            _track_child(proc.pid, None)
    return returncode, lines


# --------------------------------------------------------------------------- after a killed run
def _edit_children(path: Path, edit: Callable[[list[dict]], list[dict]]) -> None:
    with _tracking_guard:
        try:
            entries = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            entries = []
        write_json(path, edit(entries))


def _track_child(pid: int, command: str | None) -> None:
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
    start time) is an orphan: its process group gets SIGTERM, then SIGKILL.
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
        _, alive = psutil.wait_procs([proc], timeout=grace_s)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(e["pid"], signal.SIGKILL)
            psutil.wait_procs(alive, timeout=grace_s)
        stopped.append(e["pid"])
    path.unlink(missing_ok=True)
    return stopped


def sweep_half_written(root: Path, on_line: Callable[[str], None] = print) -> list[Path]:
    """Remove the temporary files (``.tmp-*``) a killed step left in the pipeline's folders.

    Only when no DVC command runs in the workspace (DVC's own lock is free): a running
    step's temporary files are its work in progress.
    """
    dvc_lock = root / ".dvc" / "tmp" / "lock"
    if dvc_lock.exists():
        with open(dvc_lock, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []
            try:
                return _sweep(root, on_line)
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return _sweep(root, on_line)


def _sweep(root: Path, on_line: Callable[[str], None]) -> list[Path]:
    removed = []
    for name in SWEPT_DIRS:
        for path in sorted((root / name).rglob(f"{TMP_PREFIX}*")) if (root / name).is_dir() else []:
            if path.is_file():
                path.unlink()
                removed.append(path)
    if removed:
        on_line(
            f"removed {len(removed)} half-written file(s) a killed run left: "
            + ", ".join(str(p.relative_to(root)) for p in removed[:5])
            + (" ..." if len(removed) > 5 else "")
        )
    return removed


def repro_stage(
    root: Path,
    stage: str,
    on_line: Callable[[str], None] = print,
    busy_timeout_s: float = 600.0,
    poll_s: float = 2.0,
) -> StageOutcome:
    """Bring one stage up to date with ``dvc repro --single-item``.

    If DVC reports the workspace busy (someone runs ``dvc repro`` by hand), wait and try
    again for up to ``busy_timeout_s`` seconds instead of failing.

    Raises
    ------
    StageFailed
        When the stage command fails.
    PipelineBusy
        When DVC stays busy past the timeout.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + busy_timeout_s
    while True:
        code, lines = run_streaming(
            [dvc_executable(), "repro", "--single-item", stage], root, on_line
        )
        text = "\n".join(lines)
        if code != 0 and any(p in text for p in BUSY_PATTERNS):
            if time.monotonic() >= deadline:
                raise PipelineBusy(
                    f"DVC stayed busy for {busy_timeout_s:.0f} s (another `dvc repro` or `dvc exp` "
                    "runs in this workspace); try again when it has finished"
                )
            on_line(
                f"DVC is busy with another command in this workspace; retrying in {poll_s:.0f} s"
            )
            time.sleep(poll_s)
            continue
        if code != 0:
            raise StageFailed(stage, code, lines)
        ran = f"Running stage '{stage}'" in text
        return StageOutcome(stage, ran, time.perf_counter() - started)


def stale_stages(root: Path) -> set[str] | None:
    """Stages ``dvc status`` finds out of date (changed code, data, params, or missing outputs).

    One DVC call for the whole pipeline instead of one per stage. None when DVC cannot
    tell (busy, or an error): then every stage is left to ``dvc repro`` to decide.
    """
    done = subprocess.run(
        [dvc_executable(), "status", "--json"],
        cwd=root,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None
    try:
        status = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return None
    return {name.rpartition(":")[2] for name in status} if isinstance(status, dict) else None


@contextlib.contextmanager
def workspace_lock(
    root: Path, holder: str, timeout_s: float = 600.0, on_wait: Callable[[str], None] = print
) -> Iterator[None]:
    """Hold the workspace's pipeline lock: one pipeline run at a time.

    The lock is an OS file lock (released by the kernel if the holder dies, so a killed
    run never leaves it stuck). A second run waits up to ``timeout_s`` seconds, then is
    refused naming the holder. Once held, what a killed holder left is cleared, each with
    a line to ``on_wait``: the DVC and step processes it had started, still running
    (``clear_orphans``), and its half-written files (``sweep_half_written``).
    """
    folder = root / ".dvc" / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                current = fh.read().strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise PipelineBusy(
                        f"another pipeline run holds this workspace ({current}); it was not "
                        f"released within {timeout_s:.0f} s. Wait for it to finish, or run from "
                        "another clone."
                    ) from None
                if not announced:
                    on_wait(f"waiting for the pipeline lock held by {current}")
                    announced = True
                time.sleep(1.0)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(
                json.dumps({"holder": holder, "pid": os.getpid(), "since": time.strftime("%FT%T")})
            )
            fh.flush()
            clear_orphans(folder, on_wait)
            sweep_half_written(root, on_wait)
            _tracking["file"] = folder / CHILDREN_NAME
            yield
        finally:
            _tracking["file"] = None
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def experiment_name(run_name: str, run_id: str) -> str:
    """``<flow-run-name>-<short id>``, reduced to characters valid in a git ref."""
    base = re.sub(r"[^a-z0-9]+", "-", run_name.lower()).strip("-") or "run"
    short = re.sub(r"[^a-z0-9]", "", run_id.lower())[:8] or "0"
    return f"{base[: EXP_NAME_MAX - len(short) - 1]}-{short}"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_git_ready(root: Path) -> None:
    """Experiments are git commits: need a repository with a commit and an identity."""
    if _git(root, "rev-parse", "--verify", "HEAD").returncode != 0:
        raise RuntimeError(f"{root} is not a git repository with a commit; experiments need one")
    for key in ("user.name", "user.email"):
        if not _git(root, "config", key).stdout.strip():
            raise RuntimeError(
                f"git {key} is not set, and DVC experiments are git commits: run "
                f'`git config {key} "..."` (make setup sets a local one)'
            )


def save_experiment(root: Path, name: str, on_line: Callable[[str], None] = print) -> str:
    """Record the workspace as DVC experiment ``name`` (``dvc exp save``); return the name."""
    check_git_ready(root)
    if _git(root, "check-ref-format", f"refs/exps/x/{name}").returncode != 0:
        raise ValueError(f"'{name}' is not a valid experiment name (git ref)")
    args = [dvc_executable(), "exp", "save", "-n", name]
    if _git(root, "ls-files", "--error-unmatch", "dvc.lock").returncode != 0:
        args += ["-I", "dvc.lock"]
    code, lines = run_streaming(args, root, on_line)
    if code != 0:
        raise RuntimeError(f"dvc exp save failed (exit {code}): " + " ".join(lines[-3:]))
    return name


def push_data(root: Path, on_line: Callable[[str], None] = print) -> None:
    """Send the workspace's DVC-tracked data to the default remote (``dvc push``)."""
    code, lines = run_streaming([dvc_executable(), "push"], root, on_line)
    if code != 0:
        raise RuntimeError(f"dvc push failed (exit {code}): " + " ".join(lines[-3:]))


def locked_output_hashes(dvc_lock: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage output recorded in ``dvc.lock``."""
    import yaml

    spec = yaml.safe_load(dvc_lock.read_text(encoding="utf-8")) or {}
    hashes = {}
    for body in (spec.get("stages") or {}).values():
        for out in body.get("outs") or []:
            hashes[out["path"]] = out.get("md5") or out.get("hash", "")
    return hashes


def _must(args: list[str], root: Path, on_line: Callable[[str], None]) -> None:
    code, lines = run_streaming(args, root, on_line)
    if code != 0:
        raise RuntimeError(f"`{' '.join(args[1:])}` failed (exit {code}): " + " ".join(lines[-3:]))


def reproduce_run(
    root: Path,
    name: str,
    source_stages: tuple[str, ...],
    stages: list[str],
    on_line: Callable[[str], None] = print,
    git_remote: str | None = "origin",
) -> dict[str, tuple[str, str]]:
    """Restore experiment ``name`` and recompute every stage from its recorded snapshot.

    Fetches the experiment if it is not here (``dvc exp pull``), applies it, pulls its
    data, then forces every stage except the collection stages (``source_stages``) to
    run again: the snapshot is reused, never collected again.

    Returns
    -------
    dict
        ``{path: (recorded md5, recomputed md5)}`` for every output that differs (empty
        when the run reproduced exactly).
    """
    dvc = dvc_executable()
    local = _git(root, "rev-parse", "--verify", "--quiet", f"refs/exps/*/{name}").returncode == 0
    listed = _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").stdout
    if not local and f"/{name}\n" not in listed + "\n" and git_remote:
        _must([dvc, "exp", "pull", git_remote, name], root, on_line)
    _must([dvc, "exp", "apply", name], root, on_line)
    _must([dvc, "pull"], root, on_line)
    recorded = locked_output_hashes(root / "dvc.lock")
    for stage in stages:
        if stage in source_stages:
            on_line(f"keeping the recorded snapshot of stage '{stage}' (not collecting again)")
            continue
        _must([dvc, "repro", "--force", "--single-item", stage], root, on_line)
    recomputed = locked_output_hashes(root / "dvc.lock")
    return {
        p: (h, recomputed.get(p, ""))
        for p, h in recorded.items()
        if recomputed.get(p) != h and not p.startswith(NOT_BYTE_FOR_BYTE)
    }
