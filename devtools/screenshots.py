"""The docs' screenshots, taken from a real run in headless Chromium, so they can be refreshed.

    python -m devtools.screenshots [--demo .demo/project]

It copies the project (small profile) into a temporary folder, starts a Prefect server,
runs the training flow there and captures:

- ``docs/img/prefect-run.png``: the flow run's page in the Prefect UI (the task graph);
- ``docs/img/data-docs.png``: the Data Docs page of that run's raw-data validation;
- ``docs/img/evaluation.png``: the run's evaluation figure (the PNG evaluate writes);
- ``docs/img/evidently-dashboard.png``: the Evidently dashboard of the ``make demo`` project
  given by ``--demo`` (default ``.demo/project``), served by ``evidently ui``; skipped, with a
  note, when there is none (run ``make demo`` first).

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"
WIDTH, HEIGHT = 1400, 900


def log(message: str) -> None:
    print(f"screenshots | {message}", flush=True)


def capture(browser: Any, url: str, path: Path, ready: Any, settle_s: float = 2.0) -> None:
    """Open ``url``, wait until ``ready(browser)`` is true, then save the window as PNG."""
    from devtools.services import wait_for

    browser.get(url)
    wait_for(lambda: ready(browser), 90, f"the page {url}", every_s=1)
    time.sleep(settle_s)  # animations and late requests
    tmp = path.with_name(f".tmp-{path.name}")
    browser.save_screenshot(str(tmp))
    tmp.replace(path)
    log(f"wrote {path.relative_to(REPO)}")


def has(css: str) -> Any:
    def check(browser: Any) -> bool:
        return bool(browser.find_elements("css selector", css))

    return check


def latest_flow_run(server: Any, name: str) -> dict[str, Any]:
    """The newest run of the flow called ``name``."""
    reply = server.post(
        "/flow_runs/filter",
        {"flows": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    reply.raise_for_status()
    runs = reply.json()
    if not runs:
        raise RuntimeError(f"no run of the flow {name!r} on the server")
    return runs[0]


def training_run(work: Path, browser: Any) -> Path:
    """Train a small project under a Prefect server; capture its run page and Data Docs."""
    from devtools.project import SMALL, make_project
    from devtools.services import start_server, stop

    project = make_project(work / "project", profile=SMALL)
    server = start_server(work / "prefect")
    try:
        log(f"training flow on {project} (Prefect UI {server.ui_url})")
        done = subprocess.run(
            [sys.executable, "-m", "flows.training"],
            cwd=project,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            tail = done.stdout[-3000:] + done.stderr[-3000:]
            raise RuntimeError(f"the training flow failed:\n{tail}")
        run = latest_flow_run(server, "training")
        capture(
            browser,
            f"{server.ui_url}/runs/flow-run/{run['id']}",
            OUT / "prefect-run.png",
            has("canvas"),
            settle_s=4,
        )
    finally:
        stop(server.proc)
    browser.get((project / "reports" / "data_docs" / "index.html").as_uri())
    link = browser.find_element(
        "xpath", "//tr[td[normalize-space(text())='Raw data suite']]//a[@href]"
    )
    browser.set_window_size(WIDTH, 1100)
    capture(browser, link.get_attribute("href"), OUT / "data-docs.png", has("table"))
    browser.set_window_size(WIDTH, HEIGHT)
    figure = project / "reports" / "figures" / "evaluation.png"
    shutil.copy(figure, OUT / "evaluation.png")
    log(f"wrote {(OUT / 'evaluation.png').relative_to(REPO)} (from the run's {figure.name})")
    return project


def dashboard(demo: Path, work: Path, browser: Any) -> None:
    """The Evidently dashboard of a ``make demo`` project, as ``make monitor-ui`` shows it."""
    from evidently.ui.workspace import Workspace

    from devtools.services import start_evidently_ui, stop
    from flows.monitoring import EVIDENTLY_PROJECT

    workspace = demo / "monitoring" / "evidently"
    if not workspace.exists():
        log(f"no Evidently workspace in {workspace}: run make demo first; dashboard skipped")
        return
    found = Workspace(str(workspace)).search_project(EVIDENTLY_PROJECT)
    if not found:
        log(f"no {EVIDENTLY_PROJECT!r} project in {workspace}; dashboard skipped")
        return
    ui, url = start_evidently_ui(workspace, work / "evidently-ui.log")
    try:
        browser.set_window_size(WIDTH, 1900)
        capture(
            browser,
            f"{url}/projects/{found[0].id}",
            OUT / "evidently-dashboard.png",
            has(".MuiMarkElement-root"),
            settle_s=4,
        )
        browser.set_window_size(WIDTH, HEIGHT)
    finally:
        stop(ui)


def main(argv: list[str]) -> int:
    from devtools.services import CHROMIUM, chromium

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=REPO / ".demo" / "project")
    parser.add_argument("--skip-training", action="store_true", help="only the dashboard")
    args = parser.parse_args(argv)
    if not all(Path(p).exists() for p in CHROMIUM):
        print(
            "screenshots need Debian's chromium and chromium-driver: "
            "apt-get install chromium chromium-driver",
            file=sys.stderr,
        )
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    browser = chromium(f"--window-size={WIDTH},{HEIGHT}")
    try:
        with tempfile.TemporaryDirectory(prefix="churn-screens-") as tmp:
            work = Path(tmp)
            if not args.skip_training:
                training_run(work, browser)
            dashboard(args.demo, work, browser)
    finally:
        browser.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
