"""Serve the deployments to a Prefect server: ``make deploy`` (needs ``make server`` running).

- ``retrain/training``: the whole training flow in an isolated worktree; parameters
  (reason, params overrides, revision) editable in the UI; a cron schedule from
  ``params.yaml`` (``retrain.cron``, off until ``retrain.schedule_active`` or
  the UI's toggle turns it on).
- ``batch_scoring/batch-scoring``: score a file under ``data/`` with the champion; the output
  goes to ``runs/predictions/``.
- ``monitoring/scheduled``: drift, live performance and input quality, on ``monitor.cron``.
  Its retraining request (event ``churn.retrain.requested``) triggers ``retrain/training``
  with the alert's reason and the collect window as parameters; with
  ``CHURN_ALERT_WEBHOOK_URL`` set, an automation posts each alert
  (``churn.monitoring.alert``) to that URL.

This process stays in the foreground and runs the flows the server schedules for these
deployments; while it is not running, runs started in the UI wait in the state "Late".

``--pool NAME`` (``make deploy POOL=churn``) instead puts the same deployments on the
Prefect work pool NAME (type process, created if missing) and exits: any number of
``prefect worker start --pool NAME`` processes (``make worker``), on this machine or others,
then run them. A worker runs each flow in its own project checkout, named by the
environment variable ``CHURN_PROJECT_DIR`` on the worker's machine (the pull step below),
so the code and the registry a run uses are that machine's.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.runner.storage import LocalStorage
from prefect.schedules import Cron

from flows.batch_scoring import batch_scoring
from flows.common import PIPELINE_LIMIT, ensure_pipeline_limit
from flows.monitoring import ALERT_EVENT, RETRAIN_EVENT, monitoring
from flows.retrain import retrain
from tasks.core.config import Params, load_params
from tasks.core.env import telemetry_off
from tasks.core.paths import PATHS, find_project_root

TAGS = ["churn"]
WEBHOOK_BLOCK = "churn-alert-webhook"
WEBHOOK_AUTOMATION = "churn alert to webhook"
PROJECT_DIR_ENV = "CHURN_PROJECT_DIR"
"""On a worker's machine: the project checkout its flow runs work in (``make worker`` sets it)."""


class WorkerCheckout(LocalStorage):
    """Code storage of the work-pool deployments: the checkout on the worker's own machine.

    The pull step is resolved by the worker's flow-run process, from its environment
    (``{{ $CHURN_PROJECT_DIR }}``), so one deployment serves workers whose checkouts lie
    in different folders.
    """

    def __init__(self) -> None:
        super().__init__(".")

    def to_pull_step(self) -> dict[str, Any]:
        """``set_working_directory`` to the worker's checkout."""
        return {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "{{ $" + PROJECT_DIR_ENV + " }}"
            }
        }


def deployments(params: Params) -> list[RunnerDeployment]:
    """The project's deployments, as ``serve`` takes them."""
    d = params.retrain
    schedules = [Cron(d.cron, timezone=d.timezone, active=d.schedule_active)] if d.cron else []
    return [
        retrain.to_deployment(
            name="training",
            description="Train in an isolated worktree; register the model, promote it if it "
            "beats the champion.",
            parameters={"reason": "manual"},
            schedules=schedules,
            tags=[*TAGS, PIPELINE_LIMIT],
            # one run of this deployment at a time (others wait, "AwaitingConcurrencySlot");
            # the flow also holds the pipeline slot shared with every deployment that runs DVC
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            # the monitoring flow asks for retraining (once the labels of the alerting period
            # have arrived) with the collect window to use
            triggers=[
                DeploymentEventTrigger(
                    name="retrain on a monitoring request",
                    expect={RETRAIN_EVENT},
                    parameters={
                        "reason": "monitoring alert: {{ event.payload.reason }}",
                        "params": "{{ event.payload.params }}",
                    },
                )
            ],
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        batch_scoring.to_deployment(
            name="batch-scoring",
            description="Score a CSV or Parquet file under data/ with the champion model.",
            parameters={"output_dir": f"{PATHS.runs_dir}/predictions"},
            tags=TAGS,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        monitoring.to_deployment(
            name="scheduled",
            description="Drift, live performance and input quality of the champion; alerts start "
            "retraining.",
            schedules=[Cron(params.monitor.cron, timezone=d.timezone)],
            tags=TAGS,
            concurrency_limit=1,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def alert_webhook(url: str) -> str:
    """Create or update the automation that posts every monitoring alert to ``url``."""
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture

    block_id = Webhook(method="POST", url=url, allow_private_urls=True).save(
        WEBHOOK_BLOCK, overwrite=True
    )
    payload = (
        '{"event": "{{ event.event }}", "model_version": "{{ event.payload.model_version }}", '
        '"reason": "{{ event.payload.reason }}", "window_end": "{{ event.payload.window_end }}"}'
    )
    automation = Automation(
        name=WEBHOOK_AUTOMATION,
        description="Post each churn monitoring alert to CHURN_ALERT_WEBHOOK_URL",
        trigger=EventTrigger(expect={ALERT_EVENT}, posture=Posture.Reactive, threshold=1),
        actions=[CallWebhook(block_document_id=block_id, payload=payload)],
    )
    try:
        existing = Automation.read(name=WEBHOOK_AUTOMATION)
    except ValueError:  # not found
        existing = None
    if existing is not None:
        existing.delete()
    automation.create()
    return WEBHOOK_AUTOMATION


def server_is_up(api_url: str) -> bool:
    """True when the Prefect API at ``api_url`` answers its health check."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=3) as resp:  # noqa: S310 - local URL
            return resp.status == 200
    except OSError:
        return False


def to_pool(params: Params, pool: str) -> list[str]:
    """Put the deployments on the process work pool ``pool`` (created if missing).

    Returns the deployments' names.
    """
    from prefect import deploy
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        except ObjectAlreadyExists:
            found = client.read_work_pool(pool)
            if found.type != "process":
                raise SystemExit(
                    f"work pool '{pool}' exists with type '{found.type}': the deployments need a "
                    "process pool; choose another name (make deploy POOL=<name>)"
                ) from None
    made = deployments(params)
    for d in made:
        d.storage = WorkerCheckout()
    deploy(*made, work_pool_name=pool, build=False, push=False, ignore_warnings=True)
    return [f"{d.flow_name}/{d.name}" for d in made]


def main(argv: list[str] | None = None) -> int:
    """Check the server, create the pipeline's concurrency limit, serve the deployments
    (or, with ``--pool NAME``, put them on that work pool and exit)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description=__doc__)
    parser.add_argument(
        "--pool",
        metavar="NAME",
        help="put the deployments on this process work pool (run by `make worker`) and exit",
    )
    args = parser.parse_args(argv)
    telemetry_off()
    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url or not server_is_up(api_url):
        print(
            f"no Prefect server answers at {api_url or '(PREFECT_API_URL is not set)'}: start one "
            "with "
            "`make server` in another terminal, then run `make deploy` again",
            file=sys.stderr,
        )
        return 1
    root = find_project_root()
    os.chdir(root)  # the served flows find the project from the working directory
    params = load_params(root / PATHS.params)
    limit: dict[str, Any] = ensure_pipeline_limit()
    print(
        f"global concurrency limit '{PIPELINE_LIMIT}': {limit['limit']} slot(s), "
        f"{limit['active_slots']} in use"
    )
    webhook = os.environ.get("CHURN_ALERT_WEBHOOK_URL")
    if webhook:
        print(f"automation '{alert_webhook(webhook)}': monitoring alerts are posted to the webhook")
    ui = api_url.rsplit("/api", 1)[0]
    if args.pool:
        names = to_pool(params, args.pool)
        print(
            f"deployments on work pool '{args.pool}': {', '.join(names)}. Their runs wait in "
            f"'Scheduled' until a worker takes them: `make worker POOL={args.pool}` on a machine "
            f"with a checkout of this project; watch them at {ui}/work-pools/work-pool/{args.pool}"
        )
        return 0
    print(f"serving the deployments; open {ui}/deployments to run them (Ctrl-C stops serving)")
    serve(*deployments(params))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
