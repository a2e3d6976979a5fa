"""What the deployed flows share: the one concurrency limit of the DVC pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.runtime import deployment

from tasks.core.paths import find_project_root

# Every deployment that runs the DVC pipeline holds this Prefect global concurrency limit
# (one slot), so two such runs never race, wherever they were started from.
PIPELINE_LIMIT = "dvc-pipeline"
QUICK_TRY_S = 2.0


def ensure_pipeline_limit(limit: int = 1) -> dict[str, int]:
    """Create the pipeline's global concurrency limit on the Prefect server if missing.

    Returns the limit's ``limit`` and ``active_slots``.
    """
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(PIPELINE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=PIPELINE_LIMIT, limit=limit, active=True)
            )
            return {"limit": limit, "active_slots": 0}
        if not current.active or current.limit != limit:
            client.update_global_concurrency_limit(
                PIPELINE_LIMIT, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
            )
        return {"limit": limit, "active_slots": int(current.active_slots)}


@contextlib.contextmanager
def pipeline_slot(on_wait: Callable[[str], None], timeout_s: float | None = None) -> Iterator[None]:
    """Hold the pipeline's one slot; say so when another run has it and this one waits."""
    ensure_pipeline_limit()
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(
            concurrency(PIPELINE_LIMIT, occupy=1, timeout_seconds=QUICK_TRY_S, strict=True)
        )
    except TimeoutError:
        on_wait(
            f"another pipeline run holds the '{PIPELINE_LIMIT}' concurrency slot: queued until it "
            "finishes"
        )
        remaining = None if timeout_s is None else max(timeout_s - QUICK_TRY_S, 0.1)
        stack.enter_context(
            concurrency(PIPELINE_LIMIT, occupy=1, timeout_seconds=remaining, strict=True)
        )
    with stack:
        yield


def project_root(project_dir: str | None) -> Path:
    """The project a flow runs on: ``project_dir``, or the checkout above the working folder.

    A run of a deployment (started from the UI, a schedule or an event) works on the
    checkout that serves it: its parameters cannot point it at another folder.
    """
    served = find_project_root()
    if project_dir is None:
        return served
    chosen = Path(project_dir).resolve()
    if deployment.id and chosen != served:
        raise ValueError(
            f"project_dir '{project_dir}' is not the served checkout {served}: a deployment run "
            "works on the checkout that serves it"
        )
    return chosen
