"""Every "Introduced in notebook NN_name" in lc_utils names the first notebook that uses the thing.

Hand-written breadcrumbs drift when notebooks are split or renumbered. This test derives the truth
from the notebooks themselves: it reads their code cells in order, resolves every ``lc.<name>``
chain (``lc.late_chunking``, ``lc.eval.compare_naive_late``) to the object it names, and so
finds the first notebook that uses each function, class, constant and module. A breadcrumb must
name that notebook. A name that no notebook uses by name (a helper behind a public call, a class
that a call returns) takes the first notebook that uses its module; a breadcrumb in a module that
no notebook uses must go. Methods are matched by ``.<method>(`` calls in notebooks at or after
the one that introduces their class, and otherwise take their class's notebook.

It covers every module of lc_utils, one test per file, so a failure names the file and lines to fix.
"""

from __future__ import annotations

import ast
import inspect
import re
import types
from functools import cache
from pathlib import Path

import nbformat
import pytest

import lc_utils

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lc_utils"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
BREADCRUMB = re.compile(r"Introduced in notebook\s+(\d{2}[a-z]?_\w+)")
CHAIN = re.compile(r"\blc((?:\.[A-Za-z_]\w*)+)")
METHOD_CALL = re.compile(r"\.([A-Za-z_]\w*)\(")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def first_uses() -> tuple[dict, dict]:
    """``({key: notebook}, {method name: [notebooks in order]})`` from the notebooks' code.

    A key is a module name (``"lc_utils.eval.compare"``) or ``(module, qualified name)``.
    """
    first: dict = {}
    method_calls: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
        for match in CHAIN.finditer(code):
            parent: object = lc_utils
            for name in match.group(1).strip(".").split("."):
                if not hasattr(parent, name):
                    break
                value = getattr(parent, name)
                for key in keys_of(parent, name, value):
                    first.setdefault(key, path.stem)
                parent = value
        for name in METHOD_CALL.findall(code):
            method_calls.setdefault(name, []).append(path.stem)
    return first, method_calls


def keys_of(parent, name: str, value) -> list:
    """What using ``parent.name`` introduces: the object, and the module that defines it."""
    if isinstance(value, types.ModuleType):
        return [value.__name__] if value.__name__.startswith("lc_utils") else []
    if inspect.isfunction(value) or inspect.isclass(value):
        module = getattr(value, "__module__", "")
        if not module.startswith("lc_utils"):
            return []
        return [(module, value.__qualname__), module]
    if isinstance(parent, types.ModuleType):  # a constant: key it where it was found
        return [(parent.__name__, name)]
    return []


def breadcrumbs(path: Path) -> list[tuple[int, str, object, str]]:
    """``(line, label, key, notebook)`` for every breadcrumb in one source file."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def add(node, label, key, docstring):
        match = BREADCRUMB.search(docstring or "")
        if match:
            found.append((getattr(node, "lineno", 1), label, key, match.group(1)))

    add(tree, f"module {module}", module, ast.get_docstring(tree))
    body = tree.body
    for index, node in enumerate(body):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            add(node, node.name, (module, node.name), ast.get_docstring(node))
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        label = f"{node.name}.{item.name}"
                        add(item, label, ("method", node.name, item.name), ast.get_docstring(item))
        elif isinstance(node, ast.Assign) and index + 1 < len(body):
            following = body[index + 1]
            is_text = isinstance(following, ast.Expr) and isinstance(
                getattr(following, "value", None), ast.Constant
            )
            if is_text and isinstance(following.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        key = (module, target.id)
                        add(following, target.id, key, following.value.value)
    return found


def expected_notebook(key, module: str) -> str | None:
    first, method_calls = first_uses()
    if isinstance(key, tuple) and key[0] == "method":
        _, class_name, method = key
        introduced = expected_notebook((module, class_name), module)
        calls = [n for n in method_calls.get(method, []) if introduced and n >= introduced]
        return calls[0] if calls else introduced
    return first.get(key, first.get(module))


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_breadcrumbs_name_the_first_notebook_that_uses_it(path):
    module = module_name(path)
    wrong = []
    for line, label, key, said in breadcrumbs(path):
        truth = expected_notebook(key, module)
        if truth is None:
            wrong.append(
                f"{path.name}:{line} {label}: says {said}, but no notebook uses {module}; drop it"
            )
        elif truth != said:
            wrong.append(f"{path.name}:{line} {label}: says {said}, first used in {truth}")
    assert not wrong, "\n".join(wrong)


def test_the_scan_resolves_what_the_notebooks_call():
    """The scan itself, on names whose first notebook is beyond doubt."""
    first, _ = first_uses()
    assert first[("lc_utils.text.strategies", "chunk_text")] == "01_chunking"
    assert first["lc_utils.text.strategies"] == "01_chunking"
    assert first[("lc_utils.late.pooling", "late_chunking")] == "03_late_pooling"
    assert first[("lc_utils.eval.compare", "compare_naive_late")] == "04_naive_vs_late"
    assert first[("lc_utils.datasets", "RELEASE_NOTES")] == "04_naive_vs_late"
    assert ("lc_utils.text.chunking", "no_such_name") not in first
