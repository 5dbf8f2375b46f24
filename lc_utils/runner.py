"""Run every numbered notebook headlessly with papermill and gather one report.

``python -m lc_utils.runner`` (or ``lc-run``) executes ``notebooks/NN_*.ipynb`` in order into
``outputs/<run>/``. Each notebook gets its own ``OUTPUT_DIR`` (``outputs/<run>/<notebook stem>/``)
where it records ``metrics.json`` and its figures; afterwards the runner renders every executed
notebook to HTML and writes ``report.md``, ``report.html`` and ``run.json`` for the run, and points
``outputs/latest`` at it. Parameters pass through to every notebook that declares them; names that
no notebook declares are refused before anything runs, because papermill itself only logs them.

This module deliberately imports nothing from the rest of ``lc_utils``: it must be able to run,
list and strip notebooks even while the library they exercise is broken.
"""

from __future__ import annotations

import argparse
import ast
import base64
import datetime as dt
import html
import io
import json
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

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

KERNEL_NAME = "lc-utils"
PARAMETERS_TAG = "parameters"
OUTPUT_DIR_PARAMETER = "OUTPUT_DIR"
NOTEBOOK_PATTERN = re.compile(r"^(?P<number>\d{2}[a-z]?)_[A-Za-z0-9_-]+\.ipynb$")
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"  # same name as lc_utils.outputs.METRICS_FILE, not imported on purpose
# Versions that change numbers or behaviour; the report lists them next to the results.
REPORT_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "spacy",
    "numpy",
    "pymilvus",
    "milvus-lite",
    "papermill",
)
# Progress bars from the hub and fork warnings from tokenizers clutter every executed notebook
# and make nbval comparisons noisy; users can still override them from their shell.
KERNEL_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}
# Tags papermill adds to cells it creates; stripping removes those cells entirely.
_PAPERMILL_CELL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
# Per-cell metadata that records a run or a view state rather than the lesson itself.
_VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled")
_VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets", "execution")
_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130

logger = logging.getLogger(__name__)


class RunnerError(Exception):
    """A problem with the runner's inputs (notebooks, parameters, paths), found before running."""


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
    selected, unknown = [], []
    for token in tokens:
        matches = [nb for nb in notebooks if token in (nb.stem, _notebook_number(nb))]
        if not matches:
            unknown.append(token)
        selected.extend(m for m in matches if m not in selected)
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


def _inspect(path: Path) -> dict[str, dict[str, Any]]:
    import papermill

    translator_logger = logging.getLogger("papermill.translators")
    quiet = _DropUnparsedLine()
    translator_logger.addFilter(quiet)
    try:
        return papermill.inspect_notebook(str(path))
    finally:
        translator_logger.removeFilter(quiet)


_warned_invisible: set[tuple[str, tuple[str, ...]]] = set()


def papermill_blind_spots(path: str | os.PathLike[str]) -> list[str]:
    """Names assigned in the parameters cell that ``papermill.inspect_notebook`` cannot see.

    papermill skips any line with more than one ``=``, so ``WINDOW = None  # None = maximum``
    hides ``WINDOW`` from it. Injection still works (papermill only logs a warning), but tools that
    list parameters through papermill will miss the name.
    """
    path = Path(path)
    cell = parameters_cell(_read_notebook(path))
    assigned = parameter_assignments(cell.source) if cell is not None else {}
    return [name for name in assigned if name not in _inspect(path)]


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
    cell = parameters_cell(_read_notebook(path))
    assigned = parameter_assignments(cell.source) if cell is not None else {}
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
    keywords.update({"None": None, "null": None, "~": None})
    if stripped in keywords:
        return keywords[stripped]
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    if stripped[:1] in "[{" and stripped:
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
    valid = sorted({name for names in declared.values() for name in names})
    unknown = sorted(name for name in params if not any(name in d for d in declared.values()))
    if unknown:
        listed = ", ".join(n for n in valid if n != OUTPUT_DIR_PARAMETER) or "none"
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
    if any("injected-parameters" in t for t in tags):
        return executed_index  # papermill replaced that cell in place: no shift
    parameters_index = next((i for i, t in enumerate(tags) if PARAMETERS_TAG in t), -1)
    injected_index = parameters_index + 1
    if executed_index == injected_index:
        return None
    return executed_index - 1 if executed_index > injected_index else executed_index


def _last_started_cell(executed_path: Path) -> int | None:
    """Index (in the executed copy) of the last cell papermill started, if the copy says."""
    try:
        cells = _read_notebook(executed_path).cells
    except (OSError, ValueError):
        return None
    started = [
        i
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
    papermill_logger = logging.getLogger("papermill")
    cell = parameters_cell(_read_notebook(path))
    assigned = parameter_assignments(cell.source) if cell is not None else {}
    output_dir_filter = _DropKnownUnknowns([OUTPUT_DIR_PARAMETER, *assigned])
    papermill_logger.addFilter(output_dir_filter)
    translator_logger = logging.getLogger("papermill.translators")
    unparsed_filter = _DropUnparsedLine()  # notebook_parameters has already said it, once
    translator_logger.addFilter(unparsed_filter)
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
            cell_index=_source_cell_index(_read_notebook(path), exc.cell_index),
            execution_count=exc.exec_count,
            source=exc.source,
            ename=exc.ename,
            evalue=exc.evalue,
        ) from exc
    except (CellTimeoutError, DeadKernelError) as exc:
        # papermill leaves no error output for these; the cell that was running is the last one
        # the saved copy shows as started.
        started = _last_started_cell(executed_path)
        executed_cells = _read_notebook(executed_path).cells if started is not None else []
        raise NotebookExecutionError(
            notebook=path,
            executed_path=executed_path,
            cell_index=None
            if started is None
            else _source_cell_index(_read_notebook(path), started),
            execution_count=None,
            source=executed_cells[started].source if started is not None else "",
            ename=type(exc).__name__,
            evalue=str(exc),
        ) from exc
    except NoSuchKernel as exc:
        raise RunnerError(
            f"Jupyter kernel {kernel_name!r} is not installed; install it into this environment "
            f"with `python -m ipykernel install --sys-prefix --name {kernel_name}` "
            "(`make venv` does this)"
        ) from exc
    finally:
        papermill_logger.removeFilter(output_dir_filter)
        translator_logger.removeFilter(unparsed_filter)
    return executed_path


def render_html(executed_notebook: str | os.PathLike[str]) -> Path:
    """Render an executed notebook to HTML next to it (``<stem>.html``) and return that path."""
    from nbconvert import HTMLExporter

    executed_notebook = Path(executed_notebook)
    body, _ = HTMLExporter().from_notebook_node(_read_notebook(executed_notebook))
    html_path = executed_notebook.with_suffix(".html")
    html_path.write_text(body, encoding="utf-8")
    return html_path


# --------------------------------------------------------------------------------------------
# The environment a run happened in

# Runs inside the kernel's interpreter, so the versions are the ones the notebooks actually used.
_ENVIRONMENT_PROBE = r"""
import importlib.metadata as md, json, os, platform, sys
packages = {}
for name in sys.argv[1:]:
    try:
        packages[name] = md.version(name)
    except md.PackageNotFoundError:
        packages[name] = None
memory = None
try:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
except (AttributeError, ValueError, OSError):
    pass
try:
    usable = len(os.sched_getaffinity(0))
except AttributeError:
    usable = os.cpu_count()
gpu = {"torch_cuda": False, "devices": []}
if packages.get("torch"):
    try:
        import torch
        if torch.cuda.is_available():
            gpu["torch_cuda"] = True
            gpu["cuda_version"] = torch.version.cuda
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                gpu["devices"].append({"name": props.name, "memory_bytes": props.total_memory})
        mps = getattr(torch.backends, "mps", None)
        gpu["torch_mps"] = bool(mps and mps.is_available())
    except Exception as exc:  # a broken torch must not cost the whole report
        gpu["error"] = repr(exc)
print(json.dumps({
    "python": platform.python_version(),
    "python_executable": sys.executable,
    "platform": platform.platform(),
    "cpu_count": os.cpu_count(),
    "cpu_count_usable": usable,
    "memory_bytes": memory,
    "packages": packages,
    "gpu": gpu,
}))
"""


def _kernel_python(kernel_name: str) -> str:
    """The interpreter a kernelspec launches, falling back to this one."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        executable = KernelSpecManager().get_kernel_spec(kernel_name).argv[0]
    except Exception:  # any failure here only degrades the report
        return sys.executable
    if "{" in executable:
        return sys.executable
    return shutil.which(executable) or sys.executable


def _start_environment_probe(kernel_name: str) -> subprocess.Popen[str]:
    # Started before the first notebook and read after the last, so importing torch to look for
    # a GPU costs the run no time.
    return subprocess.Popen(
        [_kernel_python(kernel_name), "-c", _ENVIRONMENT_PROBE, *REPORT_PACKAGES],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _nvidia_smi() -> list[str]:
    """GPU names from nvidia-smi, which also sees GPUs a CPU-only torch build cannot use."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        result = subprocess.run(
            [executable, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _finish_environment_probe(probe: subprocess.Popen[str] | None) -> dict[str, Any]:
    environment: dict[str, Any] = {}
    if probe is not None:
        try:
            stdout, stderr = probe.communicate(timeout=120)
            environment = json.loads(stdout) if probe.returncode == 0 else {}
            if probe.returncode != 0:
                environment["probe_error"] = stderr.strip().splitlines()[-1:] or ["unknown"]
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            probe.kill()
            environment = {"probe_error": [repr(exc)]}
    environment.setdefault("python", platform.python_version())
    environment.setdefault("platform", platform.platform())
    environment.setdefault("cpu_count", os.cpu_count())
    environment["runner_python"] = sys.executable
    environment["nvidia_smi"] = _nvidia_smi()
    return environment


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
    record.metrics = _read_metrics(run_dir, {"stem": record.stem})
    record.figures = _figures(run_dir, {"stem": record.stem})
    record.model = _model_name(record.metrics, record.parameters)


def _write_run_json(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = run_dir / RUN_FILE
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path


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
# Report


def _format_scalar(value: Any, max_chars: int = 120) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _format_value(value: Any, max_items: int) -> str:
    """One cell of text for any JSON value: short lists inline, long ones cut with a count."""
    if _is_scalar(value):
        return _format_scalar(value)
    if isinstance(value, list):
        if all(_is_scalar(v) for v in value):
            shown = ", ".join(_format_scalar(v, 40) for v in value[:max_items])
            more = f", … ({len(value)} items)" if len(value) > max_items else ""
            return f"[{shown}{more}]"
        if all(isinstance(v, list) and all(_is_scalar(x) for x in v) for v in value):
            widths = {len(v) for v in value}
            shape = f"{len(value)}×{widths.pop()}" if len(widths) == 1 else f"{len(value)} rows"
            return f"matrix {shape}: " + _format_scalar(json.dumps(value), 100)
    return _format_scalar(json.dumps(value, default=str), 120)


def flatten_metrics(
    metrics: Mapping[str, Any], *, max_list_items: int = 8, max_table_rows: int = 20
) -> tuple[list[tuple[str, str]], list[tuple[str, list[str], list[list[str]], int]]]:
    """Turn a (nested) metrics dict into report tables.

    Nested dicts become dotted keys (``retrieval.late.ndcg@10``). A list of dicts becomes its own
    table with one row per item (at most ``max_table_rows``, with the true count kept). Lists of
    scalars are shown inline and cut after ``max_list_items``; matrices are shown by shape.

    Returns:
        ``(rows, tables)``: rows are ``(key, text)`` pairs; each table is
        ``(key, columns, rows, total_row_count)``, all cells already formatted as text.
    """
    rows: list[tuple[str, str]] = []
    tables: list[tuple[str, list[str], list[list[str]], int]] = []

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key in sorted(value, key=str):
                visit(f"{prefix}.{key}" if prefix else str(key), value[key])
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            columns: list[str] = []
            for item in value:
                columns.extend(str(k) for k in item if str(k) not in columns)
            body = [
                [_format_value(item.get(c, ""), max_list_items) for c in columns]
                for item in value[:max_table_rows]
            ]
            tables.append((prefix, columns, body, len(value)))
        else:
            rows.append((prefix, _format_value(value, max_list_items)))

    visit("", dict(metrics))
    return rows, tables


# The report is built once as a list of blocks and rendered twice, so report.md and report.html
# can never disagree. Inline text is a list of parts: plain strings or (text, href) links.
_Inline = list[str | tuple[str, str]]


def _md_inline(parts: _Inline, in_table: bool = False) -> str:
    out = []
    for part in parts:
        if isinstance(part, tuple):
            out.append(f"[{part[0]}]({part[1]})")
        else:
            out.append(part.replace("|", "\\|") if in_table else part)
    return "".join(out)


def _html_inline(parts: _Inline) -> str:
    out = []
    for part in parts:
        if isinstance(part, tuple):
            out.append(f'<a href="{html.escape(part[1])}">{html.escape(part[0])}</a>')
        else:
            out.append(html.escape(part))
    return "".join(out)


def _render_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "heading":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "paragraph":
            lines += [_md_inline(block[1]), ""]
        elif kind == "table":
            header, body = block[1], block[2]
            lines.append("| " + " | ".join(_md_inline([h], True) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            for row in body:
                lines.append("| " + " | ".join(_md_inline(c, True) for c in row) + " |")
            lines.append("")
        elif kind == "image":
            lines += [f"![{block[1]}]({block[2]})", ""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td { font-family: ui-monospace, monospace; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0 1em; }
pre { background: #fbeeee; padding: 0.8em; overflow-x: auto; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
"""


def _render_html(blocks: list[tuple], title: str, run_dir: Path) -> str:
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "heading":
            body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "paragraph":
            body.append(f"<p>{_html_inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "image":
            # Embedded, so report.html can be mailed or attached on its own.
            data = base64.b64encode((run_dir / block[2]).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(block[1])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
            )
        elif kind == "code":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _format_bytes(count: int | None) -> str:
    if not count:
        return "unknown"
    return f"{count / 2**30:.1f} GiB"


def _paragraph(*parts: str | tuple[str, str]) -> tuple:
    return ("paragraph", list(parts))


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> tuple:
    """A table block; a cell is plain text or, for links, an inline list of parts."""
    return ("table", header, [[c if isinstance(c, list) else [str(c)] for c in r] for r in rows])


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _overview_blocks(summary: Mapping[str, Any], records: list[Mapping[str, Any]]) -> list[tuple]:
    ok = sum(r["status"] == "ok" for r in records)
    status = summary.get("status", "unknown")
    status_text = (
        f"all {len(records)} notebooks ran"
        if status == "ok"
        else f"{status.upper()}: {ok} of {len(records)} notebooks ran"
    )
    overrides = summary.get("overrides") or {}
    passed = ", ".join(f"{k}={_format_scalar(v)}" for k, v in overrides.items())
    blocks = [
        _paragraph(
            f"Status: {status_text}. Started {summary.get('started_at')}, finished "
            f"{summary.get('finished_at')}, {_seconds(summary.get('duration_s'))} in all."
        ),
        _paragraph(
            f"Parameters passed: {passed or 'none (defaults)'}. "
            f"Kernel: {summary.get('kernel', KERNEL_NAME)}."
        ),
    ]
    if summary.get("command"):
        blocks.insert(1, _paragraph(f"Command: {summary['command']}"))
    rows = []
    for r in records:
        links: _Inline = [("html", r["html"])] if r.get("html") else []
        if r.get("executed"):
            links += [" · "] if links else []
            links.append(("ipynb", r["executed"]))
        rows.append(
            [r["stem"], r["status"], _seconds(r.get("duration_s")), r.get("model") or "–", links]
        )
    header = ["notebook", "status", "time", "model", "output"]
    return blocks + [("heading", 2, "Notebooks"), _table(header, rows)]


def _environment_blocks(environment: Mapping[str, Any]) -> list[tuple]:
    versions = [("python", environment.get("python", "unknown"))]
    versions += [(n, v or "not installed") for n, v in environment.get("packages", {}).items()]
    gpu = environment.get("gpu", {})
    if gpu.get("devices"):
        names = ", ".join(d["name"] for d in gpu["devices"])
        gpu_text = f"{names} (CUDA {gpu.get('cuda_version')})"
    elif environment.get("nvidia_smi"):
        gpu_text = "; ".join(environment["nvidia_smi"]) + " (not usable by this torch build)"
    else:
        gpu_text = "Apple MPS" if gpu.get("torch_mps") else "none"
    cores = f"{environment.get('cpu_count')} ({environment.get('cpu_count_usable', '?')} usable)"
    machine = [
        ("platform", environment.get("platform", "unknown")),
        ("CPU cores", cores),
        ("memory", _format_bytes(environment.get("memory_bytes"))),
        ("GPU", gpu_text),
    ]
    return [
        ("heading", 2, "Environment"),
        _table(["package", "version"], versions),
        _table(["machine", "value"], machine),
    ]


def _notebook_blocks(record: Mapping[str, Any], run_dir: Path) -> list[tuple]:
    time_text = f" in {_seconds(record['duration_s'])}" if record.get("duration_s") else ""
    blocks = [
        ("heading", 2, record["stem"]),
        _paragraph(
            f"Status: {record['status']}{time_text}. "
            f"Model: {record.get('model') or 'not recorded'}."
        ),
    ]
    error = record.get("error")
    if error:
        where = ""
        if error.get("cell_index") is not None:
            where = f"cell {error['cell_index']}: {error.get('first_line', '')}\n"
        blocks.append(("code", where + error.get("exception", "")))
    if record.get("parameters"):
        overridden = set(record.get("overridden", []))

        def origin(name: str) -> str:
            if name == OUTPUT_DIR_PARAMETER:
                return "runner"
            return "passed" if name in overridden else "default"

        rows = [(n, _format_scalar(v), origin(n)) for n, v in record["parameters"].items()]
        blocks += [("heading", 3, "Parameters"), _table(["name", "value", "from"], rows)]
    metrics = _read_metrics(run_dir, record)
    if metrics:
        scalar_rows, tables = flatten_metrics(metrics)
        blocks.append(("heading", 3, "Metrics"))
        if scalar_rows:
            blocks.append(_table(["metric", "value"], scalar_rows))
        for key, columns, body, total in tables:
            shown = f" (first {len(body)} of {total})" if total > len(body) else ""
            blocks += [_paragraph(f"{key}{shown}:"), _table(columns, body)]
    elif record["status"] == "ok":
        blocks.append(_paragraph("No metrics.json was recorded."))
    figures = _figures(run_dir, record)
    if figures:
        blocks.append(("heading", 3, "Figures"))
        blocks += [("image", Path(f).stem, f) for f in figures]
    return blocks


def _report_blocks(summary: Mapping[str, Any], run_dir: Path) -> list[tuple]:
    records = summary.get("notebooks", [])
    blocks = [("heading", 1, f"Late chunking run {summary.get('run_name', run_dir.name)}")]
    blocks += _overview_blocks(summary, records)
    blocks += _environment_blocks(summary.get("environment", {}))
    for record in records:
        blocks += _notebook_blocks(record, run_dir)
    return blocks


def _read_metrics(run_dir: Path, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The notebook's metrics.json as it is on disk now, else what run.json captured."""
    path = run_dir / record["stem"] / METRICS_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return {"error": f"metrics.json is not valid JSON: {exc}"}
    return record.get("metrics")


def _figures(run_dir: Path, record: Mapping[str, Any]) -> list[str]:
    output_dir = run_dir / record["stem"]
    if output_dir.is_dir():
        return [p.relative_to(run_dir).as_posix() for p in sorted(output_dir.glob("*.png"))]
    return [f for f in record.get("figures", []) if (run_dir / f).is_file()]


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a run directory and return their paths.

    Reads ``run.json`` for the run's time, parameters, environment and notebook statuses, and
    each notebook's ``metrics.json`` and ``*.png`` from its output directory as they are now, so
    the report can be regenerated after the fact. ``report.md`` links the figures;
    ``report.html`` embeds them so it stands alone.
    """
    run_dir = Path(run_dir).resolve()
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise RunnerError(f"{run_file} does not exist; is {run_dir} a run written by the runner?")
    summary = json.loads(run_file.read_text(encoding="utf-8"))
    blocks = _report_blocks(summary, run_dir)
    markdown_path, html_path = run_dir / "report.md", run_dir / "report.html"
    markdown_path.write_text(_render_markdown(blocks), encoding="utf-8")
    title = f"Late chunking run {summary.get('run_name', run_dir.name)}"
    html_path.write_text(_render_html(blocks, title, run_dir), encoding="utf-8")
    return markdown_path, html_path


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
        cell = parameters_cell(_read_notebook(notebook))
        comments = _parameter_comments(cell.source) if cell is not None else {}
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
    hints = []
    declared_by_selected = {name for nb in selected for name in notebook_parameters(nb)}
    for name in params:
        if name in declared_by_selected:
            continue
        owners = [
            nb.stem for nb in notebooks if nb not in selected and name in notebook_parameters(nb)
        ]
        if owners:
            hints.append(f"{name} is declared by {', '.join(owners)}, which --only left out")
    return str(error) + ("\n" + "\n".join(hints) if hints else "")


def _command_line(argv: Sequence[str] | None) -> str:
    """The command as a user would retype it, for the report."""
    if argv is None:
        argv = sys.argv[1:]
        program = ["lc-run"] if Path(sys.argv[0]).name == "lc-run" else []
    else:
        program = []
    return shlex.join(
        (program or [Path(sys.executable).name, "-m", "lc_utils.runner"]) + list(argv)
    )


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
    _set_kernel_environment()
    if args.log_output:
        # papermill logs the kernels' output at INFO, which Python drops without a handler.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("    %(message)s"))
        logging.getLogger("papermill").addHandler(handler)
        logging.getLogger("papermill").setLevel(logging.INFO)
    probe = _start_environment_probe(args.kernel)
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
    records += [
        NotebookRecord(name=nb.name, stem=nb.stem, source=str(nb))
        for nb in selected[len(records) :]
    ]
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
        "environment": _finish_environment_probe(probe),
        "notebooks": [asdict(r) for r in records],
    }
    _write_run_json(run_dir, summary)
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
