"""A test session leaves no server running, however it ends.

The servers tests start (Prefect, PostgreSQL, the API, Dask, moto) run in sessions of
their own, so a signal to the test runner never reaches them, and a fixture's teardown does
not run when the runner is terminated. Every server is registered here when it starts
(:func:`register`); on SIGTERM or SIGHUP, and at exit, the registered stops run, newest
first. The main pytest process forwards the signal to its process group first, so that the
pytest-xdist workers stop their own servers too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
from collections.abc import Callable
from typing import Any

_stops: list[Callable[[], Any]] = []
_installed = False


def register(stop: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``stop`` when the session ends, however it ends (it must tolerate a second call
    and a server already gone)."""
    _stops.append(stop)
    return stop


def stop_all() -> None:
    """Run every registered stop once, newest first."""
    while _stops:
        stop = _stops.pop()
        with contextlib.suppress(Exception):
            stop()


def install(forward: bool) -> None:
    """Stop the registered servers at exit and on SIGTERM or SIGHUP (then die of the signal).

    ``forward``: first send the signal to this process's group (the main pytest process,
    whose workers share it).
    """
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signum, signal.SIG_IGN)  # the forwarded signal comes back here too
        if forward:
            with contextlib.suppress(OSError):
                os.killpg(os.getpgrp(), signum)
        stop_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
