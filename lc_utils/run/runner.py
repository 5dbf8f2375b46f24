"""Run every numbered notebook headlessly with papermill and write one report.

``python -m lc_utils.run`` executes ``notebooks/NN_*.ipynb`` in order into ``outputs/<run>/``,
each with its own ``OUTPUT_DIR`` (``outputs/<run>/<stem>/``), renders each executed copy to HTML,
writes ``run.json``, ``report.md`` and ``report.html``, and points ``outputs/latest`` at the run.
Runner, parameters and report import nothing of the method (``lc_utils`` loads lazily): the
runner reports a broken library.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat

from ..progress import RUNNER_CONSOLE_MARK, RUNNER_LABEL, to_console
from . import parameters, report
from .parameters import find_notebooks, notebook_parameters
from .report import KERNEL_NAME, OUTPUT_DIR_PARAMETER, RunnerError, write_report

# The hub's download bars and tokenizers' fork warnings clutter every executed notebook.
KERNEL_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


# Under the runner, a notebook whose console has been quiet this long gets a line saying that it
# still works: the library's bars speak every PROGRESS_EVERY_S, but not every cell has a bar.
HEARTBEAT_S = 20.0


@contextlib.contextmanager
def _heartbeat(label: str, mark: Path):
    """While the block runs, write ``label | still working, N s in`` to the console whenever
    nothing was written to it for `HEARTBEAT_S`: not by the runner, and not by a bar in the
    kernel, which touches ``mark`` (named in the kernel's ``LC_UTILS_RUNNER_CONSOLE_MARK``)."""
    mark.touch()
    os.environ[RUNNER_CONSOLE_MARK] = str(mark)
    started, stop = time.monotonic(), threading.Event()

    def beat() -> None:
        while not stop.wait(1.0):
            try:
                quiet = time.time() - mark.stat().st_mtime
            except OSError:
                continue
            if quiet >= HEARTBEAT_S:
                to_console(f"    {label} | still working, {time.monotonic() - started:.0f} s in")

    thread = threading.Thread(target=beat, name="lc-runner-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        os.environ.pop(RUNNER_CONSOLE_MARK, None)


def _kernel_transport(folder: str) -> dict[str, Any]:
    """papermill options that connect runner and kernel through Unix sockets in ``folder``.

    By default a Jupyter kernel listens on five TCP ports of 127.0.0.1, unencrypted, and ipykernel
    says so on the console for every notebook ("Kernel is running over TCP without encryption").
    ZeroMQ's ``ipc`` transport opens no port: the sockets are files in a private temporary folder
    (mode 0700), so only this user reaches them, and the warning has no cause left. Windows has
    no such transport; there the kernel keeps TCP on loopback, and the warning.
    """
    if os.name == "nt":
        return {}
    from jupyter_client.manager import AsyncKernelManager  # nbclient's default manager

    class LocalSocketKernelManager(AsyncKernelManager):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options, transport="ipc", ip=os.path.join(folder, "kernel"))

    return {"kernel_manager_class": LocalSocketKernelManager}


class NotebookExecutionError(RuntimeError):
    """A cell raised while papermill executed a notebook (the partial copy is saved).
    ``cell_index`` counts the *source* notebook's cells from 0; None for papermill's own cell."""

    def __init__(self, notebook: Path, executed: Path, cell_index: int | None, error: Any) -> None:
        self.notebook, self.executed_path, self.cell_index = notebook, executed, cell_index
        lines = [line for line in str(error.evalue).splitlines() if line.strip()]
        more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
        self.exception_line = f"{error.ename}: {lines[0][:300]}{more}" if lines else error.ename
        self.first_line = next((s.strip() for s in error.source.splitlines() if s.strip()), "")
        where = f" in cell {cell_index}" if cell_index is not None else ""
        first = f"    {self.first_line}\n" if self.first_line else ""
        super().__init__(
            f"notebook {notebook.name} failed{where}:\n{first}    {self.exception_line}\n"
            f"The partially executed notebook is saved at {executed}; open it for the traceback."
        )


def execute_notebook(
    path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    progress_bar: bool | dict[str, Any] = True,
    log_output: bool = False,
) -> Path:
    """Execute one notebook with papermill into ``output_dir/<name>.ipynb`` and return that path.

    ``OUTPUT_DIR`` is set to ``output_dir/<stem>/`` (created first); the kernel runs in the
    notebook's folder, with `KERNEL_ENVIRONMENT` (unless set) and, with a ``progress_bar`` (True
    or papermill's tqdm options), `RUNNER_LABEL`, and a heartbeat on the console after
    `HEARTBEAT_S` of silence; it talks to papermill through Unix sockets in a temporary folder,
    not TCP (`_kernel_transport`). Raises `NotebookExecutionError` when a cell
    raises, and `RunnerError` when the kernel is not installed or ``params`` sets ``OUTPUT_DIR``.
    """
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from papermill.exceptions import PapermillExecutionError

    path, output_dir, params = Path(path).resolve(), Path(output_dir).resolve(), dict(params or {})
    if OUTPUT_DIR_PARAMETER in params:
        raise RunnerError(f"{OUTPUT_DIR_PARAMETER} is derived from output_dir; do not pass it")
    (output_dir / path.stem).mkdir(parents=True, exist_ok=True)
    executed = output_dir / path.name
    for name, value in KERNEL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # the kernel inherits the runner's environment
    label = progress_bar.get("desc", path.stem) if isinstance(progress_bar, dict) else path.stem
    os.environ[RUNNER_LABEL] = label if progress_bar else ""  # empty: the bars stay quiet
    try:
        with contextlib.ExitStack() as stack:
            sockets = stack.enter_context(tempfile.TemporaryDirectory(prefix="lc-kernel-"))
            if progress_bar:
                stack.enter_context(_heartbeat(label, Path(sockets) / "console"))
            papermill.execute_notebook(
                path,
                executed,
                parameters={**params, OUTPUT_DIR_PARAMETER: str(output_dir / path.stem)},
                kernel_name=kernel_name,
                cwd=path.parent,
                progress_bar=progress_bar,
                log_output=log_output,
                **_kernel_transport(sockets),
            )
    except PapermillExecutionError as exc:
        # papermill puts its cell of parameters after the source's `parameters` cell, else first.
        tags = [cell.metadata.get("tags", []) for cell in nbformat.read(path, 4).cells]
        injected = next((i + 1 for i, t in enumerate(tags) if "parameters" in t), 0)
        index = None if exc.cell_index == injected else exc.cell_index - (exc.cell_index > injected)
        raise NotebookExecutionError(path, executed, index, exc) from exc
    except NoSuchKernel as exc:
        raise RunnerError(
            f"Jupyter kernel {kernel_name!r} is not installed; `python -m ipykernel install "
            f"--sys-prefix --name {kernel_name}` installs it (`make venv` does this)"
        ) from exc
    finally:
        os.environ.pop(RUNNER_LABEL, None)
    return executed


def run_notebooks(
    notebooks: Sequence[Path], run_dir: Path, params: Mapping[Path, Mapping[str, Any]], **options
) -> list[dict[str, Any]]:
    """Execute ``notebooks`` in order into ``run_dir`` (``options`` go to `execute_notebook`),
    render each to HTML, and stop at the first failure. Returns a record per notebook for
    ``run.json``, with status ``ok``, ``failed``, ``interrupted`` or ``not run``."""
    from nbconvert import HTMLExporter

    progress, records = options.pop("progress_bar", True), []
    for nb in notebooks:
        values = {**notebook_parameters(nb), **params[nb], OUTPUT_DIR_PARAMETER: run_dir / nb.stem}
        records.append({"name": nb.name, "stem": nb.stem, "status": "not run", "parameters": values,
                        "overridden": sorted(params[nb])})  # fmt: skip
    for position, (notebook, record) in enumerate(zip(notebooks, records, strict=True), 1):
        label = f"[{position}/{len(records)}] {notebook.stem}"
        if not progress:
            print(f"{label} ...", flush=True)
        bar, started = progress and {"desc": label, "leave": False}, time.perf_counter()
        try:
            execute_notebook(notebook, run_dir, params[notebook], progress_bar=bar, **options)
            record["status"] = "ok"
        except NotebookExecutionError as exc:
            record["status"], record["error"] = "failed", {"message": str(exc), **vars(exc)}
        except KeyboardInterrupt:
            record["status"] = "interrupted"
        except RunnerError:
            raise
        except Exception as exc:  # a dead kernel, an unreadable output...
            line = f"{type(exc).__name__}: {exc}".splitlines()[0]
            record["status"], record["error"] = "failed", {"exception_line": line}
        record["duration_s"] = round(time.perf_counter() - started, 2)
        if (run_dir / notebook.name).is_file():
            record["executed"] = notebook.name
            try:  # nbconvert puts the widget state papermill saved (progress bars) in the page
                body, _ = HTMLExporter().from_filename(run_dir / notebook.name)
                (run_dir / f"{notebook.stem}.html").write_text(body, encoding="utf-8")
                record["html"] = f"{notebook.stem}.html"
            except Exception as exc:  # a failed rendering must not lose the report
                print(f"warning: no HTML for {notebook.name}: {exc}", file=sys.stderr)
        print(f"{label} {record['status']} in {record['duration_s']:.1f} s", flush=True)
        if record["status"] != "ok":
            break
    return records


def _new_run_dir(output_root: Path, run_name: str | None) -> Path:
    """Create ``output_root/<run>`` (default: the time); never mix two runs in one folder."""
    run_dir = output_root / (run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if run_dir.name in ("", ".", "..", "latest") or run_name and Path(run_name).name != run_name:
        raise RunnerError(f"--run-name {run_name!r} must be a plain name other than 'latest'")
    if len(run_dir.name.encode("utf-8")) > 255:
        raise RunnerError(
            f"--run-name is {len(run_dir.name.encode('utf-8'))} bytes long; a folder name may "
            "have at most 255"
        )
    if run_dir.is_symlink():
        raise RunnerError(
            f"{run_dir} is a symlink (to {os.readlink(run_dir)}); the runner writes only inside "
            "--output-root, so remove it or pass another --run-name"
        )
    latest = output_root / "latest"
    if latest.exists() and not latest.is_symlink() and not latest.is_dir():
        raise RunnerError(
            f"{latest} is a file of yours, where the runner keeps a symlink to the newest run; "
            "move it away or choose another --output-root"
        )
    try:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunnerError(f"{run_dir} already holds a run; pass another --run-name")
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunnerError(
            f"cannot create the run folder {run_dir} under --output-root {output_root}: "
            f"{error.strerror or error}"
        ) from None
    return run_dir


def _point_latest_at(run_dir: Path) -> Path:
    """Make ``<output root>/latest`` a relative symlink to the run (atomically)."""
    latest, temporary = run_dir.parent / "latest", run_dir.parent / f".latest-{os.getpid()}"
    if (latest.exists() or latest.is_symlink()) and not latest.is_symlink():
        return latest  # a real folder or file of the user's: leave it alone
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(temporary, latest)
    return latest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lc_utils.run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute the numbered notebooks in order with papermill into "
        "OUTPUT_ROOT/RUN/, then write an HTML copy of each, report.md, report.html and run.json.",
        epilog="examples:\n  python -m lc_utils.run\n"
        "  python -m lc_utils.run --only 01,03 -p SEED 1 --run-name seed1\n"
        "  python -m lc_utils.run -p MILVUS_URI http://127.0.0.1:19530 --only 05\n"
        "  python -m lc_utils.run --list",
    )
    options = [
        ("-p", "--parameter", dict(nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
         help="set a parameter in every notebook that declares it (repeatable); VALUE is read "
         "like papermill's -p: numbers, True/False/None, [lists], else text")),
        ("--only", dict(action="append", metavar="LIST",
         help="notebook numbers or names to run, e.g. 01,03 (repeatable)")),
        ("--run-name", dict(metavar="NAME", help="name of the run folder (default: the time)")),
        ("--output-root", dict(type=Path, metavar="DIR",
         help="where run folders go (default: outputs/ beside the notebooks folder)")),
        ("--notebooks", dict(type=Path, metavar="DIR", dest="notebooks_dir",
         help="folder of numbered notebooks (default: ./notebooks, else the checkout's)")),
        ("--kernel", dict(default=KERNEL_NAME, help=f"Jupyter kernel (default {KERNEL_NAME})")),
        ("--no-progress", dict(action="store_true", help="no progress bars on the console")),
        ("--log-output", dict(action="store_true", help="echo all that the notebooks print")),
        ("--list", dict(action="store_true", help="list notebooks and parameters, then exit")),
    ]  # fmt: skip
    for *flags, keywords in options:
        parser.add_argument(*flags, **keywords)
    return parser


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    here = Path("notebooks")  # ./notebooks, else the checkout's
    default = here if here.is_dir() else Path(__file__).resolve().parents[1] / here
    notebooks_dir = (args.notebooks_dir or default).resolve()
    notebooks = find_notebooks(notebooks_dir)
    if not notebooks:
        raise RunnerError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    selected = parameters.select_notebooks(notebooks, args.only)
    if args.list:  # papermill's reading of each parameters cell: source text and comment
        import papermill

        for notebook in selected:
            print(notebook.name)
            for name, spec in papermill.inspect_notebook(notebook).items():
                comment = f"  # {spec['help']}" if spec["help"] else ""
                print(f"    {name} = {spec['default']}{comment}")
        return 0
    params = dict(args.parameter)
    left_out = [nb for nb in notebooks if nb not in selected]
    resolved = parameters.validate_parameters(selected, params, left_out)
    output_root = (args.output_root or notebooks_dir.parent / "outputs").resolve()
    run_dir = _new_run_dir(output_root, args.run_name)
    if args.log_output:  # papermill logs what the kernel prints at INFO, dropped by default
        logging.basicConfig(level=logging.INFO, format="    %(message)s", stream=sys.stdout)
    probe = ThreadPoolExecutor(1).submit(report.probe_environment, args.kernel, notebooks_dir)
    started_at, started = dt.datetime.now().astimezone(), time.perf_counter()
    print(f"Running {len(selected)} notebook(s) from {notebooks_dir} into {run_dir}", flush=True)
    records = run_notebooks(
        selected, run_dir, resolved, kernel_name=args.kernel, progress_bar=not args.no_progress,
        log_output=args.log_output,
    )  # fmt: skip
    failed = next((r for r in records if r["status"] not in ("ok", "not run")), None)
    run = {
        "run_name": run_dir.name,
        "status": failed["status"] if failed else "ok",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 2),
        "command": shlex.join(["python", "-m", "lc_utils.run", *argv]),
        "kernel": args.kernel,
        "overrides": params,
        "environment": probe.result(),
        "notebooks": records,
    }
    (run_dir / report.RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n", "utf-8")
    markdown, page = write_report(run_dir)
    latest = _point_latest_at(run_dir)
    if run["environment"].get("library_error"):
        print(f"lc_utils does not import: {run['environment']['library_error']}", file=sys.stderr)
    if failed:
        reason = failed.get("error", {}).get("message", f"{failed['name']} {failed['status']}")
        print(reason, file=sys.stderr)
        if skipped := [r["stem"] for r in records if r["status"] == "not run"]:
            print(f"Not run: {', '.join(skipped)}.", file=sys.stderr)
        print(f"Report of what did run: {markdown}", file=sys.stderr)
        return 130 if failed["status"] == "interrupted" else 1
    print(f"Done in {run['duration_s']:.1f} s. Report: {markdown} and {page.name}")
    print(f"{latest} -> {run_dir.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m lc_utils.run`` and ``lc-run``. Returns 0 when every notebook
    ran, 1 when one failed (the run stops there; the report covers what ran), 2 for bad options
    or parameters (nothing runs), 130 when interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(_parser().parse_args(argv), argv)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
