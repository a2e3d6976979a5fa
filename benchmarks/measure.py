"""Wall time and peak memory of a command and every process it starts."""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of ``proc`` and all its descendants, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_sampled(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Path,
    sample: Callable[[psutil.Process], None],
    every_s: float,
    timeout_s: float,
) -> float:
    """Run ``args`` (output to ``log``), calling ``sample`` on its process every ``every_s``
    while it runs: the wall time in seconds. A failing or overlong command raises with the
    end of its log."""
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                sample(watched)
            except psutil.NoSuchProcess:
                pass
            if time.perf_counter() - started > timeout_s:
                proc.kill()
                raise RuntimeError(f"{' '.join(args)}: over {timeout_s:.0f} s")
            time.sleep(every_s)
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{log.read_text()[-4000:]}")
    return seconds


def run_measured(
    args: list[str], cwd: Path, env: dict[str, str], log: Path, timeout_s: float = 7200
) -> dict:
    """Run ``args``: ``{"seconds", "cpu_s", "peak_mb"}``.

    ``cpu_s`` is the CPU time (user + system) of the command and every process it started;
    ``peak_mb`` the largest resident memory of that process tree at once (sampled every
    0.1 s). A failing command raises with the end of its log.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = [0]

    def sample(watched: psutil.Process) -> None:
        peak[0] = max(peak[0], tree_rss(watched))

    seconds = run_sampled(args, cwd, env, log, sample, 0.1, timeout_s)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 1),
        "peak_mb": round(peak[0] / 2**20, 1),
    }


def latency_summary(seconds: list[float], wall: float) -> dict:
    """p50 and p99 in milliseconds, and requests per second over ``wall``."""
    ms = np.array(seconds) * 1000
    return {
        "requests": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "rps": round(len(ms) / wall, 1),
    }


def concurrent(call, clients: int, per_client: int) -> tuple[list[float], float]:
    """``call()`` ``per_client`` times from each of ``clients`` threads: every latency, and the
    wall time."""
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            state = {}
            for _ in range(per_client):
                t0 = time.perf_counter()
                call(state)
                times[k].append(time.perf_counter() - t0)
        except BaseException as exc:  # reported below, after the other threads finish
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return [s for ts in times for s in ts], wall
