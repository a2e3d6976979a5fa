"""The registry's command line (``make rollback``, ``make registry``).

::

    python -m tasks.core.serving.registry_cli show                # make models
    python -m tasks.core.serving.registry_cli rollback [--to v0002]  # make rollback [TO=v0002]
    python -m tasks.core.serving.registry_cli reindex             # make reindex

``reindex`` rebuilds ``registry/index.jsonl`` from the versions whose files match their card.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tasks.core.config import ProblemParams, load_params
from tasks.core.metrics import Metric, metric
from tasks.core.ml.objective import objective_for
from tasks.core.paths import PATHS, find_project_root
from tasks.core.serving.registry import ModelVersion, RegistryError, open_registry


def ranking_metric(card: dict[str, Any]) -> Metric:
    """The metric a version is shown by: its problem type's ranking metric (ROC-AUC for a
    card from before problem types, or one whose params no longer validate)."""
    try:
        problem = ProblemParams.model_validate((card.get("params") or {}).get("problem"))
    except ValueError:
        return metric("roc_auc")
    objective = objective_for(problem)
    return objective.metric(objective.FLOOR_METRIC)


def describe(version: ModelVersion | None) -> str:
    """One line about a version."""
    if version is None:
        return "none"
    m = version.card.get("metrics", {}).get("test", {})
    ranking = ranking_metric(version.card)
    return (
        f"{version.version} {version.card.get('model')} test {ranking.label} "
        f"{m.get(ranking.name, float('nan')):.4f} "
        f"(run {version.card.get('flow_run_name')}, experiment {version.card.get('experiment')})"
    )


def main(argv: list[str] | None = None) -> int:
    """``show`` the registry, ``rollback`` the champion, or ``reindex`` the registry."""
    parser = argparse.ArgumentParser(
        prog="python -m tasks.core.serving.registry_cli", description="model registry"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show", help="versions and aliases")
    back = sub.add_parser(
        "rollback", help="point the champion back at the previous champion or a version"
    )
    back.add_argument(
        "--to", default=None, help="version to roll back to (default: the previous champion)"
    )
    back.add_argument("--reason", default="manual rollback")
    sub.add_parser(
        "reindex",
        help="rebuild registry/index.jsonl from the versions whose model matches its card "
        "(only for a registry whose files you trust)",
    )
    args = parser.parse_args(argv)
    root = find_project_root()
    params = load_params(root / PATHS.params)
    registry = open_registry(root, params)
    try:
        if args.command == "rollback":
            before = registry.aliases().get("champion")
            target = registry.rollback(args.to, args.reason)
            print(f"champion: {before} -> {target}")
            return 0
        if args.command == "reindex":
            kept, left = registry.rebuild_index()
            print(f"indexed: {', '.join(kept) or 'none'}")
            if left:
                print(f"left out (model does not match its card): {', '.join(left)}")
            return 0
    except RegistryError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 1
    aliases = registry.aliases()
    for v in registry.versions():
        tags = [a for a, n in aliases.items() if n == v.version]
        print(f"  {describe(v)}{'  <- ' + ', '.join(tags) if tags else ''}")
    if not aliases:
        print("  no champion yet (run `make run`; a blessed model is registered and promoted)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
