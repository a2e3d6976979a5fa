"""The training deployment's flow: the whole training flow, isolated from the user's checkout.

Started from the Prefect UI, a schedule or an event (``make deploy`` serves it as
``retrain/training``). It makes a git worktree of a committed revision under ``.runs/``,
applies the parameter overrides given in the UI, runs the training flow there, records
the run as a DVC experiment (shared with the main checkout), registers the model in the
main checkout's registry (which the API serves from), keeps the reports under
``runs/<run>/reports`` and removes the worktree. The user's ``params.yaml``, ``dvc.lock``
and ``data/`` are never written. One pipeline run at a time: the run holds the
``dvc-pipeline`` concurrency slot.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.common import pipeline_slot, project_root
from flows.runtime import workspace
from flows.runtime.experiments import experiment_name
from flows.training import training
from tasks.core.config import load_params
from tasks.core.env import telemetry_off
from tasks.core.paths import PATHS
from tasks.core.serving.registry import registry_dir as default_registry_dir


@flow(name="retrain", log_prints=True)
def retrain(
    reason: str = "manual",
    params: dict[str, Any] | None = None,
    revision: str = "HEAD",
    promote: bool = True,
    keep_workspace: bool = False,
    project_dir: str | None = None,
    slot_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Train in an isolated worktree; register, and promote if the gate says so.

    Parameters
    ----------
    reason : str
        Why this run was started (a person, a schedule, a drift alert); logged and recorded.
    params : dict, optional
        ``params.yaml`` overrides as dotted keys, e.g. ``{"train.n_trials": 30}``.
    revision : str
        Git revision of the code and ``params.yaml`` to run (committed code only).
    promote : bool
        Register a blessed model and promote it if it beats the champion.
    keep_workspace : bool
        Keep the worktree under ``.runs/`` afterwards (to debug a failed run).
    project_dir : str, optional
        The main checkout (default: the folder holding ``dvc.yaml`` above the working directory).
    slot_timeout_s : float, optional
        Give up waiting for the pipeline slot after this many seconds (default: wait).
    """
    logger = get_run_logger()
    main = project_root(project_dir)
    run_name = experiment_name(flow_run.get_name() or "retrain", flow_run.get_id() or "local")
    logger.info("retraining (%s) from revision %s of %s", reason, revision, main)
    served = load_params(main / PATHS.params)
    registry_dir = default_registry_dir(main, served)
    allowed, limits = served.retrain.allowed_overrides, served.retrain.override_limits
    # refused before anything is created: only retrain.allowed_overrides of this checkout,
    # each number within retrain.override_limits
    workspace.check_allowed(workspace.leaf_overrides(params or {}), allowed, limits)
    with pipeline_slot(logger.warning, slot_timeout_s):
        ws = workspace.create(main, run_name, revision, on_line=logger.info)
        result: dict[str, Any] = {
            "reason": reason,
            "revision": ws.commit,
            "workspace": str(ws.root),
        }
        try:
            result["overrides"] = workspace.apply_overrides(
                ws.root / PATHS.params, params or {}, allowed, limits
            )
            for line in result["overrides"]:
                logger.info("params override %s", line)
            outcome = training(
                project_dir=str(ws.root),
                promote=promote,
                registry_dir=str(registry_dir),
                experiment=run_name,
            )
            result.update({k: outcome.get(k) for k in ("experiment", "promotion", "stages")})
        finally:
            kept = workspace.keep_reports(ws, run_name)
            result["reports"] = str(kept) if kept else None
            if kept:
                logger.info("reports kept in %s", kept.relative_to(main))
            if keep_workspace:
                logger.info("workspace kept at %s", ws.root)
            else:
                workspace.remove(ws, on_line=logger.info)
    decision = result.get("promotion")
    reports = Path(result["reports"]).relative_to(main) if result.get("reports") else "-"
    create_markdown_artifact(
        key="retraining",
        description="An isolated training run",
        markdown="\n".join(
            [
                f"# Retraining: {reason}",
                "",
                f"- code revision: `{ws.commit[:12]}` ({revision})",
                f"- overrides: {', '.join(f'`{o}`' for o in result['overrides']) or 'none'}",
                f"- DVC experiment: `{result.get('experiment')}` (in the main checkout: `dvc exp "
                "show`)",
                f"- registered: `{decision.registered if decision else None}`; champion now: "
                f"`{decision.champion if decision else None}`",
                f"- reports: `{reports}`",
                *[f"- {r}" for r in (decision.reasons if decision else ())],
            ]
        ),
    )
    return result


def main(argv: list[str]) -> int:
    """Command line: ``python -m flows.retrain [reason]`` (an isolated run, as a deployment
    does)."""
    telemetry_off()
    result = retrain(reason=" ".join(argv) or "manual")
    decision = result.get("promotion")
    print(
        f"experiment {result.get('experiment')}; "
        f"registered {decision.registered if decision else None}; "
        f"champion {decision.champion if decision else None}; reports {result.get('reports')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
