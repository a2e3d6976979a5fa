"""Where each data-quality suite lives."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tasks.core.config import CleanParams, CollectParams
from tasks.core.paths import PATHS


def suite_path_for(clean: CleanParams, collect: CollectParams) -> str:
    """``clean.suite``, or ``expectations/<source name>.raw.json`` derived from the source.

    A file's name, ``simulator``, or for SQL ``sql-<table>-<hash of the query>``: two
    queries never share a suite.
    """
    if clean.suite:
        return clean.suite
    if collect.source == "simulator":
        stem = "simulator"
    elif collect.source == "sql":
        # one suite per query: the first table it reads, and a hash of the query's words
        words = " ".join(collect.sql.query.lower().split())
        table = re.search(r"\bfrom\s+([\w.\"]+)", words)
        name = re.sub(r"[^a-z0-9]+", "-", table.group(1) if table else "").strip("-")
        stem = f"sql-{name + '-' if name else ''}{hashlib.sha256(words.encode()).hexdigest()[:8]}"
    elif collect.path:
        stem = (
            re.sub(r"[^a-z0-9]+", "-", Path(collect.path).stem.lower()).strip("-") or collect.source
        )
    else:
        stem = collect.source
    return f"{PATHS.expectations_dir}/{stem}.raw.json"
