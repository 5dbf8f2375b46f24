"""Run every numbered notebook headlessly with papermill and gather one report.

``python -m lc_utils.runner`` (or ``lc-run``) executes ``notebooks/NN_*.ipynb`` in order into
``outputs/<run>/``. Each notebook gets its own ``OUTPUT_DIR`` (``outputs/<run>/<notebook stem>/``)
where it records ``metrics.json`` and its figures; afterwards the runner renders every executed
notebook to HTML and writes ``report.md``, ``report.html`` and ``run.json`` for the run, and points
``outputs/latest`` at it. Parameters pass through to every notebook that declares them; names that
no notebook declares are refused before anything runs, because papermill itself only logs them.

Writing ``run.json`` and the reports, and probing the environment, live in `lc_utils.report`;
their public names are re-exported here. This module and that one deliberately import nothing
else from ``lc_utils``: the runner must be able to run, list and strip notebooks even while the
library they exercise is broken.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import io
import logging
import os
import re
import shlex
import sys
import time
import tokenize
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

# The report's public names stay importable from the runner, unused ones included (noqa).
from lc_utils.report import (
    KERNEL_NAME,
    METRICS_FILE,  # noqa: F401
    OUTPUT_DIR_PARAMETER,
    REPORT_PACKAGES,  # noqa: F401
    RUN_FILE,  # noqa: F401
    RunnerError,
    figure_paths,
    finish_environment_probe,
    flatten_metrics,
    read_metrics,
    render_html,
    start_environment_probe,
    write_report,
    write_run_json,
)

__all__ = [
    "KERNEL_NAME",
    "NotebookExecutionError",
    "RunnerError",
    "UnknownParameterError",
    "execute_notebook",
    "find_notebooks",
    "flatten_metrics",
    "load_parameter_file",
    "main",
    "notebook_parameters",
    "papermill_blind_spots",
    "parameter_assignments",
    "parameters_cell",
    "parse_parameter_value",
    "select_notebooks",
    "strip_notebook",
    "validate_parameters",
    "write_report",
]

PARAMETERS_TAG = "parameters"
NOTEBOOK_PATTERN = re.compile(r"^(?P<number>\d{2}[a-z]?)_[A-Za-z0-9_-]+\.ipynb$")
# Progress bars from the hub and fork warnings from tokenizers clutter every executed notebook
# and make nbval comparisons noisy; users can still override them from their shell.
KERNEL_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}
# Tags papermill adds to cells it creates; stripping removes those cells entirely.
_INJECTED_TAG = "injected-parameters"
_PAPERMILL_CELL_TAGS = {_INJECTED_TAG, "papermill-error-cell-tag"}
# Per-cell metadata that records a run or a view state rather than the lesson itself.
_VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled")
_VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets", "execution")
_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130

logger = logging.getLogger(__name__)


class UnknownParameterError(RunnerError):
    """A parameter was passed that no selected notebook declares in its ``parameters`` cell."""


class NotebookExecutionError(RuntimeError):
    """A notebook raised while papermill executed it.

    ``cell_index`` counts cells of the *source* notebook from 0 (papermill's injected parameters
    cell is not counted), so it points at the cell a reader would open. It is None when the
    failing cell is papermill's injected parameters cell (``source`` is then that cell's text) or
    when the failing cell is unknown (``source`` is then empty).
    """

    def __init__(
        self,
        notebook: Path,
        executed_path: Path,
        cell_index: int | None,
        execution_count: int | None,
        source: str,
        ename: str,
        evalue: str,
    ) -> None:
        self.notebook = Path(notebook)
        self.executed_path = Path(executed_path)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.source = source
        self.ename = ename
        self.evalue = evalue
        super().__init__(self.message())

    @property
    def first_line(self) -> str:
        """The first non-blank line of the failing cell's source."""
        return next((line.strip() for line in self.source.splitlines() if line.strip()), "")

    @property
    def exception_line(self) -> str:
        """``Name: value``, as on the last line of a Python traceback (first line of the value)."""
        lines = [line for line in str(self.evalue).splitlines() if line.strip()]
        value = lines[0] if lines else ""
        if len(value) > 300:
            value = value[:297] + "..."
        more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
        return f"{self.ename}: {value}{more}" if value else self.ename

    def message(self) -> str:
        """A multi-line description naming the notebook, the cell and the exception."""
        if self.cell_index is not None:
            where = f" in cell {self.cell_index}"
        else:  # no index but a source: papermill's own cell; neither: the cell is unknown
            where = " in the injected parameters cell" if self.source else ""
        count = f" (In [{self.execution_count}])" if self.execution_count else ""
        first_line = f"    {self.first_line}\n" if self.first_line else ""
        return (
            f"notebook {self.notebook.name} failed{where}{count}:\n"
            f"{first_line}"
            f"    {self.exception_line}\n"
            f"The partially executed notebook is saved at {self.executed_path}; open it for the "
            "full traceback."
        )

    def to_dict(self) -> dict[str, Any]:
        """The failure as plain data, for ``run.json``."""
        return {
            "cell_index": self.cell_index,
            "execution_count": self.execution_count,
            "first_line": self.first_line,
            "ename": self.ename,
            "evalue": self.evalue,
            "exception": self.exception_line,
            "message": self.message(),
        }


# --------------------------------------------------------------------------------------------
# Finding notebooks and their parameters


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


# --------------------------------------------------------------------------------------------
# Executing


class _DropKnownUnknowns(logging.Filter):
    """papermill warns about every passed parameter its line parser did not find. The runner
    injects OUTPUT_DIR everywhere and has already vouched for names the cell does assign (see
    `papermill_blind_spots`), so for those names the warning is noise."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.messages = {f"Passed unknown parameter: {name}" for name in names}

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


def _set_kernel_environment() -> None:
    for name, value in KERNEL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # kernels inherit the runner's environment


def _source_cell_index(source_notebook: nbformat.NotebookNode, executed_index: int) -> int | None:
    """Map papermill's cell index (counted with its injected cell) back to the source notebook.

    Returns None when the failing cell is the injected parameters cell itself.
    """
    tags = [cell.get("metadata", {}).get("tags", []) for cell in source_notebook.cells]
    if any(_INJECTED_TAG in t for t in tags):
        return executed_index  # papermill replaced that cell in place: no shift
    parameters_index = next((i for i, t in enumerate(tags) if PARAMETERS_TAG in t), -1)
    injected_index = parameters_index + 1
    if executed_index == injected_index:
        return None
    return executed_index - 1 if executed_index > injected_index else executed_index


def _last_started_cell(executed_path: Path) -> tuple[int, str] | None:
    """Index (in the executed copy) and source of the last cell papermill started, if the copy
    says."""
    try:
        cells = _read_notebook(executed_path).cells
    except (OSError, ValueError):
        return None
    started = [
        (i, c.source)
        for i, c in enumerate(cells)
        if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    return started[-1] if started else None


def execute_notebook(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    progress_bar: bool | dict[str, Any] = True,
    log_output: bool = False,
    cell_timeout: float | None = None,
) -> Path:
    """Execute one notebook with papermill and return the executed copy's path.

    The copy is written to ``output_dir/<name>.ipynb``; the notebook's ``OUTPUT_DIR`` parameter
    is set to the absolute ``output_dir/<stem>/`` (created first), the kernel runs with the
    notebook's own directory as its working directory, and `KERNEL_ENVIRONMENT` is applied where
    the environment does not already set those variables.

    Raises:
        NotebookExecutionError: a cell raised; the partially executed copy is still saved.
        RunnerError: the kernel is not installed, or ``params`` sets ``OUTPUT_DIR``.
    """
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).resolve()
    output_dir = Path(output_dir).resolve()
    params = dict(params or {})
    if OUTPUT_DIR_PARAMETER in params:
        raise RunnerError(f"{OUTPUT_DIR_PARAMETER} is derived from output_dir; do not pass it")
    notebook_output_dir = output_dir / path.stem
    notebook_output_dir.mkdir(parents=True, exist_ok=True)
    executed_path = output_dir / path.name
    _set_kernel_environment()
    source_notebook = _read_notebook(path)
    cell = parameters_cell(source_notebook)
    assigned = parameter_assignments(cell.source) if cell is not None else {}
    with (
        _filtered("papermill", _DropKnownUnknowns([OUTPUT_DIR_PARAMETER, *assigned])),
        # notebook_parameters has already reported unparsed lines, once
        _filtered("papermill.translators", _DropUnparsedLine()),
    ):
        try:
            papermill.execute_notebook(
                str(path),
                str(executed_path),
                parameters={**params, OUTPUT_DIR_PARAMETER: str(notebook_output_dir)},
                kernel_name=kernel_name,
                cwd=str(path.parent),
                progress_bar=progress_bar,
                log_output=log_output,
                execution_timeout=cell_timeout,
            )
        except PapermillExecutionError as exc:
            raise NotebookExecutionError(
                notebook=path,
                executed_path=executed_path,
                cell_index=_source_cell_index(source_notebook, exc.cell_index),
                execution_count=exc.exec_count,
                source=exc.source,
                ename=exc.ename,
                evalue=exc.evalue,
            ) from exc
        except (CellTimeoutError, DeadKernelError) as exc:
            # papermill leaves no error output for these; the cell that was running is the last
            # one the saved copy shows as started.
            last = _last_started_cell(executed_path)
            raise NotebookExecutionError(
                notebook=path,
                executed_path=executed_path,
                cell_index=None if last is None else _source_cell_index(source_notebook, last[0]),
                execution_count=None,
                source="" if last is None else last[1],
                ename=type(exc).__name__,
                evalue=str(exc),
            ) from exc
        except NoSuchKernel as exc:
            raise RunnerError(
                f"Jupyter kernel {kernel_name!r} is not installed; install it into this "
                f"environment with `python -m ipykernel install --sys-prefix --name {kernel_name}` "
                "(`make venv` does this)"
            ) from exc
    return executed_path


# --------------------------------------------------------------------------------------------
# One run of several notebooks


@dataclass
class NotebookRecord:
    """What happened to one notebook in a run; serialised into ``run.json``."""

    name: str
    stem: str
    source: str
    status: str = "not run"  # "ok", "failed", "interrupted" or "not run"
    duration_s: float | None = None
    executed: str | None = None  # paths below are relative to the run directory
    html: str | None = None
    output_dir: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    overridden: list[str] = field(default_factory=list)
    model: str | None = None
    metrics: dict[str, Any] | None = None
    figures: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


def _timestamp() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _new_run_dir(output_root: Path, run_name: str | None) -> Path:
    """Create ``output_root/<run>`` and refuse to mix two runs' files in one directory."""
    if run_name is not None:
        if not run_name or run_name in {".", "..", "latest"} or re.search(r"[\\/]", run_name):
            raise RunnerError(
                f"--run-name {run_name!r} must be a plain directory name other than 'latest'"
            )
        run_dir = output_root / run_name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunnerError(
                f"{run_dir} already holds a run; pass another --run-name or delete that directory"
            )
    else:
        base = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir, suffix = output_root / base, 1
        while run_dir.exists():  # two runs started in the same second
            suffix += 1
            run_dir = output_root / f"{base}-{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _update_latest(run_dir: Path) -> Path:
    """Point ``<output root>/latest`` at ``run_dir``: a relative symlink, or a one-line file
    holding the run's name where symlinks are not allowed (Windows without developer mode)."""
    latest = run_dir.parent / "latest"
    if latest.is_dir() and not latest.is_symlink():
        logger.warning("%s is a real directory; not replacing it with a link to the run", latest)
        return latest
    temporary = run_dir.parent / f".latest-{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:
        temporary.write_text(run_dir.name + "\n", encoding="utf-8")
    os.replace(temporary, latest)  # atomic, so a reader never sees no `latest` at all
    return latest


def _model_name(metrics: Mapping[str, Any] | None, parameters: Mapping[str, Any]) -> str | None:
    model = (metrics or {}).get("model")
    if isinstance(model, Mapping):
        model = model.get("name") or model.get("model_name")
    if model is not None:
        return str(model)
    if parameters.get("MODEL_NAME") is not None:
        return f"{parameters['MODEL_NAME']} (parameter; not recorded in metrics.json)"
    return None


def _collect_outputs(record: NotebookRecord, run_dir: Path) -> None:
    """Attach a notebook's recorded metrics and figures to its record."""
    record.metrics = read_metrics(run_dir, {"stem": record.stem})
    record.figures = figure_paths(run_dir, {"stem": record.stem})
    record.model = _model_name(record.metrics, record.parameters)


def run_notebooks(
    notebooks: Sequence[Path],
    run_dir: Path,
    params: Mapping[Path, Mapping[str, Any]],
    *,
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
    log_output: bool = False,
    cell_timeout: float | None = None,
) -> list[NotebookRecord]:
    """Execute ``notebooks`` in order into ``run_dir`` and stop at the first failure.

    ``params`` maps each notebook to the values it should receive (see `validate_parameters`).
    Prints one line per notebook with its elapsed time; papermill's per-cell bar runs in between.
    Records of notebooks after a failure keep the status ``"not run"``.
    """
    records = []
    for notebook in notebooks:
        defaults = notebook_parameters(notebook)
        overrides = dict(params.get(notebook, {}))
        record = NotebookRecord(name=notebook.name, stem=notebook.stem, source=str(notebook))
        record.parameters = {
            **defaults,
            **overrides,
            OUTPUT_DIR_PARAMETER: str((run_dir / notebook.stem).resolve()),
        }
        record.overridden = sorted(overrides)
        if OUTPUT_DIR_PARAMETER not in defaults:
            print(
                f"warning: {notebook.name} declares no {OUTPUT_DIR_PARAMETER} parameter; its "
                "metrics and figures will not reach the report",
                file=sys.stderr,
            )
        records.append(record)

    total = len(records)
    for position, (notebook, record) in enumerate(zip(notebooks, records, strict=True), start=1):
        label = f"[{position}/{total}] {notebook.stem}"
        bar: bool | dict[str, Any] = {"desc": label, "leave": False} if progress else False
        if not progress:  # otherwise the progress bar, labelled the same, shows the start
            print(f"{label} ...", flush=True)
        started = time.perf_counter()
        try:
            executed = execute_notebook(
                notebook,
                run_dir,
                params.get(notebook, {}),
                kernel_name=kernel_name,
                progress_bar=bar,
                log_output=log_output,
                cell_timeout=cell_timeout,
            )
            record.status = "ok"
        except NotebookExecutionError as exc:
            record.status, record.error = "failed", exc.to_dict()
            executed = exc.executed_path
        except KeyboardInterrupt:
            record.status, executed = "interrupted", run_dir / notebook.name
        except RunnerError:
            raise
        except Exception as exc:  # kernel died, timeout outside a cell, unreadable output...
            record.status = "failed"
            record.error = {"exception": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            executed = run_dir / notebook.name
        record.duration_s = round(time.perf_counter() - started, 2)
        record.output_dir = notebook.stem
        if executed.exists():
            record.executed = executed.relative_to(run_dir).as_posix()
        _collect_outputs(record, run_dir)
        print(f"{label} {record.status} in {record.duration_s:.1f} s", flush=True)
        if record.status != "ok":
            break
    return records


# --------------------------------------------------------------------------------------------
# Stripping notebooks for commit


def strip_notebook(path: str | os.PathLike[str]) -> bool:
    """Remove outputs, execution counts and run metadata from a notebook in place.

    Cell tags (``parameters`` and nbval's) and the kernelspec are kept; cells that papermill
    added (injected parameters, error banners) are removed, in case an executed copy is being
    turned back into a source notebook. Returns True if the file changed.
    """
    path = Path(path)
    original = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(original, as_version=4)
    notebook.cells = [
        cell
        for cell in notebook.cells
        if not _PAPERMILL_CELL_TAGS & set(cell.get("metadata", {}).get("tags", []))
    ]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    for key in _VOLATILE_NOTEBOOK_METADATA:
        notebook.metadata.pop(key, None)
    text = nbformat.writes(notebook)
    text = text if text.endswith("\n") else text + "\n"
    if text == original:
        return False
    path.write_text(text, encoding="utf-8")
    return True


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lc_utils.runner",
        description=(
            "Execute the numbered notebooks in order with papermill into OUTPUT_ROOT/RUN/, then "
            "write an HTML copy of each, report.md, report.html and run.json."
        ),
        epilog=(
            "examples:\n"
            "  python -m lc_utils.runner\n"
            "  python -m lc_utils.runner --only 01,03 -p SEED 1 --run-name seed1\n"
            "  python -m lc_utils.runner -p MILVUS_URI http://127.0.0.1:19530\n"
            "  python -m lc_utils.runner --list\n"
            "  python -m lc_utils.runner --strip"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter in every notebook that declares it (repeatable); VALUE is parsed "
        "like papermill's -p: numbers, True/False/None, [lists], else text",
    )
    parser.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML file of NAME: value pairs (repeatable; later files and -p win)",
    )
    parser.add_argument(
        "--only",
        metavar="LIST",
        help="comma-separated notebook numbers or names to run, e.g. 01,03",
    )
    parser.add_argument(
        "--run-name", metavar="NAME", help="name of the run directory (default: a timestamp)"
    )
    parser.add_argument(
        "--output-root",
        type=Path,
        metavar="DIR",
        help="where run directories go (default: outputs/ next to the notebooks directory)",
    )
    parser.add_argument(
        "--notebooks",
        type=Path,
        metavar="DIR",
        dest="notebooks_dir",
        help="directory of numbered notebooks (default: ./notebooks, else the checkout's)",
    )
    parser.add_argument(
        "--kernel", default=KERNEL_NAME, help=f"Jupyter kernel (default {KERNEL_NAME})"
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        metavar="SECONDS",
        help="fail a cell that runs longer than this (default: no limit)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument(
        "--log-output", action="store_true", help="echo the notebooks' printed output"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the notebooks and the parameters each declares, then exit",
    )
    parser.add_argument(
        "--strip",
        nargs="*",
        metavar="NOTEBOOK",
        help="strip outputs from the given notebooks (default: every notebook in the notebooks "
        "directory) in place, keeping cell tags, then exit",
    )
    return parser


def _collect_parameters(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for file in args.parameters_file:
        params.update(load_parameter_file(file))
    for name, value in args.parameter:
        if not name.isidentifier():
            raise RunnerError(f"parameter name {name!r} is not a Python identifier")
        params[name] = _ParameterText(value)
    return params


def _print_parameters(notebooks: Sequence[Path]) -> None:
    for notebook in notebooks:
        print(notebook.name)
        defaults = notebook_parameters(notebook)
        comments = _parameter_comments(_parameters_source(notebook))
        if not defaults:
            print("    (no parameters)")
        for name, default in defaults.items():
            help_text = f"  # {comments[name]}" if comments.get(name) else ""
            print(f"    {name} = {default!r}{help_text}")


def _hint_for_unselected(
    error: UnknownParameterError,
    params: Mapping[str, Any],
    selected: Sequence[Path],
    notebooks: Sequence[Path],
) -> str:
    """Say so when a rejected name is declared by a notebook that --only left out."""
    declared = {nb: notebook_parameters(nb) for nb in notebooks}
    hints = []
    for name in params:
        if any(name in declared[nb] for nb in selected):
            continue
        owners = [nb.stem for nb in notebooks if nb not in selected and name in declared[nb]]
        if owners:
            hints.append(f"{name} is declared by {', '.join(owners)}, which --only left out")
    return str(error) + ("\n" + "\n".join(hints) if hints else "")


def _command_line(argv: Sequence[str] | None) -> str:
    """The command as a user would retype it, for the report."""
    program = [Path(sys.executable).name, "-m", "lc_utils.runner"]
    if argv is None:
        argv = sys.argv[1:]
        if Path(sys.argv[0]).name == "lc-run":
            program = ["lc-run"]
    return shlex.join([*program, *argv])


def _run(args: argparse.Namespace) -> int:
    notebooks_dir = (args.notebooks_dir or default_notebooks_dir()).resolve()

    if args.strip is not None:
        targets = [Path(p) for p in args.strip] or sorted(notebooks_dir.glob("*.ipynb"))
        if not targets:
            print(f"no notebooks to strip in {notebooks_dir}")
        for target in targets:
            print(f"{'stripped' if strip_notebook(target) else 'clean   '} {target}")
        return _EXIT_OK

    notebooks = find_notebooks(notebooks_dir)
    if not notebooks:
        raise RunnerError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    selected = select_notebooks(notebooks, args.only)
    if args.list:
        _print_parameters(selected)
        return _EXIT_OK

    params = _collect_parameters(args)
    try:
        resolved = validate_parameters(selected, params)
    except UnknownParameterError as exc:
        raise UnknownParameterError(_hint_for_unselected(exc, params, selected, notebooks)) from exc

    output_root = (args.output_root or notebooks_dir.parent / "outputs").resolve()
    run_dir = _new_run_dir(output_root, args.run_name)
    if args.log_output:
        # papermill logs the kernels' output at INFO, which Python drops without a handler.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("    %(message)s"))
        logging.getLogger("papermill").addHandler(handler)
        logging.getLogger("papermill").setLevel(logging.INFO)
    probe = start_environment_probe(args.kernel)
    started_at, started = _timestamp(), time.perf_counter()
    print(f"Running {len(selected)} notebook(s) from {notebooks_dir} into {run_dir}", flush=True)

    records = run_notebooks(
        selected,
        run_dir,
        resolved,
        kernel_name=args.kernel,
        progress=not args.no_progress,
        log_output=args.log_output,
        cell_timeout=args.cell_timeout,
    )
    for record in records:
        if record.executed:
            try:
                record.html = render_html(run_dir / record.executed).relative_to(run_dir).as_posix()
            except Exception as exc:  # a failed rendering must not lose the report
                print(
                    f"warning: could not render {record.executed} to HTML: {exc}", file=sys.stderr
                )

    failed = next((r for r in records if r.status not in ("ok", "not run")), None)
    summary = {
        "run_name": run_dir.name,
        "run_dir": str(run_dir),
        "status": "ok" if failed is None else failed.status,
        "started_at": started_at,
        "finished_at": _timestamp(),
        "duration_s": round(time.perf_counter() - started, 2),
        "command": _command_line(args.argv),
        "kernel": args.kernel,
        "notebooks_dir": str(notebooks_dir),
        # As the user typed them; each notebook's `parameters` holds the values it received.
        "overrides": {k: str(v) if isinstance(v, _ParameterText) else v for k, v in params.items()},
        "environment": finish_environment_probe(probe),
        "notebooks": [asdict(r) for r in records],
    }
    write_run_json(run_dir, summary)
    markdown_path, html_path = write_report(run_dir)
    latest = _update_latest(run_dir)

    if failed is not None:
        print("", file=sys.stderr)
        error = failed.error or {}
        reason = f"notebook {failed.name} {failed.status}: {error.get('exception', 'stopped')}"
        print(error.get("message", reason), file=sys.stderr)
        skipped = [r.stem for r in records if r.status == "not run"]
        if skipped:
            print(f"Not run: {', '.join(skipped)}.", file=sys.stderr)
        print(f"Report of what did run: {markdown_path}", file=sys.stderr)
        return _EXIT_INTERRUPTED if failed.status == "interrupted" else _EXIT_FAILED
    print(f"Done in {summary['duration_s']:.1f} s. Report: {markdown_path} and {html_path.name}")
    print(f"{latest} -> {run_dir.name}")
    return _EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point for ``python -m lc_utils.runner`` and ``lc-run``.

    Returns the exit status: 0 when every notebook ran, 1 when one failed (the run stops there
    and the report covers what ran), 2 for bad options or parameters (nothing runs), 130 when
    interrupted.
    """
    args = _parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        return _run(args)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
