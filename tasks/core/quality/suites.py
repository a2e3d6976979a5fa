"""Where each data-quality suite lives."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.core.config import CleanParams, CollectParams
from tasks.core.paths import PATHS


def suite_path_for(clean: CleanParams, collect: CollectParams) -> str:
    """``clean.suite``, or ``expectations/<source name>.raw.json`` derived from the source."""
    if clean.suite:
        return clean.suite
    if collect.source == "simulator":
        stem = "simulator"
    elif collect.path:
        stem = (
            re.sub(r"[^a-z0-9]+", "-", Path(collect.path).stem.lower()).strip("-") or collect.source
        )
    else:
        stem = collect.source
    return f"{PATHS.expectations_dir}/{stem}.raw.json"
