"""Checks on the committed notebooks themselves, without running them.

Notebooks are committed stripped (no outputs, no execution counts) so that diffs show the lesson
and not a run; executed copies belong in the ignored ``outputs/`` folder. Each notebook follows
the skeleton in STYLE.md: a markdown title first, one ``parameters`` cell of literals that
papermill can override, and the ``lc-utils`` kernel. To fix a notebook that fails the output
checks, run ``make strip``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from lc_utils.run.parameters import NOTEBOOK_PATTERN, PARAMETERS_TAG, notebook_parameters
from lc_utils.run.report import KERNEL_NAME

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# The walk-through promised by issue 3; a notebook inserted later (03a_...) is welcome too.
WALKTHROUGH_NUMBERS = ("01", "02", "03", "04", "05")
# Issue 3: every parameters cell holds at least these, so the runner can set the model, the seed
# and the output folder of every notebook alike.
REQUIRED_PARAMETERS = ("MODEL_NAME", "SEED", "OUTPUT_DIR")
STRIP_HINT = "run `make strip` (nbconvert clears outputs and run metadata) before committing"
# Metadata that records a run rather than the lesson (`make strip` removes these too).
RUN_METADATA = ("execution", "papermill", "ExecuteTime")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _parameters_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]


def each_notebook(test):
    """Run ``test`` once per committed notebook, with the notebook's name as the test id."""
    return pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])(test)


def test_walkthrough_notebooks_01_to_05_exist() -> None:
    """COUNT CHECK, not a per-notebook rule: fails until notebooks 01-05 are all committed.

    The per-notebook tests below would silently collect nothing in an empty folder; this test is
    what makes a missing walk-through a failure instead.
    """
    numbers = {m.group("number") for p in NOTEBOOKS if (m := NOTEBOOK_PATTERN.match(p.name))}
    missing = [n for n in WALKTHROUGH_NUMBERS if n not in numbers]
    found = ", ".join(p.name for p in NOTEBOOKS) or "none"
    assert not missing, (
        f"the walk-through needs notebooks {', '.join(WALKTHROUGH_NUMBERS)} in {NOTEBOOKS_DIR}; "
        f"missing {', '.join(missing)} (found: {found})"
    )


@each_notebook
def test_name_is_numbered(path: Path) -> None:
    assert NOTEBOOK_PATTERN.match(path.name), (
        f"{path.name}: name notebooks NN_topic.ipynb (or NNa_topic.ipynb to insert one) so the "
        "runner finds them and runs them in order"
    )


@each_notebook
def test_committed_without_outputs(path: Path) -> None:
    notebook = _read(path)
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            problems.append(f"cell {index} has outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            problems.append(f"cell {index} has execution count {cell.execution_count}")
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            problems.append(f"cell {index} was added by papermill")
        stale = [key for key in RUN_METADATA if key in cell.get("metadata", {})]
        if stale:
            problems.append(f"cell {index} has run metadata {stale}")
    if "papermill" in notebook.metadata:
        problems.append("notebook metadata records a papermill run")
    assert not problems, f"{path.name}: {'; '.join(problems)}; {STRIP_HINT}"


@each_notebook
def test_exactly_one_parameters_cell(path: Path) -> None:
    cells = _parameters_cells(_read(path))
    assert len(cells) == 1, (
        f"{path.name}: {len(cells)} cells are tagged '{PARAMETERS_TAG}'; papermill injects after "
        "the first one only, so tag exactly one code cell"
    )
    assert cells[0].cell_type == "code", f"{path.name}: the '{PARAMETERS_TAG}' cell must be code"


@each_notebook
def test_parameters_cell_holds_literals_only(path: Path) -> None:
    cells = _parameters_cells(_read(path))
    assert cells, f"{path.name}: no cell is tagged '{PARAMETERS_TAG}'"
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        pytest.fail(f"{path.name}: the parameters cell does not parse: {exc}")
    problems = []
    for node in tree.body:
        line = source.splitlines()[node.lineno - 1].strip()
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            problems.append(f"line {node.lineno} is not an assignment: {line}")
            continue
        if not all(isinstance(t, ast.Name) for t in targets):
            problems.append(f"line {node.lineno} assigns to something other than a name: {line}")
        try:
            ast.literal_eval(value)
        except ValueError:
            problems.append(f"line {node.lineno} is not a literal: {line}")
    assert not problems, (
        f"{path.name}: the parameters cell must hold NAME = literal lines only (papermill "
        "overrides them, and it must load nothing); " + "; ".join(problems)
    )


@each_notebook
def test_papermill_reads_every_parameter(path: Path) -> None:
    """The runner takes a notebook's parameters from papermill.inspect_notebook, so a name that
    papermill cannot see would be refused as unknown."""
    cells = _parameters_cells(_read(path))
    assert cells, f"{path.name}: no cell is tagged '{PARAMETERS_TAG}'"
    assigned = [
        target.id
        for node in ast.parse(cells[0].source).body
        for target in getattr(node, "targets", [getattr(node, "target", None)])
        if isinstance(target, ast.Name)
    ]
    hidden = [name for name in assigned if name not in notebook_parameters(path)]
    assert not hidden, (
        f"{path.name}: papermill.inspect_notebook cannot see {', '.join(hidden)}: it skips any "
        "parameters line with more than one '=', such as '# None = the maximum'. Reword the "
        "comment ('None means the maximum') so papermill's tooling lists the parameter"
    )


@each_notebook
def test_parameters_cell_declares_the_shared_parameters(path: Path) -> None:
    cells = _parameters_cells(_read(path))
    assert cells, f"{path.name}: no cell is tagged '{PARAMETERS_TAG}'"
    declared = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    declared[target.id] = node.value
    missing = [name for name in REQUIRED_PARAMETERS if name not in declared]
    assert not missing, (
        f"{path.name}: the parameters cell lacks {', '.join(missing)}; every notebook declares "
        f"{', '.join(REQUIRED_PARAMETERS)} so one runner option reaches them all"
    )
    model_default = ast.literal_eval(declared["MODEL_NAME"])
    assert model_default == "auto", (
        f'{path.name}: MODEL_NAME defaults to {model_default!r}; use "auto" so the notebook picks '
        "the model that is available offline"
    )


@each_notebook
def test_kernelspec_is_lc_utils(path: Path) -> None:
    kernelspec = _read(path).metadata.get("kernelspec", {})
    assert kernelspec.get("name") == KERNEL_NAME, (
        f"{path.name}: kernelspec name is {kernelspec.get('name')!r}; set it to {KERNEL_NAME!r} "
        "(Kernel > Change Kernel > Python (lc-utils)) so papermill and nbval use the project venv"
    )


@each_notebook
def test_first_cell_is_a_markdown_title(path: Path) -> None:
    notebook = _read(path)
    assert notebook.cells, f"{path.name} is empty"
    first = notebook.cells[0]
    first_line = next((line for line in first.source.splitlines() if line.strip()), "")
    assert first.cell_type == "markdown" and first_line.startswith("# "), (
        f"{path.name}: the first cell must be markdown starting with a '# Title' line, "
        f"got a {first.cell_type} cell starting {first_line[:60]!r}"
    )


@each_notebook
def test_no_installs_or_sys_path_edits(path: Path) -> None:
    pattern = re.compile(r"^\s*[!%]\s*pip\b|^\s*[!%]\s*conda\b|sys\.path\.(insert|append)", re.M)
    offending = [
        index
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "code" and pattern.search(cell.source)
    ]
    assert not offending, (
        f"{path.name}: cells {offending} install packages or edit sys.path; the package is "
        "installed with `make venv` (pip install -e .), never from inside a notebook"
    )


@each_notebook
def test_a_thin_notebook_calls_the_library(path: Path) -> None:
    """One lesson each: under 150 lines of code, and no function, lambda or class of its own
    (logic that a notebook needs lives in lc_utils, where it is tested)."""
    code = [c.source for c in _read(path).cells if c.cell_type == "code"]
    lines = [
        line
        for source in code
        for line in source.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(lines) < 150, f"{path.name} has {len(lines)} lines of code; move logic to lc_utils"
    for source in code:
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
            ), f"{path.name} defines {type(node).__name__} at line {node.lineno} of a cell"
