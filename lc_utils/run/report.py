"""The record of a run: the environment it ran in, and the report.

`write_report` renders ``report.md`` and ``report.html`` from ``run.json``, each notebook's
``metrics.json`` (its ``"summary"`` opens the report) and figures, with the Jinja2 templates in
``lc_utils/run/templates/``. Like the runner, this module imports nothing of the method.

Each summary row shows the claim, whether it held (the notebook's own test, in the cell that
records the summary) and the headline number to three significant digits, with its interval:
the headline's ``low`` and ``high`` where the notebook recorded them, else the ``low`` and
``high`` beside a ``mean`` equal to the headline's value elsewhere in the same ``metrics.json``
(a paired difference from `lc_utils.eval.stats.paired_difference`). A headline with neither is
an exact measurement on fixed inputs and has no interval.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..outputs import METRICS_FILE

KERNEL_NAME = "lc-utils"
OUTPUT_DIR_PARAMETER = "OUTPUT_DIR"
RUN_FILE = "run.json"
# Versions that change numbers or behaviour; the report lists them next to the results.
REPORT_PACKAGES = ("torch", "transformers", "tokenizers", "spacy", "numpy", "pymilvus")
REPORT_PACKAGES += ("milvus-lite", "papermill", "ipywidgets")


class RunnerError(Exception):
    """A problem with the runner's inputs (notebooks, parameters, paths), found before running."""


# Runs in the kernel's interpreter, so the versions are those the notebooks used. It imports the
# library's whole public API, so that a broken lc_utils is named in the report.
_PROBE = """
import importlib.metadata as md, json, os, platform, sys, traceback
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
env = {"python": platform.python_version(), "platform": platform.platform(),
       "cpu_count": os.cpu_count(), "packages": {n: version(n) for n in sys.argv[1:]},
       "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "gpu": []}
try:
    import lc_utils
    [getattr(lc_utils, name) for name in lc_utils.__all__]
    env["library_error"] = None
    import torch
    env["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
except BaseException as exc:
    env.setdefault("library_error", traceback.format_exception_only(exc)[-1].strip())
print(json.dumps(env))
"""


def probe_environment(kernel_name: str, cwd: Path | None = None) -> dict[str, Any]:
    """The kernel's interpreter, probed for ``run.json``'s ``environment``: packages, machine,
    GPU, and whether ``import lc_utils`` works (the runner probes while the notebooks run)."""
    try:
        from jupyter_client.kernelspec import get_kernel_spec

        python = get_kernel_spec(kernel_name).argv[0]
    except Exception:  # no such kernel: the run itself will say so
        python = sys.executable
    command = [sys.executable if "{" in python else python, "-c", _PROBE, *REPORT_PACKAGES]
    try:
        probe = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
        if probe.returncode:
            return {"probe_error": probe.stderr[-500:]}
        return json.loads(probe.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return {"probe_error": repr(exc)}


def _text(value: Any, limit: int = 120) -> str:
    """A JSON value on one line: floats to 6 digits, lists past 8 items cut, with their count."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, list) and len(value) > 8:
        text = f"[{', '.join(_text(v, 40) for v in value[:8])}, … ({len(value)} items)]"
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted.key, text)`` for every leaf of a metrics dict, in key order; nested dicts give
    dotted keys, long lists are cut and keep their length."""
    rows = []
    for key in sorted(metrics, key=str):
        if isinstance(metrics[key], Mapping) and metrics[key]:
            rows += flatten_metrics(metrics[key], f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", _text(metrics[key])))
    return rows


def significant(value: Any, digits: int = 3) -> str:
    """A headline number as the summary writes it: ``digits`` significant digits for a float
    (``0.0418``, ``-0.122``, ``1.00``), an integer or anything else as it is."""
    if isinstance(value, float):
        return f"{value:#.{digits}g}".replace("-", "−")
    return str(value)


def _intervals(value: Any, path: str = "") -> list[tuple[str, Any, Any, Any]]:
    """``(path, mean, low, high)`` of every dict in ``value`` (nested dicts and lists) that has
    the keys ``mean``, ``low`` and ``high``; ``path`` is written ``a/b/0``."""
    found = []
    if isinstance(value, Mapping):
        if {"mean", "low", "high"} <= value.keys():
            found.append((path, value["mean"], value["low"], value["high"]))
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    for key, item in items:
        found += _intervals(item, f"{path}/{key}" if path else str(key))
    return found


def headline_of(summary: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's headline with its interval (``low``, ``high``, ``interval_of``: where it was
    found) and ``text``, the line the report prints: ``label: value [low, high]``.

    The interval is the headline's own ``low`` and ``high`` when recorded. Otherwise it is taken
    from ``metrics``: the ``low`` and ``high`` beside every ``mean`` equal to the headline's
    value (``save_metrics`` rounds both the same way), used only when all such places agree.
    """
    headline = dict(summary.get("headline") or {})
    if "value" not in headline:  # nothing to show but a label, if that
        return {**headline, "text": str(headline.get("label") or "")}
    value = headline["value"]
    if "low" not in headline and isinstance(value, int | float) and not isinstance(value, bool):
        matches = [item for item in _intervals(metrics) if item[1] == value]
        if matches and len({(low, high) for _, _, low, high in matches}) == 1:
            headline["interval_of"], _, headline["low"], headline["high"] = matches[0]
    number = significant(value)
    low, high = headline.get("low"), headline.get("high")
    if isinstance(low, int | float) and isinstance(high, int | float):
        number += f" [{significant(low)}, {significant(high)}]"
    label = headline.get("label")
    headline["text"] = f"{label}: {number}" if label else number
    return headline


def _notebook(record: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """A notebook's record, with its summary, metrics and figures as they are on disk now."""
    try:
        metrics = json.loads((run_dir / record["stem"] / METRICS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        metrics = {}
    metrics = metrics if isinstance(metrics, dict) else {"metrics.json": metrics}
    summary = metrics.pop("summary", None)
    summary = dict(summary) if isinstance(summary, Mapping) and "claim" in summary else None
    figures = sorted((run_dir / record["stem"]).glob("*.png"))
    if summary:  # the key figure is a file name in the notebook's OUTPUT_DIR
        figure = f"{record['stem']}/{summary.get('figure')}"
        summary["figure"] = figure if (run_dir / figure) in figures else None
        summary["headline"] = headline_of(summary, metrics)
    return {
        **record,
        "model": metrics.get("model") or record["parameters"].get("MODEL_NAME"),
        "summary": summary,
        "metrics": flatten_metrics(metrics),
        "figures": [figure.relative_to(run_dir).as_posix() for figure in figures],
        "parameters": {k: _text(v) for k, v in record["parameters"].items()},
    }


def status_line(run: Mapping[str, Any], notebooks: list[Mapping[str, Any]]) -> str:
    """The report's first line: how many notebooks ran and how many of their claims held, e.g.
    ``All 11 notebooks ran; 9 of 11 claims held``."""
    total, ran = len(notebooks), sum(nb.get("status") == "ok" for nb in notebooks)
    plural = "s" if total != 1 else ""
    if run.get("status") == "ok":
        line = f"All {total} notebook{plural} ran"
    else:
        line = f"{str(run.get('status')).upper()}: {ran} of {total} notebook{plural} ran"
    verdicts = [nb["summary"].get("held") for nb in notebooks if nb.get("summary")]
    held = sum(verdict is True for verdict in verdicts)
    claims = f"{held} of {len(verdicts)} claim{'s' if len(verdicts) != 1 else ''} held"
    return f"{line}; {claims}" if verdicts else f"{line}; no claims recorded"


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a run directory (again, if need be) from its
    files as they are now, and return their paths. The page embeds the figures: it stands alone."""
    import jinja2

    run_dir = Path(run_dir).resolve()
    if not (run_dir / RUN_FILE).is_file():
        raise RunnerError(f"{run_dir / RUN_FILE} does not exist; is {run_dir} a runner's run?")
    run = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))

    def embed(path: str) -> str:
        figure = run_dir / path
        data = base64.b64encode(figure.read_bytes()).decode() if figure.is_file() else ""
        return f"data:image/png;base64,{data}"

    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("lc_utils.run", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )
    templates.filters.update(
        embed=embed,
        cell=lambda value: " ".join(str(value).split()).replace("|", "\\|"),
        text=_text,
        seconds=lambda value: f"{value:.1f} s" if isinstance(value, int | float) else "–",
    )
    notebooks = [_notebook(record, run_dir) for record in run.get("notebooks", [])]
    context = {"run": run, "notebooks": notebooks, "environment": run.get("environment", {})}
    context["status_line"] = status_line(run, notebooks)
    context["title"] = f"Late chunking run {run.get('run_name', run_dir.name)}"
    paths = run_dir / "report.md", run_dir / "report.html"
    for path in paths:
        path.write_text(templates.get_template(f"{path.name}.j2").render(context), "utf-8")
    return paths
