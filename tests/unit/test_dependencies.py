"""The package's import graph: one-way dependencies between its parts, and no cycles.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a dependency
hidden in a function is still a dependency. The parts are the package's subpackages and top-level
modules, except that the configuration's schema (``config.model`` and ``config.states``, pure data
that every part reads) is a part of its own: loading a configuration checks it against the rules and the source mappings
(``config.loader``, ``config.checks``), which themselves read the schema.
"""

from __future__ import annotations

import ast
from pathlib import Path

import retail_etl

PACKAGE = Path(retail_etl.__file__).parent

#: Parts that must not depend on the parts listed: config is pure data; the model, the rules and
#: the source readers know nothing of how runs are executed, notified or shown.
FORBIDDEN = {
    part: {"workflow", "notify", "pipeline", "cli"}
    for part in ("config", "config.model", "model", "quality", "sources")
} | {
    "notify": {"workflow", "pipeline", "cli"},
    "workflow": {"pipeline", "cli"},
    "jobs": {"pipeline", "workflow", "notify", "cli"},
    "engines": {"pipeline", "workflow", "notify", "cli", "jobs"},
    "lake": {"pipeline", "workflow", "notify", "cli", "jobs"},
}


SCHEMA = "config.model"
#: The modules of the schema part: the pydantic models and the pure rules they share with the workflow.
SCHEMA_MODULES = ("model", "states")


def _part(module: str) -> str | None:
    """``retail_etl.lake.state`` -> ``lake``; None outside the package."""
    names = module.split(".")
    if names[0] != "retail_etl" or len(names) < 2:
        return None
    return SCHEMA if names[1] == "config" and names[2:3] and names[2] in SCHEMA_MODULES else names[1]


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def _imports(path: Path, root: Path) -> set[str]:
    """The modules ``path`` imports (relative imports resolved)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def part_graph(root: Path = PACKAGE) -> dict[str, set[tuple[str, str]]]:
    """Part -> {(imported part, "importing module -> imported module")}."""
    parts = {p.stem for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    graph: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        here = _part(module)
        if here is None:
            continue
        graph.setdefault(here, set())
        for target in _imports(path, root):
            there = _part(target)
            if (there in parts or there == SCHEMA) and there != here:
                graph[here].add((there, f"{module} -> {target}"))
    return graph


def cycles(graph: dict[str, set[tuple[str, str]]]) -> list[list[str]]:
    """Every elementary cycle's parts, found by a depth-first search from each part."""
    edges = {part: sorted({t for t, _ in targets}) for part, targets in graph.items()}
    found: list[list[str]] = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in edges.get(node, []):
            if nxt == start:
                found.append([*path, start])
            elif nxt not in path and nxt > start:  # each cycle once, from its smallest part
                visit(start, nxt, [*path, nxt])

    for part in sorted(edges):
        visit(part, part, [part])
    return found


def test_no_part_imports_what_it_must_not() -> None:
    graph = part_graph()
    bad = sorted(
        why for part, targets in graph.items() for there, why in targets if there in FORBIDDEN.get(part, set())
    )
    assert bad == []


def test_the_configuration_schema_is_pure_data() -> None:
    assert {t for t, _ in part_graph()[SCHEMA]} <= {"errors"}


def test_no_import_cycle_between_parts() -> None:
    graph = part_graph()
    found = cycles(graph)
    edges = sorted(why for cycle in found for a, b in zip(cycle, cycle[1:]) for t, why in graph[a] if t == b)
    assert found == [], edges


def test_the_checks_see_an_edge_and_a_cycle(tmp_path: Path) -> None:
    """The walk finds imports at any depth, relative ones included, and reports a cycle."""
    root = tmp_path / "retail_etl"
    for part in ("config", "workflow"):
        (root / part).mkdir(parents=True)
        (root / part / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "config" / "loader.py").write_text("def f():\n    from ..workflow import definition\n")
    (root / "workflow" / "definition.py").write_text("from retail_etl.config.loader import f\n")
    graph = part_graph(root)
    assert {t for t, _ in graph["config"]} == {"workflow"}
    assert cycles(graph) == [["config", "workflow", "config"]]
