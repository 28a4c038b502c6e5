"""The library's module-level imports form no cycle.

A cycle among module-level imports makes the import order matter: whichever module of the
cycle is imported first sees the others half-initialised, and a name defined below the import
is missing. The graph is built from the source's syntax trees (nothing is imported): an edge
``a -> b`` for every ``import b`` / ``from b import ...`` / ``from b import c`` (``b.c`` when it
is a module) in ``a``'s top-level statements, including those under top-level ``try`` and
``if`` (but not ``if TYPE_CHECKING:``, which never runs, nor ``if __name__ == "__main__":``,
which runs only when the module is the script, not when it is imported). Imports inside functions are
deliberately deferred and are not edges. A package depends on its ``__init__``'s imports, and
importing ``a.b.c`` first imports the packages ``a`` and ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gridlib"


def module_files() -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the library."""
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported."""
    found = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING", "__name__ == '__main__'"):
                found += _top_level_imports(node.body)
            found += _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                found += _top_level_imports(block)
        elif isinstance(node, ast.With):
            found += _top_level_imports(node.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the library it imports at module level}``."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in _top_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets.add(module)
            targets |= {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in files}
        deps = set()
        for target in targets:
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
        graph[name] = {d for d in deps if d in files and d not in own_packages}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets, each as ``[a, b, ..., a]``."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_graph_sees_the_library():
    graph = import_graph()
    assert len(graph) > 50
    assert "gridlib.filtergrid.cell" in graph["gridlib.filtergrid.alignment"]
    assert "gridlib.filtergrid.temporal" in graph["gridlib.filtergrid.experiments"]


def test_script_blocks_and_type_checking_are_not_imports():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nif __name__ == '__main__':\n    import c\n"
                     "try:\n    import d\nexcept ImportError:\n    import e\n")
    assert [ast.unparse(n) for n in _top_level_imports(tree.body)] == ["import a", "import d", "import e"]


def test_a_cycle_is_found():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_module_level_imports_form_no_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "module-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
