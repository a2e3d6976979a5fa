"""``make replay``: put the prediction rows kept in ``failed/`` back into the prediction store.

A row the database refused (an outage, a locked file) is kept in
``registry/prediction_log/failed/<pid>.jsonl``; the API's writer replays those files by
itself after a write goes through again. This does the same by hand, for instance after the
database came back while no API ran. Idempotent: a row already in the store is skipped.
"""

from __future__ import annotations

import sys

from scoring.store import open_store
from tasks.core.config import load_params
from tasks.core.paths import PATHS, find_project_root
from tasks.core.serving.registry import registry_dir


def main(argv: list[str]) -> int:
    """Replay the dead letters of the project's registry and say what happened."""
    if argv:
        print("usage: python -m service.replay", file=sys.stderr)
        return 2
    root = find_project_root()
    store = open_store(registry_dir(root, load_params(root / PATHS.params)))
    try:
        done = store.replay_failed()
    finally:
        store.close()
    print(
        f"replayed {done['inserted']} prediction rows from {done['files']} dead-letter file(s) "
        f"({done['present']} were in the store already; {done['moved']} file(s) moved to "
        "failed/replayed/)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
