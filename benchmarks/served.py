"""The trained project's champion and records, as the API benchmarks serve them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo.loop import records_of


def api_records(root: Path, n: int) -> list[dict[str, Any]]:
    """``n`` raw records of the project's snapshot, as clients send them (no label)."""
    from tasks.core.config import load_params
    from tasks.core.data.snapshots import current_snapshot

    params = load_params(root / "params.yaml")
    raw = current_snapshot(root / "data" / "01_raw").read().head(n)
    drop = [params.problem.target, *params.problem.post_outcome_columns]
    return records_of(raw.drop(columns=[c for c in drop if c in raw]))


def champion(root: Path) -> Any:
    """The project's params and its champion, loaded for scoring (``(params, LoadedModel)``)."""
    from scoring.scoring import LoadedModel
    from tasks.core.config import load_params
    from tasks.core.serving.registry import open_registry

    params = load_params(root / "params.yaml")
    registry = open_registry(root, params)
    return params, LoadedModel.load(registry, registry.champion())
