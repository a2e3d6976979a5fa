"""HTTP load with ``hey`` (Debian's package; installed here when missing and run as root)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def hey_binary() -> str:
    """The ``hey`` load generator's path, installing Debian's package if this user may."""
    found = shutil.which("hey")
    if found:
        return found
    if Path("/usr/bin/apt-get").exists() and _is_root():
        print("bench: installing Debian's hey (HTTP load generator)", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "hey"],
            check=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        found = shutil.which("hey")
    if not found:
        raise RuntimeError(
            "the API benchmark needs the 'hey' load generator: apt-get install hey (Debian), "
            "brew install hey (macOS), or go install github.com/rakyll/hey@latest"
        )
    return found


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def hey(url: str, body: Path, connections: int, requests: int) -> dict[str, Any]:
    """POST ``body`` ``requests`` times over ``connections`` connections; the summary."""
    out = subprocess.run(
        [
            hey_binary(),
            "-n",
            str(requests),
            "-c",
            str(connections),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body),
            "-t",
            "60",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_hey(out)


def parse_hey(text: str) -> dict[str, Any]:
    """Requests/s, p50/p99 latency (ms) and status counts from hey's summary."""

    def seconds(pattern: str, fallback: str | None = None) -> float:
        match = re.search(pattern, text) or (re.search(fallback, text) if fallback else None)
        if not match:
            raise ValueError(f"hey's output lacks {pattern!r}:\n{text[-2000:]}")
        return float(match.group(1))

    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    return {
        "rps": round(seconds(r"Requests/sec:\s+([\d.]+)"), 1),
        "p50_ms": round(seconds(r"50%+ in ([\d.]+) secs") * 1000, 3),
        # with few requests hey prints no 99th percentile: the slowest one stands in
        "p99_ms": round(seconds(r"99%+ in ([\d.]+) secs", r"Slowest:\s+([\d.]+) secs") * 1000, 2),
        "statuses": statuses,
        # answers that were predictions (a 503 sheds load; it is not a prediction)
        "ok_share": round(statuses.get(200, 0) / max(1, sum(statuses.values())), 4),
        "errors": len(re.findall(r"Error distribution", text)),
    }
