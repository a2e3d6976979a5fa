"""The plain baseline: the same step functions, in order, in one process, with no orchestration.

No Prefect, no DVC (no stage hashing, no cache, no experiment, no push): each step's
entry point is called directly, then the model is registered and promoted as the flow's
last task does. Run it in a project folder: ``python -m benchmarks.plain``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devtools.project import run_in_process, steps
from tasks.core.env import telemetry_off

STEPS = steps()
"""The stages of dvc.yaml in order, each with the module its command runs."""


def main(argv: list[str]) -> int:
    """Run every step in the project at ``argv[0]`` (default: here), then register the model."""
    telemetry_off()
    root = Path(argv[0]).resolve() if argv else Path.cwd()
    decision = run_in_process(
        root,
        {
            "flow_run_id": "plain",
            "flow_run_name": "plain",
            "experiment": None,
            "code_version": "plain",
        },
    )
    if decision is None:
        return 1
    print(f"registered {decision.registered}, champion {decision.champion}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
