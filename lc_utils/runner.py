"""Run every numbered notebook headlessly with papermill and gather one report.

``python -m lc_utils.runner`` (or ``lc-run``) executes ``notebooks/NN_*.ipynb`` in order into
``outputs/<run>/``. Each notebook gets its own ``OUTPUT_DIR`` (``outputs/<run>/<notebook stem>/``)
where it records ``metrics.json`` and its figures; afterwards the runner renders every executed
notebook to HTML and writes ``report.md``, ``report.html`` and ``run.json`` for the run, and points
``outputs/latest`` at it. Parameters pass through to every notebook that declares them; names that
no notebook declares are refused before anything runs, because papermill itself only logs them.

Finding notebooks and checking their parameters live in `lc_utils.parameters`; writing
``run.json`` and the reports, and probing the environment, in `lc_utils.report`, whose public
names are re-exported here. These three modules deliberately import nothing else from
``lc_utils``: the runner must be able to run, list and strip notebooks even while the library
they exercise is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

# Notebook discovery and parameters live in lc_utils.parameters. The report's public names
# stay importable from the runner (unused ones included: noqa).
from lc_utils.parameters import (
    PARAMETERS_TAG,
    UnknownParameterError,
    _DropUnparsedLine,
    _filtered,
    _parameter_comments,
    _parameters_source,
    _ParameterText,
    _read_notebook,
    default_notebooks_dir,
    find_notebooks,
    load_parameter_file,
    notebook_parameters,
    parameter_assignments,
    parameters_cell,
    select_notebooks,
    validate_parameters,
)
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
    "execute_notebook",
    "flatten_metrics",
    "main",
    "run_notebooks",
    "strip_notebook",
    "write_report",
]

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
