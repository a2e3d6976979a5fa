"""Paths are defined once: no data, report or registry path spelled outside the paths module."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

FOLDERS = re.compile(r"^(data|reports|models|registry|monitoring)/")
FILES = {"aliases.json", "index.jsonl", "predictions.db", "metrics.json", "model_card.md"}
ALLOWED = {"tasks/core/paths.py"}


def literals(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def test_no_path_literal_outside_the_paths_module():
    found = []
    for root in ("tasks", "flows", "service", "scoring"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel in ALLOWED:
                continue
            for line, value in literals(path):
                if FOLDERS.match(value) or value in FILES:
                    found.append(f"{rel}:{line}: {value!r}")
    assert not found, "name these in tasks/core/paths.py:\n" + "\n".join(found)
