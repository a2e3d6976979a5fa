"""``make lineage ID=<request id>``: the chain behind one prediction, from the prediction store."""

from __future__ import annotations

import json
import sys

from scoring.store import PredictionStore, store_url
from service.app import lineage_of
from tasks.core.config import load_params
from tasks.core.paths import PATHS, find_project_root
from tasks.core.serving.registry import open_registry


def main(argv: list[str]) -> int:
    """Print the lineage of a request id as JSON."""
    if len(argv) != 1:
        print("usage: python -m service.lineage <request id>", file=sys.stderr)
        return 2
    root = find_project_root()
    registry = open_registry(root, load_params(root / PATHS.params))
    store = PredictionStore(store_url(registry.root))
    try:
        rows = store.get(argv[0])
        if not rows:
            print(f"no prediction with request id '{argv[0]}'", file=sys.stderr)
            return 1
        print(json.dumps(lineage_of(registry, rows), indent=2, default=str))
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
