"""The evaluate stage's ``dvc plots`` follow ``problem.type``.

DVC needs every plot a stage declares to be written, and a binary model's ROC curve means
nothing for a regression: each problem type writes its own plot files
(:data:`tasks.core.ml.report.PLOT_FILES`), and ``dvc.yaml`` declares those of the type in
``params.yaml``. ``make plots`` (``python -m flows.runtime.plots``) rewrites that list after
a change of ``problem.type``, keeping every other line and comment of ``dvc.yaml``; the
training flow refuses to start while the two disagree, naming the command.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import yaml

from tasks.core.config import load_params
from tasks.core.io import write_text
from tasks.core.ml.report import PLOT_FILES
from tasks.core.paths import PATHS, find_project_root

STAGE = "evaluate"


def declared(dvc_yaml: Path) -> list[Any]:
    """The plots the evaluate stage of ``dvc_yaml`` declares."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    return list(stages.get(STAGE, {}).get("plots", []))


def mismatch(root: Path) -> str | None:
    """Why ``dvc.yaml``'s evaluate plots are not those of ``params.yaml``'s problem type
    (None when they are)."""
    kind = load_params(root / PATHS.params).problem.type
    if declared(root / PATHS.dvc_yaml) == PLOT_FILES[kind]:
        return None
    return (
        f"dvc.yaml's evaluate stage declares the plots of another problem type than "
        f"problem.type '{kind}' (DVC would wait for files a {kind} evaluation does not "
        "write): run `make plots` to declare the right ones, and commit dvc.yaml"
    )


def write(root: Path) -> bool:
    """Declare the plots of ``params.yaml``'s problem type in ``dvc.yaml``; True if changed."""
    from ruamel.yaml import YAML

    kind = load_params(root / PATHS.params).problem.type
    path = root / PATHS.dvc_yaml
    if declared(path) == PLOT_FILES[kind]:
        return False
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    data = rt.load(path.read_text(encoding="utf-8"))
    data["stages"][STAGE]["plots"] = [dict(p) for p in PLOT_FILES[kind]]
    out = io.StringIO()
    rt.dump(data, out)
    write_text(path, out.getvalue())
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.runtime.plots [--check]``."""
    root = find_project_root()
    if "--check" in (argv or []):
        problem = mismatch(root)
        print(problem or "dvc.yaml declares the plots of problem.type")
        return 1 if problem else 0
    kind = load_params(root / PATHS.params).problem.type
    changed = write(root)
    print(
        f"dvc.yaml now declares the {kind} plots: commit it"
        if changed
        else f"dvc.yaml declares the {kind} plots already"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
