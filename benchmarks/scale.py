"""The scale section of ``make bench``: every data stage's process, measured at growing sizes.

For each size, a fresh project runs the training DAG's stages one by one, each as its own
process (the ``cmd`` of its ``dvc.yaml`` stage, in the DAG's order), and each process's wall
time and peak resident memory (the whole process tree, sampled every 0.1 s) are recorded.
That is the figure that decides whether a size fits a machine: a stage process that holds the
whole dataset grows with the rows; one that streams its partitions stays flat.

The baseline is the smallest size: each stage's memory and time at a larger size are given as
a ratio to it (flat memory is a ratio near 1; linear time is a ratio near the ratio of rows).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import psutil
import yaml

from benchmarks.measure import run_measured, run_sampled

STAGE_LIMIT_MB = 4096
"""The issue's bound on any stage process, at any size."""


REGISTER = """
from pathlib import Path
from tasks.core.config import load_params
from tasks.core.serving.registry import open_registry
from tasks.promote import register_and_promote
params = load_params(Path("params.yaml"))
run = dict(flow_run_id="bench", flow_run_name="bench", experiment=None, code_version="bench")
print(register_and_promote(Path("."), params, open_registry(Path("."), params), run))
"""
"""The training flow's last step (registration and the gated promotion), as its own process."""


def stage_commands(root: Path) -> list[tuple[str, list[str]]]:
    """``(stage, argv)`` for every ``dvc.yaml`` stage, in the file's (topological) order, then
    the training flow's registration (``register``), which reads the splits too."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"])
        if argv[0] == "python":
            argv[0] = sys.executable
        out.append((name, argv))
    return [*out, ("register", [sys.executable, "-c", REGISTER])]


def bench_size(root: Path, env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Run each stage of the project at ``root`` once, measured: ``{stage: figures}``."""
    figures = {}
    for name, argv in stage_commands(root):
        figures[name] = run_measured(argv, root, env, logs / f"{root.name}-{name}.log")
    return figures


STAGE_LINE = re.compile(r"Running stage '([\w-]+)'|Task run '(push-data|register-and-promote)")
"""A line of the flow's log where a stage, the DVC push or the registration starts."""


def run_flow_measured(
    args: list[str], cwd: Path, env: dict[str, str], log: Path, timeout_s: float = 14400
) -> dict[str, Any]:
    """Run the training flow (``args``) and measure every process it starts, by stage.

    Every 0.2 s each process of the tree is sampled; the stage is the last ``Running stage``
    line of the flow's log so far (or ``push-data``, ``register-and-promote`` after it).
    Returns the wall time, the whole tree's peak and, per stage (``flow`` before the first),
    the largest single process's resident memory and its command: the figure the 4 GB bound
    is about (the flow's warm process forks one child per stage).
    """
    stages: dict[str, dict[str, Any]] = {}
    state = {"stage": "flow", "read": 0, "tree_peak": 0.0}

    def sample(root: psutil.Process) -> None:
        with open(log, "rb") as fh:  # the log's new complete lines: which stage runs
            fh.seek(state["read"])
            new = fh.read()
        new = new[: new.rfind(b"\n") + 1]
        state["read"] += len(new)
        for found in STAGE_LINE.findall(new.decode(errors="replace")):
            state["stage"] = found[0] or found[1]
        entry = stages.setdefault(state["stage"], {"largest_mb": 0.0, "largest": ""})
        tree = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                rss = p.memory_info().rss / 2**20
                tree += rss
                if rss > entry["largest_mb"]:
                    entry.update(largest_mb=round(rss, 1), largest=" ".join(p.cmdline())[:160])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        state["tree_peak"] = max(state["tree_peak"], tree)

    seconds = run_sampled(args, cwd, env, log, sample, 0.2, timeout_s)
    largest = max(stages.values(), key=lambda e: e["largest_mb"])
    return {
        "seconds": round(seconds, 1),
        "tree_peak_mb": round(state["tree_peak"], 1),
        "largest_process_mb": largest["largest_mb"],
        "under_limit": largest["largest_mb"] <= STAGE_LIMIT_MB,
        "stages": stages,
    }


def flow_markdown(flow: dict[str, Any]) -> list[str]:
    """Rows for results.md: the training flow at each size, the largest process per stage."""
    lines = [
        "",
        "Scale, the whole training flow (`python -m flows.training` against a Prefect server): "
        f"the largest single process of each stage (bound {STAGE_LIMIT_MB:,} MB).",
        "",
        "| rows | wall | whole tree at once | largest process | per stage (MB) |",
        "|---|---|---|---|---|",
    ]
    for run in flow["runs"]:
        per = ", ".join(f"{s} {e['largest_mb']:,.0f}" for s, e in run["stages"].items())
        lines.append(
            f"| {run['rows']:,} | {run['seconds']:.0f} s | {run['tree_peak_mb']:,.0f} MB | "
            f"{run['largest_process_mb']:,.0f} MB "
            f"({'under' if run['under_limit'] else 'OVER'} the bound) | {per} |"
        )
    return lines


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios to the smallest size, and whether every stage stayed under the bound."""
    runs = sorted(runs, key=lambda r: r["rows"])
    base = runs[0]
    for run in runs:
        run["rows_ratio"] = round(run["rows"] / base["rows"], 2)
        run["memory_ratio"] = {
            s: round(f["peak_mb"] / base["stages"][s]["peak_mb"], 2)
            for s, f in run["stages"].items()
        }
        run["time_ratio"] = {
            s: round(f["seconds"] / base["stages"][s]["seconds"], 2)
            for s, f in run["stages"].items()
        }
        run["largest_stage_mb"] = max(f["peak_mb"] for f in run["stages"].values())
        run["under_limit"] = run["largest_stage_mb"] <= STAGE_LIMIT_MB
    return {"limit_mb": STAGE_LIMIT_MB, "runs": runs}


def markdown(scale: dict[str, Any]) -> list[str]:
    """Rows for results.md: one line per stage, sizes side by side."""
    runs = scale["runs"]
    head = " | ".join(f"{r['rows']:,} rows" for r in runs)
    lines = [
        "",
        f"Scale: each stage's own process, peak memory / wall time (ratio to {runs[0]['rows']:,} "
        f"rows; bound {scale['limit_mb']:,} MB per stage process).",
        "",
        f"| stage | {head} |",
        "|---|" + "---|" * len(runs),
    ]
    for stage in runs[0]["stages"]:
        cells = []
        for r in runs:
            f = r["stages"][stage]
            ratio = (
                f" ({r['memory_ratio'][stage]:.2f}x / {r['time_ratio'][stage]:.2f}x)"
                if r is not runs[0]
                else ""
            )
            again = " †" if f.get("remeasured") else ""
            cells.append(f"{f['peak_mb']:,.0f} MB / {f['seconds']:.1f} s{ratio}{again}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    if any(f.get("remeasured") for r in runs for f in r["stages"].values()):
        lines.append(
            "| † | re-measured alone, with the code of a later commit, on the same project |"
            + " |" * (len(runs) - 1)
        )
    lines.append(
        "| largest stage | "
        + " | ".join(
            f"{r['largest_stage_mb']:,.0f} MB ({'under' if r['under_limit'] else 'OVER'} the bound)"
            for r in runs
        )
        + " |"
    )
    return lines
