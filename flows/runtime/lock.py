"""One pipeline run per workspace: the lock, and the sweep of a killed run's half-written files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flows.runtime.processes import clear_orphans, tracking_children
from tasks.core.io import TMP_PREFIX

# Pipeline output folders swept for half-written files (``tasks.core.io.atomic_path``)
# of a killed run


LOCK_NAME = "churn-pipeline.lock"


SWEPT_DIRS = ("data", "models", "reports")


class PipelineBusy(RuntimeError):
    """Another pipeline run holds this workspace."""


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


def _lock_path(root: Path) -> Path:
    return root / ".dvc" / "tmp" / LOCK_NAME


@contextlib.contextmanager
def no_run_in_progress(root: Path) -> Iterator[bool]:
    """True while no pipeline run holds the workspace; the shared hold taken meanwhile keeps
    a run from starting (it waits, as for any holder). False at once if one holds it."""
    path = _lock_path(root)
    if not path.parent.is_dir():
        yield True
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    path = _lock_path(root)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
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
            with tracking_children(folder):
                yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
