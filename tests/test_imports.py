"""The import graph of the packages: no cycles, and the layers import downwards only.

Every import counts, including those deferred into functions and those under
``TYPE_CHECKING``: a deferred import hides a cycle from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag", "ingest", "serve", "eval")

#: Cycles being removed elsewhere, each with where: delete the entry when that branch merges.
KNOWN_CYCLES: set[frozenset[str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports (``from a import b`` yields ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target in imported(name, path):
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_deferred_and_type_only_imports() -> None:
    graph = import_graph()
    assert "rag.store" in graph["rag.pipeline"]  # deferred into build_pipeline
    assert "rag.embed" in graph["rag.retrieve"]  # under TYPE_CHECKING
    assert "rag.generate.base" in graph["rag.generate"]  # a package importing its own module
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    described = [
        " -> ".join(f"{m} imports {sorted(graph[m] & c)}" for m in sorted(c)) for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


def test_rag_imports_none_of_the_layers_above_it() -> None:
    """DESIGN.md: rag/ is the ground; only the `rag` console script wires the others in."""
    upward = {
        (name, target)
        for name, targets in import_graph().items()
        if name.split(".")[0] == "rag" and name != "rag.cli"
        for target in targets
        if target.split(".")[0] in ("ingest", "serve", "eval")
    }
    assert not upward
