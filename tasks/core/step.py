"""The thin command-line edge every step shares: load params, run, report errors clearly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tasks.core.config import ParamsError, load_params
from tasks.core.declare import arguments
from tasks.core.errors import StepError
from tasks.core.paths import PATHS, find_project_root

log = logging.getLogger("churn")


def code_version(root: Path) -> str:
    """The git commit of the code, with ``-dirty`` when tracked files differ from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "tasks", "flows"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def configure_logging() -> None:
    """Plain, timestamped log lines on stderr (DVC and Prefect stream them)."""
    logging.basicConfig(
        level=os.environ.get("CHURN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_step(step: str, body: Callable[..., None]) -> int:
    """Run one step's I/O edge and turn failures into a clear message and exit code.

    Parameters
    ----------
    step : str
        Step name for messages.
    body : callable
        ``body(root, <the sections its signature declares>)`` (:mod:`tasks.core.declare`);
        reads inputs, calls the pure functions, writes outputs.

    Returns
    -------
    int
        0 on success, 1 on a :class:`StepError` or :class:`ParamsError`.
    """
    configure_logging()
    started = time.perf_counter()
    try:
        root = find_project_root()
        params = load_params(root / PATHS.params)
        log.info("[%s] starting", step)
        body(**arguments(body, root, params, step))
    except StepError as exc:
        log.error("%s", exc)
        print(f"\nFAILED step '{exc.step}', check '{exc.check}':\n  {exc.message}", file=sys.stderr)
        return 1
    except (ParamsError, FileNotFoundError) as exc:
        log.error("[%s] %s", step, exc)
        print(f"\nFAILED step '{step}':\n  {exc}", file=sys.stderr)
        return 1
    log.info("[%s] done in %.1f s", step, time.perf_counter() - started)
    return 0
