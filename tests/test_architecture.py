"""The library's imports follow the data: text -> models -> late -> corpus -> store and scale ->
evaluation -> studies -> presentation, with no cycle, no import against that direction, and no
module reaching into another module's private names.

The scan reads every module of ``lc_utils`` with ``ast``: imports at module level and inside
functions alike (a lazy import is still a dependency), relative and absolute. The package's
``__init__`` is left out: it only names the public API and loads it on first use.

The semantic chunker needs a model, yet ``text`` comes before ``models``: it takes the model as an
argument and calls its ``encode``, so no import runs against the data's direction.
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
    assert "lc_utils.text.tokens" in edges["lc_utils.text.chunking"]
    assert "lc_utils.text.chunking" in edges["lc_utils.late.windows"]
    assert "lc_utils.models.batching" in edges["lc_utils.late.pooling"]


# What each part of the package may import, besides itself: the data's direction. The method
# (text to chunk vectors) knows nothing of Milvus, evaluation, presentation or the runner; the data
# stages never import evaluation or presentation; the runner imports nothing of the method, so
# that it can still report a broken library.
LEAVES = {"progress", "vectors", "workers"}
METHOD = {"text", "models", "late", "corpus"} | LEAVES
ALLOWED = {
    "progress": set(),
    "workers": set(),
    "vectors": set(),
    "outputs": set(),
    "text": LEAVES,
    "models": {"text"} | LEAVES,
    "late": {"text", "models"} | LEAVES,
    "corpus": METHOD,
    "store": LEAVES,
    "datasets": {"text"} | LEAVES,
    "scale": METHOD | {"store", "datasets"},
    "eval": METHOD | {"datasets"},
    "studies": METHOD | {"datasets", "store", "eval"},
    "show": METHOD | {"datasets", "store", "eval", "studies"},
    "run": {"progress", "outputs"},
}


def part_of(module: str) -> str:
    return module.split(".")[1]


def against_the_direction(edges: dict[str, set[str]]) -> list[str]:
    """Every import from one part of the package to a part it may not import."""
    wrong = []
    for module, targets in sorted(edges.items()):
        source = part_of(module)
        for target in sorted(targets):
            if part_of(target) != source and part_of(target) not in ALLOWED[source]:
                wrong.append(f"{module} imports {target}")
    return wrong


def test_every_part_of_the_package_has_a_rule():
    assert {part_of(m) for m in MODULES if m != "lc_utils"} == set(ALLOWED)


def test_imports_follow_the_data():
    wrong = against_the_direction(graph())
    assert not wrong, "imports against the data's direction:\n" + "\n".join(wrong)


def test_the_direction_check_finds_a_planted_import():
    """A planted import from late chunking into the presentation module must be refused."""
    edges = graph()
    planted = {**edges, "lc_utils.late.pooling": edges["lc_utils.late.pooling"] | {
        "lc_utils.show.tables"}}  # fmt: skip
    assert against_the_direction(planted) == ["lc_utils.late.pooling imports lc_utils.show.tables"]
    into_outputs = {**edges, "lc_utils.corpus": edges["lc_utils.corpus"] | {"lc_utils.outputs"}}
    assert against_the_direction(into_outputs) == ["lc_utils.corpus imports lc_utils.outputs"]


def test_no_import_inside_a_function_but_optional_heavy_ones():
    """Imports sit at the top of a module, where a reader sees what it depends on. Inside a
    function only optional dependencies (Ray, pymilvus, papermill, ...), heavy ones that one path
    needs (spaCy, matplotlib for a figure) and the standard library are imported, with a comment."""
    lazy = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.level:
                    lazy.append(f"{module}:{node.lineno} imports .{node.module} in a function")
                elif isinstance(node, ast.ImportFrom | ast.Import):
                    names = [node.module] if isinstance(node, ast.ImportFrom) else [
                        a.name for a in node.names]  # fmt: skip
                    if any(n and n.split(".")[0] == "lc_utils" for n in names):
                        lazy.append(f"{module}:{node.lineno} imports lc_utils in a function")
    assert not lazy, "\n".join(lazy)


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
