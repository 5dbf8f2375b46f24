"""The library's imports follow the data: text -> chunks -> tokens -> token states -> chunk vectors
-> store -> evaluation, with no cycle, and no module reaches into another module's private names.

The scan reads every module of ``lc_utils`` with ``ast``: imports at module level and inside
functions alike (a lazy import is still a dependency), relative and absolute. The package's
``__init__`` is left out: it only names the public API and loads it on first use.

One inversion is deliberate and not an import: the semantic chunker needs embeddings (``late``),
which need ``chunking``, so ``lc_utils.semantic`` registers its strategy in
``chunking.STRATEGIES``, and ``chunk_text`` loads that module by name when "semantic" is asked for.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lc_utils"


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, None))
                else:
                    found.append((target, alias.name))
    return [(m, n) for m, n in found if m == "lc_utils" or m.startswith("lc_utils.")]


def graph() -> dict[str, set[str]]:
    edges = {}
    for module in MODULES:
        if module == "lc_utils":
            continue
        targets = {m for m, _ in imports(module) if m in MODULES and m != "lc_utils"}
        # A package's __init__ re-exports its own modules; importing it is importing them.
        edges[module] = {t for t in targets if t != module and not module.startswith(t + ".")}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_scan_sees_imports():
    edges = graph()
    assert "lc_utils.tokens" in edges["lc_utils.chunking"]
    assert "lc_utils.chunking" in edges["lc_utils.late"]


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_another_modules_private_names():
    private = []
    for module in MODULES:
        for target, name in imports(module):
            if name and name.startswith("_") and target != module:
                private.append(f"{module} imports {name} from {target}")
        # Attribute access such as ``late._pass_cost`` on an imported module counts too.
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) for alias in node.names
                    if f"{resolve(module, MODULES[module].name == '__init__.py', node)}."
                    f"{alias.name}" in MODULES}  # fmt: skip
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append(f"{module} uses {node.value.id}.{node.attr}")
    assert not private, "\n".join(private)
