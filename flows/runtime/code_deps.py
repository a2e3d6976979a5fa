"""The project code each DVC stage runs: the import closure of its ``python -m`` module.

DVC decides what is stale from each stage's ``deps``; a module a stage imports but does not
list would leave results cached after its code changed. ``tests/code/test_dvc_deps.py`` checks
``dvc.yaml`` against this closure, and ``python -m flows.runtime.code_deps`` prints what
each stage is missing or lists for nothing.

Every import statement counts, those inside functions too. Package ``__init__.py`` files are
left out: they hold a docstring only (the test checks that too).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from flows.runtime.pipeline import load_stages
from tasks.core.paths import PATHS, find_project_root

CODE_ROOTS = ("tasks", "flows", "service", "scoring")
_MODULE_CMD = re.compile(r"\bpython3?\s+-m\s+([\w.]+)")


def module_file(module: str, root: Path) -> Path | None:
    """The project file that defines ``module`` (a module or a package), or None."""
    if module.split(".")[0] not in CODE_ROOTS:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement in ``path``, at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from package import module` imports a module too
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_closure(module: str, root: Path) -> set[str]:
    """Project files (relative POSIX paths) that running ``module`` may import.

    Parameters
    ----------
    module : str
        A dotted module name, such as ``tasks.clean``.
    root : Path
        The project root.

    Returns
    -------
    set of str
        The module's own file and every project module it imports, directly or not,
        without package ``__init__.py`` files.
    """
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = module_file(todo.pop(), root)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imported_modules(path))
    return {p.relative_to(root).as_posix() for p in seen if p.name != "__init__.py"}


def stage_code(cmd: str, root: Path) -> set[str]:
    """The project files a stage's command runs (empty if it runs no ``python -m``)."""
    out: set[str] = set()
    for module in _MODULE_CMD.findall(cmd):
        out |= import_closure(module, root)
    return out


def compare(root: Path) -> dict[str, dict[str, list[str]]]:
    """Per stage: code files it runs but does not list (``missing``), and listed code it never
    runs (``unused``)."""
    report = {}
    for stage in load_stages(root / PATHS.dvc_yaml):
        needed = stage_code(stage.cmd, root)
        listed = {d for d in stage.deps if d.endswith(".py")}
        report[stage.name] = {"missing": sorted(needed - listed), "unused": sorted(listed - needed)}
    return report


def main() -> int:
    """Print each stage's missing and unused code deps; exit 1 if there are any."""
    bad = 0
    for stage, diff in compare(find_project_root()).items():
        for kind in ("missing", "unused"):
            for path in diff[kind]:
                print(f"{stage}: {kind} {path}")
                bad += 1
    if not bad:
        print("every dvc.yaml stage lists exactly the project code it runs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
