"""No import cycles in any of Fairway's packages: every fairway_* package's import graph (grimp,
type-checking imports included) has no strongly connected component of more than one module.
A failure names one shortest cycle of each component."""

import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def fairway_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["root_packages"]


def components(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def cycle_through(graph: grimp.ImportGraph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module."""
    start = component[0]
    chains = [graph.find_shortest_chain(importer=imported, imported=start)
              for imported in graph.find_modules_directly_imported_by(start)
              if imported in component]
    chain = min((c for c in chains if c), key=len)
    return [start, *chain]


def find_cycles(*packages: str) -> list[list[str]]:
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    return [cycle_through(graph, c) for c in components(graph)]


def test_no_package_has_an_import_cycle():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    cycles = find_cycles(*fairway_packages())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_cycle_is_found_and_named(tmp_path, monkeypatch):
    package = tmp_path / "cycle_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cycle_example import b\n")
    (package / "b.py").write_text("from cycle_example import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_cycles("cycle_example") == [
        ["cycle_example.a", "cycle_example.b", "cycle_example.a"]]
