"""No two project modules import each other, directly or through others (issue 41).

The import-linter contracts (``pyproject.toml``, run by ``make test``) keep the layers
pointing one way; a circle inside one layer would pass them, so this finds any circle
among the modules of ``tasks``, ``flows``, ``service``, ``devtools``, ``benchmarks`` and
``demo``, ``if TYPE_CHECKING:`` imports included.
"""

from __future__ import annotations

import grimp

PACKAGES = ("tasks", "flows", "service", "scoring", "devtools", "benchmarks", "demo")


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_among_the_project_modules():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert not circles(graph), circles(graph)


def test_a_circle_is_found():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert circles(graph) == [["p.a", "p.b", "p.c"]]
