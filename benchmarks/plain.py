"""The plain baseline: the same step functions, in order, in one process, with no orchestration.

No Prefect, no DVC (no stage hashing, no cache, no experiment, no push): each step's
entry point is called directly, then the model is registered and promoted as the flow's
last task does. Run it in a project folder: ``python -m benchmarks.plain``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tasks import (
    choose_model,
    clean,
    collect,
    evaluate,
    feasibility,
    features,
    problem,
    split,
    train,
)
from tasks.core.config import load_params
from tasks.core.env import telemetry_off
from tasks.core.serving.registry import open_registry
from tasks.core.step import run_step
from tasks.promote import register_and_promote

STEPS = (
    ("collect", collect),
    ("problem", problem),
    ("feasibility", feasibility),
    ("clean", clean),
    ("features", features),
    ("split", split),
    ("choose", choose_model),
    ("train", train),
    ("evaluate", evaluate),
)
"""The order of dvc.yaml's stages (tests/code/test_bench.py checks it)."""


def main(argv: list[str]) -> int:
    """Run every step in the project at ``argv[0]`` (default: here), then register the model."""
    telemetry_off()
    root = Path(argv[0]).resolve() if argv else Path.cwd()
    os.chdir(root)
    for name, module in STEPS:
        if run_step(name, module.main) != 0:
            return 1
    params = load_params(root / "params.yaml")
    decision = register_and_promote(
        root,
        params,
        open_registry(root, params),
        {
            "flow_run_id": "plain",
            "flow_run_name": "plain",
            "experiment": None,
            "code_version": "plain",
        },
    )
    print(f"registered {decision['registered']}, champion {decision['champion']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
