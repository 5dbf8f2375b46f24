"""The notebooks of a run and their parameters: finding, reading, parsing and validating them.

A notebook declares its parameters in one cell tagged ``parameters``, holding literal
assignments. papermill injects values after that cell but only *logs* names the cell does not
declare, so a typo would run silently with the default; ``validate_parameters`` refuses such
names before anything runs and checks each value against the notebook's default.

Like ``lc_utils.runner``, this module imports nothing else from ``lc_utils`` but the report's
constants, so that notebooks can be listed and checked while the library is broken.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import os
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import yaml

from lc_utils.report import OUTPUT_DIR_PARAMETER, RunnerError

__all__ = [
    "NOTEBOOK_PATTERN",
    "PARAMETERS_TAG",
    "UnknownParameterError",
    "find_notebooks",
    "load_parameter_file",
    "notebook_parameters",
    "papermill_blind_spots",
    "parameter_assignments",
    "parameters_cell",
    "parse_parameter_value",
    "select_notebooks",
    "validate_parameters",
]

PARAMETERS_TAG = "parameters"
NOTEBOOK_PATTERN = re.compile(r"^(?P<number>\d{2}[a-z]?)_[A-Za-z0-9_-]+\.ipynb$")


class UnknownParameterError(RunnerError):
    """A parameter was passed that no selected notebook declares in its ``parameters`` cell."""


def project_root() -> Path:
    """The directory that holds ``lc_utils/`` and, in a checkout, ``notebooks/``."""
    return Path(__file__).resolve().parents[1]


def default_notebooks_dir() -> Path:
    """``./notebooks`` if the current directory has one, else the checkout's ``notebooks/``."""
    local = Path.cwd() / "notebooks"
    return local if local.is_dir() else project_root() / "notebooks"


def find_notebooks(notebooks_dir: str | os.PathLike[str]) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb`` or ``NNa_name.ipynb``) in a directory, in order.

    ``03_x`` sorts before ``03a_y``, so an inserted notebook runs after the one it follows.
    """
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise RunnerError(f"notebooks directory {notebooks_dir} does not exist; pass --notebooks")
    return sorted(p for p in notebooks_dir.iterdir() if NOTEBOOK_PATTERN.match(p.name))


def select_notebooks(notebooks: Sequence[Path], only: str | Iterable[str] | None) -> list[Path]:
    """Keep the notebooks named in ``only``: numbers (``"01,03a"``) or stems (``"02_x"``).

    A number matches exactly, so ``03`` selects ``03_x`` but not ``03a_y``.
    """
    if only is None:
        return list(notebooks)
    tokens = [t.strip() for t in (only.split(",") if isinstance(only, str) else only)]
    tokens = [t.removesuffix(".ipynb") for t in tokens if t]
    if not tokens:
        raise RunnerError("--only is empty; give notebook numbers such as --only 01,03")
    selected: set[Path] = set()
    unknown = []
    for token in tokens:
        matches = {nb for nb in notebooks if token in (nb.stem, _notebook_number(nb))}
        if not matches:
            unknown.append(token)
        selected |= matches
    if unknown:
        available = ", ".join(nb.stem for nb in notebooks) or "none"
        raise RunnerError(
            f"--only {', '.join(unknown)} matches no notebook; available: {available}"
        )
    return [nb for nb in notebooks if nb in selected]  # always in run order


def _notebook_number(notebook: Path) -> str | None:
    match = NOTEBOOK_PATTERN.match(notebook.name)
    return match.group("number") if match else None


def _read_notebook(path: str | os.PathLike[str]) -> nbformat.NotebookNode:
    return nbformat.read(os.fspath(path), as_version=4)


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The first cell tagged ``parameters``, or None if the notebook has none."""
    for cell in notebook.cells:
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def _parameters_source(path: Path) -> str:
    """The source of a notebook file's parameters cell; empty if it has none."""
    cell = parameters_cell(_read_notebook(path))
    return cell.source if cell is not None else ""


def parameter_assignments(source: str) -> dict[str, Any]:
    """Name -> default for each assignment in a parameters cell's source, in cell order.

    A literal default becomes its Python value; any other right-hand side is returned as its
    source text (the hygiene test forbids those). Source that does not parse gives ``{}``.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            default = ast.literal_eval(value)
        except ValueError:
            default = ast.get_source_segment(source, value)
        for target in targets:
            if isinstance(target, ast.Name):
                values[target.id] = default
    return values


def _parameter_comments(source: str) -> dict[str, str]:
    """Name -> the comment that ends its assignment's last line, used as help by ``--list``."""
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError):
        return {}
    comments = {
        t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT
    }
    result = {}
    for node in tree.body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and node.end_lineno in comments:
                result[target.id] = comments[node.end_lineno]
    return result


class _DropUnparsedLine(logging.Filter):
    """papermill logs each parameters line it cannot read, on every inspection; the runner says
    it once, with the fix (see `notebook_parameters`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unable to parse line")


@contextlib.contextmanager
def _filtered(logger_name: str, log_filter: logging.Filter) -> Iterator[None]:
    """Apply ``log_filter`` to one logger for the duration of a ``with`` block."""
    filtered_logger = logging.getLogger(logger_name)
    filtered_logger.addFilter(log_filter)
    try:
        yield
    finally:
        filtered_logger.removeFilter(log_filter)


def _inspect(path: Path) -> dict[str, dict[str, Any]]:
    import papermill

    with _filtered("papermill.translators", _DropUnparsedLine()):
        return papermill.inspect_notebook(str(path))


_warned_invisible: set[tuple[str, tuple[str, ...]]] = set()


def papermill_blind_spots(path: str | os.PathLike[str]) -> list[str]:
    """Names assigned in the parameters cell that ``papermill.inspect_notebook`` cannot see.

    papermill skips any line with more than one ``=``, so ``WINDOW = None  # None = maximum``
    hides ``WINDOW`` from it. Injection still works (papermill only logs a warning), but tools that
    list parameters through papermill will miss the name.
    """
    path = Path(path)
    assigned = parameter_assignments(_parameters_source(path))
    if not assigned:
        return []
    declared = _inspect(path)
    return [name for name in assigned if name not in declared]


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters a notebook declares, as ``{name: default value}`` in cell order.

    The names are those ``papermill.inspect_notebook`` reports plus any assignment in the
    ``parameters`` cell that papermill's line parser misses (a line with two ``=``, usually in a
    comment); those get a one-time warning saying how to fix the cell, since papermill still
    injects them correctly. Defaults are the Python values of the cell's literals; a default that
    is not a literal is returned as its source text.
    """
    path = Path(path)
    declared = _inspect(path)
    assigned = parameter_assignments(_parameters_source(path))
    hidden = tuple(name for name in assigned if name not in declared)
    if hidden and (str(path), hidden) not in _warned_invisible:
        _warned_invisible.add((str(path), hidden))
        print(
            f"warning: {path.name}: papermill cannot read parameter(s) {', '.join(hidden)}; it "
            "skips lines with more than one '=', so reword those comments (for example "
            "'None means ...'). The runner accepts them anyway.",
            file=sys.stderr,
        )
    result = dict(assigned)
    for name, spec in declared.items():
        if name not in result:  # only when the cell did not parse as Python
            try:
                result[name] = ast.literal_eval(spec["default"])
            except (ValueError, SyntaxError):
                result[name] = spec["default"]
    return result


class _ParameterText(str):
    """A value typed on the command line, kept as text until the target notebook's default says
    whether it is meant as a string (``-p MILVUS_TOKEN 0123`` must stay ``"0123"``)."""


def parse_parameter_value(text: str) -> Any:
    """Parse a ``-p NAME VALUE`` value the way papermill's CLI does.

    ``True``/``False``/``None`` (and YAML's ``true``/``false``/``null``) become bool/None, integers
    and floats become numbers, ``[...]`` and ``{...}`` are read as YAML flow collections, and
    anything else stays a string. Dates are never parsed, unlike plain YAML.
    """
    from papermill.iorw import NoDatesSafeLoader

    stripped = text.strip()
    keywords = {"True": True, "true": True, "False": False, "false": False}
    keywords |= {"None": None, "null": None, "~": None}
    if stripped in keywords:
        return keywords[stripped]
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    if stripped.startswith(("[", "{")):
        try:
            return yaml.load(stripped, Loader=NoDatesSafeLoader)
        except yaml.YAMLError as exc:
            raise RunnerError(f"cannot parse {text!r} as a list or mapping: {exc}") from exc
    return str(text)  # plain str, also for the _ParameterText marker subclass


def load_parameter_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (or JSON) file mapping parameter names to values, for ``-f params.yaml``."""
    from papermill.iorw import NoDatesSafeLoader

    path = Path(path)
    if not path.is_file():
        raise RunnerError(f"parameter file {path} does not exist")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=NoDatesSafeLoader)
    except yaml.YAMLError as exc:
        raise RunnerError(f"parameter file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise RunnerError(
            f"parameter file {path} must be a mapping of NAME: value at the top level"
        )
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coerce(name: str, value: Any, default: Any, notebook: Path) -> Any:
    """Fit a passed value to the notebook's default type, or explain why it cannot fit."""
    if isinstance(value, _ParameterText):
        value = str(value) if isinstance(default, str) else parse_parameter_value(value)
    if value is None or default is None:
        return value
    expected = type(default).__name__
    mismatch = (isinstance(default, bool) and not isinstance(value, bool)) or (
        _is_number(default) and not _is_number(value)
    )
    if mismatch:
        raise RunnerError(
            f"{name} expects {expected} in {notebook.name} (default {default!r}); got {value!r}"
        )
    return value


def validate_parameters(
    notebooks: Sequence[str | os.PathLike[str]], params: Mapping[str, Any]
) -> dict[Path, dict[str, Any]]:
    """Check ``params`` against the notebooks and return the values each notebook should get.

    Every name must be declared in the ``parameters`` cell of at least one of ``notebooks``;
    otherwise `UnknownParameterError` lists the names that are valid. A parameter goes to every
    notebook that declares it. Values are checked against each notebook's default: a number
    default refuses text, a bool default refuses anything but a bool, and text typed on the
    command line stays text where the default is a string. ``OUTPUT_DIR`` is refused because the
    runner sets it per notebook.

    Returns:
        ``{notebook path: {name: value}}`` for every notebook, possibly with empty dicts.
    """
    if OUTPUT_DIR_PARAMETER in params:
        raise RunnerError(
            f"{OUTPUT_DIR_PARAMETER} is set by the runner for each notebook "
            "(outputs/<run>/<notebook>/); choose the location with --output-root and --run-name"
        )
    declared = {Path(nb): notebook_parameters(nb) for nb in notebooks}
    valid = {name for names in declared.values() for name in names}
    unknown = sorted(name for name in params if name not in valid)
    if unknown:
        listed = ", ".join(sorted(valid - {OUTPUT_DIR_PARAMETER})) or "none"
        noun = "parameter" if len(unknown) == 1 else "parameters"
        raise UnknownParameterError(
            f"unknown {noun} {', '.join(unknown)}: no notebook in this run declares "
            f"{'it' if len(unknown) == 1 else 'them'} in its '{PARAMETERS_TAG}' cell. "
            f"Valid names: {listed}. See them per notebook with --list."
        )
    resolved: dict[Path, dict[str, Any]] = {}
    problems = []
    for notebook, defaults in declared.items():
        resolved[notebook] = {}
        for name, value in params.items():
            if name not in defaults:
                continue
            try:
                resolved[notebook][name] = _coerce(name, value, defaults[name], notebook)
            except RunnerError as exc:
                problems.append(str(exc))
    if problems:
        raise RunnerError("parameter values do not fit:\n  " + "\n  ".join(problems))
    return resolved
