"""The report of a run: environment probe, HTML copies of notebooks, run.json and report.md/.html.

`lc_utils.runner` executes the notebooks; this module records what it did. It starts a probe of
the kernel's interpreter (package versions, CPU, memory, GPU) before the first notebook, renders
each executed notebook to HTML, writes ``run.json``, and turns that file plus each notebook's
``metrics.json`` and figures into ``report.md`` and ``report.html``. `write_report` reads only
what is on disk, so a report can be regenerated after the fact.

Like the runner, this module imports nothing from the rest of ``lc_utils`` and not the runner
either (the runner imports it), so the names both need are defined here and re-exported there.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat

__all__ = [
    "KERNEL_NAME",
    "METRICS_FILE",
    "OUTPUT_DIR_PARAMETER",
    "REPORT_PACKAGES",
    "RUN_FILE",
    "RunnerError",
    "figure_paths",
    "finish_environment_probe",
    "flatten_metrics",
    "read_metrics",
    "render_html",
    "start_environment_probe",
    "write_report",
    "write_run_json",
]

KERNEL_NAME = "lc-utils"
OUTPUT_DIR_PARAMETER = "OUTPUT_DIR"
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


class RunnerError(Exception):
    """A problem with the runner's inputs (notebooks, parameters, paths), found before running."""


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


def start_environment_probe(kernel_name: str) -> subprocess.Popen[str]:
    """Start probing the interpreter that ``kernel_name`` launches; `finish_environment_probe`
    collects the answer.

    Started before the first notebook and read after the last, so importing torch to look for a
    GPU costs the run no time.
    """
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


def finish_environment_probe(probe: subprocess.Popen[str] | None) -> dict[str, Any]:
    """The probe's findings (or ``probe_error``), completed from the runner's own interpreter,
    for ``run.json``'s ``environment``."""
    environment: dict[str, Any] = {}
    if probe is not None:
        try:
            stdout, stderr = probe.communicate(timeout=120)
            if probe.returncode == 0:
                environment = json.loads(stdout)
            else:
                environment = {"probe_error": stderr.strip().splitlines()[-1:] or ["unknown"]}
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
# Files of a run: an HTML copy of each executed notebook, and run.json


def render_html(executed_notebook: str | os.PathLike[str]) -> Path:
    """Render an executed notebook to HTML next to it (``<stem>.html``) and return that path."""
    from nbconvert import HTMLExporter

    executed_notebook = Path(executed_notebook)
    notebook = nbformat.read(os.fspath(executed_notebook), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    html_path = executed_notebook.with_suffix(".html")
    html_path.write_text(body, encoding="utf-8")
    return html_path


def write_run_json(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write a run's summary to ``run_dir/run.json``, the file `write_report` reads."""
    path = run_dir / RUN_FILE
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# report.md and report.html


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
        )
    ]
    if summary.get("command"):
        blocks.append(_paragraph(f"Command: {summary['command']}"))
    blocks.append(
        _paragraph(
            f"Parameters passed: {passed or 'none (defaults)'}. "
            f"Kernel: {summary.get('kernel', KERNEL_NAME)}."
        )
    )
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
    metrics = read_metrics(run_dir, record)
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
    figures = figure_paths(run_dir, record)
    if figures:
        blocks.append(("heading", 3, "Figures"))
        blocks += [("image", Path(f).stem, f) for f in figures]
    return blocks


def _report_blocks(summary: Mapping[str, Any], run_dir: Path, title: str) -> list[tuple]:
    records = summary.get("notebooks", [])
    blocks = [("heading", 1, title)]
    blocks += _overview_blocks(summary, records)
    blocks += _environment_blocks(summary.get("environment", {}))
    for record in records:
        blocks += _notebook_blocks(record, run_dir)
    return blocks


def read_metrics(run_dir: Path, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """A notebook's ``metrics.json`` as it is on disk now, else what its record captured.

    ``record`` is the notebook's entry in ``run.json`` (at least its ``stem``).
    """
    path = run_dir / record["stem"] / METRICS_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return {"error": f"metrics.json is not valid JSON: {exc}"}
    return record.get("metrics")


def figure_paths(run_dir: Path, record: Mapping[str, Any]) -> list[str]:
    """A notebook's ``*.png`` figures, as posix paths relative to ``run_dir``, in name order.

    Read from its output directory when that exists, else the record's ``figures`` still on disk.
    """
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
    title = f"Late chunking run {summary.get('run_name', run_dir.name)}"
    blocks = _report_blocks(summary, run_dir, title)
    markdown_path, html_path = run_dir / "report.md", run_dir / "report.html"
    markdown_path.write_text(_render_markdown(blocks), encoding="utf-8")
    html_path.write_text(_render_html(blocks, title, run_dir), encoding="utf-8")
    return markdown_path, html_path
