"""Running one DVC stage (``dvc repro --single-item``), and which stages are stale.

Each stage runs in a subprocess whose output is streamed line by line to a callback (the
Prefect logger), so DVC keeps deciding what is stale and keeps ``dvc.lock`` and the cache
right.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.runtime.lock import PipelineBusy
from flows.runtime.processes import dvc_executable, run_streaming, tool_env
from flows.runtime.warm import active_env

BUSY_PATTERNS = ("is busy", "Unable to acquire lock")


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero."""

    def __init__(self, stage: str, returncode: int, tail: list[str]) -> None:
        self.stage = stage
        self.returncode = returncode
        self.tail = tail
        reason = next(
            (ln.strip() for ln in reversed(tail) if ln.strip().startswith(("FAILED", "ERROR"))), ""
        )
        # a step that refused its input or settings says "FAILED step '...', check '...'":
        # running it again gives the same answer (an I/O fault may not)
        self.judged = any(ln.strip().startswith("FAILED step '") for ln in tail)
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
    before = lock_entry(root, stage)
    while True:
        code, lines = run_streaming(
            [dvc_executable(), "repro", "--single-item", stage],
            root,
            on_line,
            env=tool_env(active_env()),  # the warm step server's shim, while a flow keeps one
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
        # ran: its command ran and changed what dvc.lock records (a stage that always runs,
        # such as collect, and finds nothing new leaves its entry as it was)
        ran = f"Running stage '{stage}'" in text and lock_entry(root, stage) != before
        return StageOutcome(stage, ran, time.perf_counter() - started)


def lock_entry(root: Path, stage: str) -> object:
    """What ``dvc.lock`` records for ``stage`` (None when nothing, or no lock file)."""
    path = root / "dvc.lock"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return (data.get("stages") or {}).get(stage)


def live_stages(root: Path) -> set[str]:
    """Stages that always run and must run now: collect when its source is SQL (a database
    changes under the same query). Other sources are fingerprinted by the collect step."""
    try:
        params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {"collect"}
    source = (params.get("collect") or {}).get("source")
    return {"collect"} if source == "sql" else set()


def stale_stages(root: Path) -> set[str] | None:
    """Stages ``dvc status`` finds out of date (changed code, data, params, or missing outputs).

    One DVC call for the whole pipeline instead of one per stage. None when DVC cannot
    tell (busy, or an error): then every stage is left to ``dvc repro`` to decide. A stage
    DVC calls stale only because it always runs counts when :func:`live_stages` names it.
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
    if not isinstance(status, dict):
        return None
    live = live_stages(root)
    return {
        name.rpartition(":")[2]
        for name, reasons in status.items()
        if reasons != ["always changed"] or name.rpartition(":")[2] in live
    }
