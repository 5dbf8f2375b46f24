"""Small helpers every notebook uses to make a run reproducible and to record what it measured.

A notebook seeds everything with `set_seed`, writes its numbers with `save_metrics` to
``OUTPUT_DIR/metrics.json`` and its plots with `save_figure` to ``OUTPUT_DIR/<name>.png``. The
runner (`lc_utils.run`) gives each notebook its own ``OUTPUT_DIR`` and gathers these files into
the run's report, and the notebook tests assert on the recorded ``metrics.json``.

A notebook's claim goes under the key ``"summary"``: ``{"claim": text, "held": bool,
"headline": {"label": text, "value": number}, "figure": file name or None}``, where ``held`` is
the notebook's own test of the claim on this run's numbers and the headline is the number the
claim is about. A headline that is an estimate may also carry its interval, ``"low"`` and
``"high"`` (for a paired difference, those of `lc_utils.eval.stats.paired_difference`); without
them the report takes the interval beside an equal ``"mean"`` elsewhere in the same file.

This module imports nothing heavy at import time: torch and matplotlib are only touched when a
helper that needs them is called.

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METRICS_FILE",
    "FIGURE_DPI",
    "set_seed",
    "prepare_output_dir",
    "save_metrics",
    "load_metrics",
    "save_figure",
    "to_jsonable",
]

METRICS_FILE = "metrics.json"
FIGURE_DPI = 120
# Six significant digits keep metrics.json readable and stable across BLAS builds, while staying
# far finer than any difference the notebooks interpret (cosines, nDCG, timings).
_SIGNIFICANT_DIGITS = 6
_FIGURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def set_seed(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and every GPU).

    With ``deterministic=True`` the cuDNN autotuner is switched off and cuDNN is asked for
    deterministic kernels; both are free on CPU and cheap on GPU. Full
    ``torch.use_deterministic_algorithms`` is left alone on purpose: on GPU it needs an environment
    variable set before CUDA starts and raises on some operations, which a notebook reader should
    not have to debug. ``PYTHONHASHSEED`` cannot be changed from inside a running interpreter, so
    set ordering never depends on it in this package.

    Args:
        seed: a non-negative integer, usually the notebook's ``SEED`` parameter.
        deterministic: also configure torch's cuDNN flags for repeatable GPU runs.

    Returns:
        A fresh ``numpy.random.Generator`` seeded with ``seed``, for code that prefers an explicit
        generator over the global state.

    Introduced in notebook 01_chunking.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    # The legacy global generator only takes 32-bit seeds; fold larger ones rather than fail.
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding must not be what breaks without it
        torch = None
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device
        if deterministic:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
    return np.random.default_rng(seed)


def prepare_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create the directory a notebook writes its metrics and figures into, and return it.

    Relative paths are resolved against the current working directory (for a notebook, the
    ``notebooks/`` folder), so the returned path is absolute and safe to print in the report.

    Introduced in notebook 01_chunking.
    """
    if path is None or str(path).strip() == "":
        raise ValueError(
            "OUTPUT_DIR is empty; set it in the notebook's parameters cell or run the notebook "
            "through `python -m lc_utils.run`, which sets it for you"
        )
    output_dir = Path(path).expanduser().resolve()
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"OUTPUT_DIR {output_dir} exists and is a file; pick a directory")
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def _round_float(value: float, key: str) -> float | None:
    if math.isnan(value) or math.isinf(value):
        # Strict JSON has no NaN/Infinity; null keeps the file loadable everywhere, and the
        # warning keeps a silently broken metric from going unnoticed.
        warnings.warn(f"metric {key or '<root>'} is {value}; stored as null", stacklevel=3)
        return None
    if value == 0.0:
        return 0.0
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")


def to_jsonable(value: Any, key: str = "") -> Any:
    """Convert a metrics value into plain JSON types.

    NumPy scalars and arrays, torch tensors, tuples, sets, paths and dataclasses become numbers,
    lists, strings and dicts; floats are rounded to six significant digits; NaN and infinities
    become ``null`` with a warning; dict keys become strings. ``key`` names the value in messages.

    Introduced in notebook 01_chunking.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _round_float(float(value), key)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), key)
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch.Tensor, without importing it
        return to_jsonable(value.detach().cpu().tolist(), key)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), key)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, key) for v in sorted(value, key=repr)]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"metric {key or '<root>'} has type {type(value).__name__}, which cannot be stored in "
        "metrics.json; convert it to a number, string, list or dict first"
    )


def save_metrics(
    metrics: Mapping[str, Any], output_dir: str | os.PathLike[str], *, merge: bool = False
) -> Path:
    """Write ``metrics`` to ``output_dir/metrics.json`` and return the file's path.

    Values go through `to_jsonable` (NumPy and torch values converted, floats rounded to six
    significant digits) and keys are sorted, so two runs that measured the same numbers write
    byte-identical files. Put the resolved model name under the key ``model``: the runner's report
    reads it from there. With ``merge=True`` the top-level keys are added to an existing file
    instead of replacing it, for notebooks that record metrics section by section.

    Introduced in notebook 01_chunking.
    """
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of name -> value, got {type(metrics).__name__}")
    output_dir = prepare_output_dir(output_dir)
    path = output_dir / METRICS_FILE
    record = to_jsonable(metrics)
    if merge and path.exists():
        record = {**load_metrics(output_dir), **record}
    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
    # Write then rename, so a notebook interrupted mid-write never leaves half a JSON file for
    # the report or the tests to choke on.
    temporary = output_dir / f".{METRICS_FILE}.{os.getpid()}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def load_metrics(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``output_dir/metrics.json`` (or a path to the file itself) back into a dict.

    Introduced in notebook 01_chunking.
    """
    path = Path(output_dir)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; did the notebook call save_metrics?")
    return json.loads(path.read_text(encoding="utf-8"))


def _figure_of(fig: Any) -> Any:
    """Accept a matplotlib Figure, an Axes, or a seaborn grid (anything with ``.figure``)."""
    from matplotlib.figure import Figure

    if isinstance(fig, Figure):
        return fig
    inner = getattr(fig, "figure", None)
    if isinstance(inner, Figure):
        return inner
    raise TypeError(
        f"save_figure needs a matplotlib Figure, Axes or seaborn grid, got {type(fig).__name__}"
    )


def _figure_title(fig: Any) -> str:
    if fig.get_suptitle().strip():  # Figure.get_suptitle exists from matplotlib 3.8
        return fig.get_suptitle().strip()
    for ax in fig.get_axes():
        for loc in ("center", "left", "right"):
            title = ax.get_title(loc=loc).strip()
            if title:
                return title
    return ""


def save_figure(fig: Any, output_dir: str | os.PathLike[str], name: str) -> Path:
    """Save ``fig`` as ``output_dir/<name>.png`` (120 dpi, tight bounding box) and return the path.

    The house style asks every figure for a title and labelled axes, because the saved PNG ends up
    in the run's report without the notebook's narration around it. A figure with no title at all
    (neither ``fig.suptitle`` nor any axes title) is refused; axes that are visible but lack an x
    or y label only raise a warning, since some plots (heatmaps of named rows) label themselves.
    The figure is not closed, so it still shows inline in the notebook.

    Args:
        fig: a matplotlib ``Figure``, an ``Axes``, or a seaborn grid.
        output_dir: the notebook's ``OUTPUT_DIR``; created if missing.
        name: a file name such as ``"cosine_by_chunk"``; ``.png`` is added if absent.

    Introduced in notebook 01_chunking.
    """
    figure = _figure_of(fig)
    stem = name[:-4] if name.lower().endswith(".png") else name
    if not _FIGURE_NAME.match(stem):
        raise ValueError(
            f"figure name {name!r} must be a plain file name of letters, digits, '_', '-' or '.', "
            "for example 'cosine_by_chunk'"
        )
    if not _figure_title(figure):
        raise ValueError(
            f"figure {stem!r} has no title; call ax.set_title(...) or fig.suptitle(...) first, "
            "since the report shows the PNG without the notebook's text around it"
        )
    for index, ax in enumerate(figure.get_axes()):
        # Colorbars and hidden axes carry no data axes to label.
        if not ax.get_visible() or not ax.axison or ax.get_label() == "<colorbar>":
            continue
        missing = [axis for axis in ("x", "y") if not getattr(ax, f"get_{axis}label")().strip()]
        if missing:
            warnings.warn(
                f"figure {stem!r}, axes {index}: no {' or '.join(missing)} label; "
                "label the axes so the saved PNG reads on its own",
                stacklevel=2,
            )
    path = prepare_output_dir(output_dir) / f"{stem}.png"
    figure.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    return path
