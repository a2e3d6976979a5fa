"""The training flow: every stage of ``dvc.yaml`` as one Prefect task, in DAG order.

The flow holds no copy of the pipeline: it reads the stages from ``dvc.yaml`` at run time
(``flows.runtime.pipeline``) and runs each through DVC, so ``dvc repro`` and this flow do the
same work. Afterwards the run is recorded as a DVC experiment named
``<flow-run-name>-<short id>`` and its data pushed to the DVC remote.

Run it with ``make run`` or ``python -m flows.training`` (``--flow-anyway`` to start a flow
run even when nothing changed since the last recorded run).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--flow-anyway" not in sys.argv[1:]:
    # before Prefect's import (about 2 s): a re-run that would change nothing says so and stops
    from flows.runtime.rerun import exit_if_unchanged

    exit_if_unchanged()

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runtime.experiments import experiment_name, push_data, save_experiment
from flows.runtime.lock import PipelineBusy, workspace_lock
from flows.runtime.pipeline import Stage, load_stages, missing_params
from flows.runtime.plots import mismatch as plots_mismatch
from flows.runtime.processes import tool_env
from flows.runtime.rerun import print_model_summary, remember_run, unchanged_since_last_run
from flows.runtime.stages import StageFailed, repro_stage, stale_stages
from flows.runtime.warm import warm_steps
from tasks.core.env import telemetry_off
from tasks.core.io import read_json
from tasks.core.paths import PATHS, find_project_root
from tasks.core.quality.data_docs import finish as finish_data_docs
from tasks.core.step import code_version

if TYPE_CHECKING:  # the step module is imported only when a model is registered
    from tasks.promote import Promotion

# DVC's advice after each stage; the flow records and pushes the run itself.
DVC_HINTS = (
    "To track the changes with git",
    "git add dvc.lock",
    "To enable auto staging",
    "dvc config core.autostage",
    "Use `dvc push` to send",
)


def _log_line(line: str) -> None:
    logger = get_run_logger()
    if not line.strip() or line.strip().startswith(DVC_HINTS):
        return
    if "ERROR" in line or line.startswith("FAILED"):
        logger.error(line)
    elif "WARNING" in line:
        logger.warning(line)
    else:
        logger.info(line)


def run_stage(stage: Stage, root: str, fresh: bool = False) -> dict[str, Any]:
    """Prefect task body: bring one DVC stage up to date, streaming its log.

    ``fresh``: ``dvc status`` found the stage up to date and nothing upstream ran in this
    run, so there is nothing for ``dvc repro`` to do (it is not started).
    """
    if fresh:
        get_run_logger().info("stage '%s' was up to date (dvc status)", stage.name)
        return {"stage": stage.name, "ran": False, "seconds": 0.0}
    outcome = repro_stage(Path(root), stage.name, on_line=_log_line)
    get_run_logger().info(
        "stage '%s' %s in %.1f s",
        stage.name,
        "ran" if outcome.ran else "was up to date",
        outcome.seconds,
    )
    return {"stage": stage.name, "ran": outcome.ran, "seconds": round(outcome.seconds, 2)}


def retry_unless_judged(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed stage unless a step judged its input or settings (the same answer
    again: a missing key or a failed check is reported once, not three times)."""
    error = getattr(state, "data", None)
    return not (isinstance(error, StageFailed) and error.judged)


def stage_task(stage: Stage):  # noqa: ANN201 - a prefect Task
    """The Prefect task for one stage (named after it; retries from ``meta.retries``)."""
    return task(
        run_stage,
        name=stage.name,
        task_run_name=stage.name,
        description=stage.description or stage.cmd,
        retries=stage.retries,
        retry_delay_seconds=5,
        retry_condition_fn=retry_unless_judged,
        cache_policy=NO_CACHE,
    )


@task(name="record-experiment", cache_policy=NO_CACHE)
def record_experiment(root: str, name: str) -> str:
    """Save the workspace as a DVC experiment."""
    return save_experiment(Path(root), name, on_line=_log_line)


@task(name="register-and-promote", cache_policy=NO_CACHE)
def register(root: str, run: dict[str, Any], registry_dir: str | None = None) -> Promotion:
    """Register a blessed model; promote it only if it beats the champion (step 10)."""
    from tasks.core.config import load_params
    from tasks.core.serving.registry import Registry
    from tasks.core.serving.registry import registry_dir as default_registry_dir
    from tasks.promote import register_and_promote

    params = load_params(Path(root) / "params.yaml")
    registry = Registry(
        Path(registry_dir) if registry_dir else default_registry_dir(Path(root), params)
    )
    decision = register_and_promote(Path(root), params, registry, run)
    logger = get_run_logger()
    verdict = (
        "promoted to champion"
        if decision.promoted
        else "registered, not promoted"
        if decision.registered
        else "not registered"
    )
    logger.info("model %s: %s", decision.registered or "-", verdict)
    for reason in decision.reasons:
        logger.info("  %s", reason)
    lines = [
        f"# Deployment decision: {verdict}",
        "",
        f"- registered version: `{decision.registered}`",
        f"- champion now: `{decision.champion}`",
    ]
    lines += [f"- {r}" for r in decision.reasons]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key="deployment-decision",
        description="Registry version and champion/challenger decision",
    )
    return decision


@task(name="push-data", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def push(root: str) -> None:
    """Push the run's data to the DVC remote."""
    push_data(Path(root), on_line=_log_line)


def _summary_markdown(result: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {s['stage']} | {'ran' if s['ran'] else 'up to date'} | {s['seconds']} |"
        for s in result["stages"]
    )
    gate = "\n".join(f"- {r}" for r in result.get("gate", []))
    return (
        f"# Training run `{result['experiment'] or '(not recorded)'}`\n\n"
        f"| stage | result | seconds |\n|---|---|---|\n{rows}\n\n"
        + (f"## Gate (passed, failed and skipped checks)\n\n{gate}\n\n" if gate else "")
        + f"Reproduce it: `dvc exp apply {result['experiment']}` then `dvc pull` and "
        "`dvc repro`.\n"
    )


@flow(name="training", task_runner=ThreadPoolTaskRunner(max_workers=1), log_prints=True)
def training(
    project_dir: str | None = None,
    record: bool = True,
    push_to_remote: bool = True,
    lock_timeout_s: float = 600.0,
    promote: bool = True,
    registry_dir: str | None = None,
    experiment: str | None = None,
) -> dict[str, Any]:
    """Run the DVC pipeline stage by stage, then record and push the run.

    Parameters
    ----------
    project_dir : str, optional
        Project root (default: the folder holding ``dvc.yaml`` above the working directory).
    record : bool
        Save the run as a DVC experiment named ``<flow-run-name>-<short id>``.
    push_to_remote : bool
        Push the run's data to the DVC remote.
    lock_timeout_s : float
        How long to wait for another pipeline run in this workspace before giving up.
    promote : bool
        Register a blessed model and promote it if it beats the champion (step 10).
    registry_dir : str, optional
        The model registry (default: ``promote.registry_dir`` under the project). Isolated
        runs pass the main checkout's registry, which the API serves from.
    experiment : str, optional
        Name of the DVC experiment (default: ``<flow-run-name>-<short id>``).

    Returns
    -------
    dict
        ``stages`` (what each did), ``experiment`` (name or None).
    """
    logger = get_run_logger()
    root = Path(project_dir).resolve() if project_dir else find_project_root()
    stages = load_stages(root / "dvc.yaml")
    missing = missing_params(root, stages)
    if missing:
        raise ValueError(
            "params.yaml lacks keys dvc.yaml lists, and DVC will not run without them: "
            + "; ".join(missing)
            + ". Add each (docs/reference/params.md gives its default; problem.type: binary "
            "for a yes/no outcome, positive_label: null for a regression problem)"
        )
    wrong_plots = plots_mismatch(root)
    if wrong_plots:
        raise ValueError(wrong_plots)
    logger.info("pipeline from dvc.yaml: %s", " -> ".join(s.name for s in stages))
    run_name = flow_run.get_name() or "training"
    run_id = flow_run.get_id() or "local"
    result: dict[str, Any] = {"stages": [], "experiment": None, "project_dir": str(root)}
    with workspace_lock(
        root,
        holder=f"flow run {run_name} ({run_id})",
        timeout_s=lock_timeout_s,
        on_wait=logger.warning,
    ):
        stale, ran = stale_stages(root), set()
        futures: dict[str, Any] = {}
        # a warm process pays the steps' imports once (flows/runtime/warm.py); not
        # started when dvc status says nothing is to run
        with warm_steps(root, tool_env()) if stale != set() else contextlib.nullcontext():
            for stage in stages:
                upstream = [futures[u] for u in stage.upstream if u in futures]
                fresh = (
                    stale is not None and stage.name not in stale and not ran & set(stage.upstream)
                )
                futures[stage.name] = stage_task(stage).submit(
                    stage, str(root), fresh, wait_for=upstream
                )
                result["stages"].append(futures[stage.name].result())
                if result["stages"][-1]["ran"]:
                    ran.add(stage.name)
        finish_data_docs(root / PATHS.data_docs_dir)  # the index over what the stages keep
        same = unchanged_since_last_run(root) if not ran else None
        if same is not None:
            # nothing ran and params.yaml and dvc.lock are those of the last recorded run:
            # record nothing new, push nothing, register nothing
            result.update(experiment=same["experiment"], unchanged=True)
            logger.info(
                "nothing changed since run %s: experiment %s already holds it; nothing recorded, "
                "pushed or registered",
                same["flow_run_name"],
                same["experiment"],
            )
            record = push_to_remote = promote = False
        if record:
            result["experiment"] = record_experiment(
                str(root), experiment or experiment_name(run_name, run_id)
            )
        if push_to_remote:
            push(str(root))
        if promote and (root / PATHS.metrics_json).exists():
            run_info = {
                "flow_run_id": str(run_id),
                "flow_run_name": run_name,
                "experiment": result["experiment"],
                "code_version": code_version(root),
            }
            result["promotion"] = register(str(root), run_info, registry_dir)
        if same is None and result["experiment"]:
            remember_run(root, result["experiment"], run_name)
    evaluation = root / PATHS.evaluation_json
    if evaluation.exists():  # what the gate judged and skipped, beside the stages
        result["gate"] = read_json(evaluation).get("gate_reasons", [])
    create_markdown_artifact(
        markdown=_summary_markdown(result),
        key="training-run",
        description="Stages run and the DVC experiment recorded",
    )
    return result


def _print_promotion(decision: Promotion | None) -> None:
    if not decision:
        return
    state = (
        "promoted to champion"
        if decision.promoted
        else "registered, not promoted"
        if decision.registered
        else "not registered"
    )
    champion = (
        f"champion is {decision.champion}"
        if decision.champion
        else "no champion yet (nothing is served until a model is blessed and promoted)"
    )
    print(f"  registry: {decision.registered or '-'} {state}; {champion}")
    for reason in decision.reasons:
        print(f"    {reason}")


def main(argv: list[str] | None = None) -> int:
    """Command line: run the training flow and print a short summary.

    When nothing would change, the module's first lines have already said so and exited,
    before Prefect's import; ``--flow-anyway`` skips that check.
    """
    telemetry_off()
    logging.getLogger("prefect").setLevel(logging.INFO)
    try:
        result = training()
    except (StageFailed, PipelineBusy, RuntimeError, ValueError) as exc:
        print(f"\ntraining flow FAILED: {exc}", file=sys.stderr)
        return 1
    print("\n=== training run summary ===")
    for s in result["stages"]:
        print(
            f"  {s['stage']:<14} {'ran' if s['ran'] else 'up to date':<11} {s['seconds']:>7.1f} s"
        )
    if result["experiment"]:
        print(f"  recorded as DVC experiment '{result['experiment']}' (dvc exp show)")
    print_model_summary(Path(result["project_dir"]))
    _print_promotion(result.get("promotion"))
    reports = sorted(
        p.relative_to(Path(result["project_dir"])).as_posix()
        for p in (Path(result["project_dir"]) / PATHS.reports_dir).glob("*.*")
        if p.suffix in (".md", ".html")
    )
    print("  reports: " + (", ".join(reports) or "none"))
    docs = Path(result["project_dir"]) / PATHS.data_docs_dir / "index.html"
    if docs.exists():
        print(f"  Great Expectations Data Docs: {docs.relative_to(Path(result['project_dir']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
