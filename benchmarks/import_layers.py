"""The package's layering, read from its imports: units, floors, circles and imports that run back up.

A unit is a top-level module or a sub-package of srgan_fast (the compiled ``_C`` is one too). Unit A sits on a
higher floor than B when A imports B, directly or through others; floors are counted along the longest such
chain, so a pipeline of 6 steps has 6 floors. Module-level imports and imports inside functions both count:
an import moved into a function to dodge a circle is still a dependency.

- circle: a set of two or more units that reach each other (a strongly connected component);
- import running back up: one import statement from a unit to another on the same or a higher floor, i.e. an
  edge inside a circle, or an import of the package root (``import srgan_fast``, ``from srgan_fast import
  _C``), which runs ``srgan_fast/__init__`` and with it the top of the pipeline.

    python benchmarks/import_layers.py [--json]
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

PACKAGE = "srgan_fast"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """srgan_fast.tiler.plan -> 'tiler'; srgan_fast -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(imported srgan_fast module, line) for every import statement in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == PACKAGE:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in modules or alias.name == "_C" else node.module, node.lineno))
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    sys.setrecursionlimit(10_000)
    for node in list(graph):
        if node not in index:
            visit(node)
    return components


def layout() -> dict:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(path) for path in files} | {f"{PACKAGE}._C"}
    edges: list[tuple[str, str, str]] = []  # (importing module:line, from unit, to unit)
    for path in files:
        here = module_name(path)
        for target, line in imports_of(path, modules):
            if unit_of(target) != unit_of(here) or target == PACKAGE:
                edges.append((f"{here}:{line}", unit_of(here), unit_of(target)))
    units = {unit_of(m) for m in modules}
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for _, source, target in edges:
        if target != "__init__":  # the root is the public face; importing it is counted as running back up
            graph[source].add(target)
    components = strongly_connected(graph)
    component_of = {unit: i for i, comp in enumerate(components) for unit in comp}
    floor: dict[int, int] = {}
    for i, comp in enumerate(components):  # Tarjan yields components in reverse topological order
        below = [floor[component_of[t]] for u in comp for t in graph[u] if component_of[t] != i]
        floor[i] = 1 + max(below, default=0)
    floors = {unit: floor[component_of[unit]] for unit in units}
    back_up = [where for where, source, target in edges
               if target == "__init__" and source != "__init__"
               or target != "__init__" and component_of[source] == component_of[target]]
    top_modules = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    return {"top_level_modules": top_modules, "packages": packages, "floors": max(floors.values()),
            "floor_of": dict(sorted(floors.items(), key=lambda kv: (kv[1], kv[0]))),
            "circles": [sorted(c) for c in components if len(c) > 1], "imports_back_up": back_up}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    report = layout()
    if parser.parse_args().json:
        print(json.dumps(report, indent=1))
        return
    print(f"top-level modules ({len(report['top_level_modules'])}): {', '.join(report['top_level_modules'])}")
    print(f"packages ({len(report['packages'])}): {', '.join(report['packages'])}")
    print(f"floors: {report['floors']}")
    for unit, level in report["floor_of"].items():
        print(f"  {level:2d}  {unit}")
    print(f"circles: {len(report['circles'])}" + "".join(f"\n  {' <-> '.join(c)}" for c in report["circles"]))
    print(f"imports running back up: {len(report['imports_back_up'])}"
          + "".join(f"\n  {where}" for where in report["imports_back_up"]))


if __name__ == "__main__":
    main()
