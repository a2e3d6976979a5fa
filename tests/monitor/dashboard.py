"""What the Evidently dashboard draws: each panel's series and points, read through the
Evidently UI's own data service (the endpoint its charts load from)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from evidently.ui.service.base import SeriesFilter
from evidently.ui.service.storage.common import NoopAuthManager
from evidently.ui.service.storage.local import create_local_project_manager
from evidently.ui.workspace import Workspace

from flows.monitoring import EVIDENTLY_PROJECT


def panel_series(workspace: Path) -> dict[str, list[int]]:
    """{panel title: points of each series it draws} (one entry per legend entry)."""
    ws = Workspace(str(workspace))
    project = ws.search_project(EVIDENTLY_PROJECT)[0]
    manager = create_local_project_manager(str(workspace), False, NoopAuthManager())

    async def points() -> dict[str, list[int]]:
        out = {}
        for panel in project.dashboard.model().panels:
            filters = [
                SeriesFilter(
                    tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels
                )
                for v in panel.values
            ]
            reply = await manager.get_data_series(None, project.id, filters, None, None)
            out[panel.title] = [sum(v is not None for v in s.values) for s in reply.series]
        return out

    return asyncio.run(points())
