"""No import circles among the modules of ``mirror``: every import statement counts, wherever it sits.

A function-level ``import`` (the usual way to hide a circle) and an ``if TYPE_CHECKING:`` import are
both edges here, so a circle cannot be hidden by moving an import into a function. Importing a
submodule runs its package's ``__init__`` first; that implicit edge is not counted (it is how every
package works), only the imports a module writes itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mirror

ROOT = Path(mirror.__file__).resolve().parent

# Circles known today outside mirror/detectors/, left to the refactoring that owns them (issue 22).
# Each entry is the sorted set of modules of one strongly connected component. Keep it empty if you can.
KNOWN_CYCLES: list[frozenset[str]] = []


def _module_names() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is named by its ``__init__``)."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = ["mirror", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The ``mirror`` modules that ``name`` imports, at any depth of its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
        else:
            continue
        for target in targets:
            module = nearest(target) if target.startswith("mirror") else None
            if module is not None and module != name:
                found.add(module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    # mirror/cli/verbs/sync.py imports the engine inside a function; the walk must still see it.
    assert "mirror.engine.sync" in graph["mirror.cli.verbs.sync"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_circles_in_mirror() -> None:
    cycles = _cycles(import_graph())
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"import circles among mirror modules: {new}"
