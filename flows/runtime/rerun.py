"""Has anything changed since the last recorded run?

The training flow notes each run it records (``remember_run``): the hashes of ``params.yaml``
and ``dvc.lock`` and the experiment that holds it. A later run in which no stage is stale and
both files still hash the same has nothing to record, push or register.

``unchanged_workspace`` answers that before Prefect is even imported, so that
``python -m flows.training`` on an unchanged project answers in about a second instead of
paying for Prefect's import and a flow run (``flows/training.py``). It imports nothing heavy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flows.runtime.lock import no_run_in_progress
from flows.runtime.stages import stale_stages
from tasks.core.config import load_params
from tasks.core.io import file_sha256, read_json, write_json
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS, find_project_root


def run_fingerprint(root: Path) -> dict[str, str]:
    """What a recorded run is compared on: the hashes of ``params.yaml`` and ``dvc.lock``."""
    lock = root / "dvc.lock"
    return {
        "params_sha256": file_sha256(root / PATHS.params),
        "lock_sha256": file_sha256(lock) if lock.exists() else "",
    }


def unchanged_since_last_run(root: Path) -> dict[str, Any] | None:
    """The last recorded run, when params.yaml and dvc.lock are still exactly its own."""
    path = root / PATHS.last_run
    if not path.exists():
        return None
    last = read_json(path)
    same = {k: last.get(k) for k in ("params_sha256", "lock_sha256")} == run_fingerprint(root)
    return last if same else None


def remember_run(root: Path, experiment: str, run_name: str) -> None:
    """Note the run just recorded (what a later nothing-changed run compares with)."""
    write_json(
        root / PATHS.last_run,
        {**run_fingerprint(root), "experiment": experiment, "flow_run_name": run_name},
    )


def unchanged_workspace(root: Path) -> dict[str, Any] | None:
    """The last recorded run, if running the pipeline now would do nothing at all.

    Only when no run is in progress, ``params.yaml`` and ``dvc.lock`` are those the
    last recorded run left, and ``dvc status`` finds no stage stale (code, data, params and
    outputs as recorded). None otherwise, or when any of it cannot be told: then the flow runs.
    """
    with no_run_in_progress(root) as free:
        last = unchanged_since_last_run(root) if free else None
        if last is None or stale_stages(root) != set():
            return None
        return last


def print_model_summary(root: Path) -> None:
    """The recorded model's test figures and gate verdict, in three lines (if there is one)."""
    metrics_file = root / PATHS.metrics_json
    if not metrics_file.exists():
        return
    m = read_json(metrics_file)
    t = m["test"]
    objective = objective_for(load_params(root / PATHS.params).problem)
    ranking = objective.metric(objective.FLOOR_METRIC)
    best = max(m["baseline"].items(), key=lambda kv: ranking.oriented(kv[1][ranking.name]))
    oracle = t.get(f"oracle_{ranking.name}")
    figures = ", ".join(f"{objective.metric(n).label} {t[n]:.4f}" for n in objective.SUMMARY)
    print(
        f"  model: {m['model']}, test {figures}"
        + (f" (oracle {oracle:.4f}, {t[ranking.name] / oracle:.1%} of it)" if oracle else "")
    )
    print(
        f"  best baseline: {best[0]} {ranking.label} {best[1][ranking.name]:.4f}; lift lower "
        f"bound {m['lift_lower_bound']:.4f}"
    )
    print(f"  {'BLESSED' if m['blessed'] else 'NOT BLESSED'}: see {PATHS.model_card}")
    for skipped in m.get("skipped", []):  # a check that did not run is not a pass
        print(f"  skipped: {skipped}")


def exit_if_unchanged() -> None:
    """``python -m flows.training``'s first step: exit 0 with a summary if nothing would change.

    Returns (and the flow runs) when anything changed or cannot be told; the flow then reports
    any problem itself.
    """
    try:
        root = find_project_root()
        same = unchanged_workspace(root)
    except (OSError, ValueError, KeyError):
        return
    if same is None:
        return
    print(
        f"nothing changed since run {same['flow_run_name']}: params.yaml, dvc.lock and every "
        f"stage's code, data and outputs are as it left them, and experiment "
        f"{same['experiment']} already holds it.\nNothing was run, recorded, pushed or "
        "registered, and no Prefect flow run was started (python -m flows.training "
        "--flow-anyway starts one)."
    )
    try:
        print_model_summary(root)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sys.exit(0)
