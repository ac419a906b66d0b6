"""The import graph of the product, as the closing notes and docs/decisions.md quote it.

    python -m harness.import_graph                # the top level: each process, and the core's rooms
    python -m harness.import_graph --inside api   # one package's children

Prints the rooms with their lines, the arrows between them, any circle (a strongly connected set of
rooms, and of single files), and the floors: a room stands one floor above the highest room it imports.
Built on grimp, the graph library under import-linter, so it sees what `lint-imports` sees.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import grimp

ROOTS = ("cli", "api", "streams", "projections", "byoc", "services", "harness", "bench")
CORE = "services"  # the shared core: at the top level its folders and loose files are rooms


def _present(roots: tuple[str, ...]) -> list[str]:
    return [r for r in roots if Path(r, "__init__.py").exists()]


def _room(module: str, inside: str | None) -> str | None:
    parts = module.split(".")
    if inside is None:
        return ".".join(parts[:2]) if parts[0] == CORE and len(parts) > 1 else parts[0]
    if module != inside and not module.startswith(inside + "."):
        return None
    return ".".join(parts[: len(inside.split(".")) + 1])


def _lines(module: str) -> int:
    path = Path(*module.split("."))
    files = [path.with_suffix(".py")] if path.with_suffix(".py").exists() else path.rglob("*.py")
    return sum(len(f.read_text().splitlines()) for f in files)


def _sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def _floors(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    floor: dict[str, int] = {}

    def height(v: str, seen: frozenset[str]) -> int:
        if v not in floor:
            below = [height(w, seen | {v}) for w in edges.get(v, ()) if w not in seen and w != v]
            floor[v] = 1 + max(below, default=0)
        return floor[v]

    for v in nodes:
        height(v, frozenset())
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inside", help="a package whose children are the rooms, e.g. api")
    inside = parser.parse_args().inside
    roots = _present(ROOTS)
    graph = grimp.build_graph(*roots)
    modules = sorted(graph.modules)
    rooms = sorted({r for m in modules if (r := _room(m, inside)) and r not in (CORE, inside)})
    edges: dict[str, set[str]] = defaultdict(set)
    file_edges: dict[str, set[str]] = defaultdict(set)
    for m in modules:
        for target in graph.find_modules_directly_imported_by(m):
            file_edges[m].add(target)
            a, b = _room(m, inside), _room(target, inside)
            if a != b and a in rooms and b in rooms:
                edges[a].add(b)
    floors = _floors(rooms, edges)
    arrows = sum(len(v) for v in edges.values())
    circles = _sccs(rooms, edges)
    file_circles = [c for c in _sccs(modules, file_edges) if inside is None or _room(c[0], inside)]
    print(f"{len(rooms)} rooms, {arrows} arrows, {max(floors.values())} floors, "
          f"{len(circles)} circles between rooms, {len(file_circles)} between files")
    for f in sorted(set(floors.values()), reverse=True):
        names = ", ".join(f"{r} ({_lines(r)})" for r in rooms if floors[r] == f)
        print(f"floor {f}: {names}")
    print("arrows:")
    for a in sorted(edges):
        print(f"  {a} -> {', '.join(sorted(edges[a]))}")
    for c in circles + file_circles:
        print("circle: " + " <-> ".join(c))


if __name__ == "__main__":
    main()
