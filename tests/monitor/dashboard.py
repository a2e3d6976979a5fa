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


def drawn_in_chromium(workspace: Path, log: Path) -> dict[str, tuple[int, int]]:
    """{panel title: (legend entries, points)} as headless Chromium shows the dashboard of
    ``evidently ui`` (``make monitor-ui``) started natively on ``workspace``."""
    import time

    from devtools.services import chromium, start_evidently_ui, stop, wait_for

    ws = Workspace(str(workspace))
    project = ws.search_project(EVIDENTLY_PROJECT)[0]
    titles = [p.title for p in project.dashboard.model().panels]
    ui, url = start_evidently_ui(workspace, log)
    browser = None
    try:
        browser = chromium("--window-size=1600,1400")
        browser.get(f"{url}/projects/{project.id}")

        def panel(title: str):  # the card whose heading is the panel's title
            found = browser.find_elements(
                "xpath",
                f"//h5[normalize-space(text())='{title}']/ancestor::div"
                "[contains(@class, 'MuiCard-root')][1]",
            )
            return found[0] if found else None

        def counts() -> dict[str, tuple[int, int]] | None:
            out = {}
            for title in titles:
                block = panel(title)
                if block is None:
                    return None
                legend = block.find_elements(
                    "xpath", ".//*[contains(@class, 'MuiChartsLegend-series')]"
                )
                marks = block.find_elements(
                    "xpath", ".//*[contains(@class, 'MuiMarkElement-root')]"
                )
                if not marks:
                    return None
                out[title] = (len(legend), len(marks))
            return out

        drawn = wait_for(counts, 60, "the dashboard's charts", every_s=1)
        time.sleep(1)  # let late points arrive, then count again
        return counts() or drawn
    finally:
        if browser is not None:
            browser.quit()
        stop(ui)
