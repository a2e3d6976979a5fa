"""Every dvc.yaml stage lists exactly the project code it runs (its import closure)."""

from __future__ import annotations

import ast

from flows.runtime.code_deps import CODE_ROOTS, compare, import_closure
from tests.conftest import REPO


def test_every_stage_lists_exactly_the_project_modules_its_command_imports():
    report = compare(REPO)
    problems = [
        f"{stage}: {kind} {path}"
        for stage, diff in report.items()
        for kind in diff
        for path in diff[kind]
    ]
    assert not problems, (
        "dvc.yaml deps disagree with the stages' imports (python -m "
        "flows.runtime.code_deps lists them):\n" + "\n".join(problems)
    )


def test_the_closure_counts_imports_inside_functions(tmp_path):
    pkg = tmp_path / "tasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""doc"""\n')
    (pkg / "a.py").write_text("def f():\n    from tasks.b import g\n    return g()\n")
    (pkg / "b.py").write_text("import tasks.c\n\ndef g():\n    return 1\n")
    (pkg / "c.py").write_text("from tasks import d\n")
    (pkg / "d.py").write_text("")
    assert import_closure("tasks.a", tmp_path) == {
        "tasks/a.py",
        "tasks/b.py",
        "tasks/c.py",
        "tasks/d.py",
    }


def test_package_init_files_hold_only_a_docstring():
    # they are left out of the closure, so they must run no code
    for root in CODE_ROOTS:
        for init in (REPO / root).rglob("__init__.py"):
            body = ast.parse(init.read_text(encoding="utf-8")).body
            code = [
                n
                for n in body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            ]
            assert not code, f"{init.relative_to(REPO)} runs code; move it into a module"
