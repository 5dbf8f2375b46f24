"""The notebooks of a run and their parameters, read by papermill's ``inspect_notebook``.

papermill only *logs* a passed name that a notebook does not declare, so a typo would run
silently with the default: `validate_parameters` refuses it, listing the valid names, before
anything runs, and fits each value to the type of the notebook's default.
"""

from __future__ import annotations

import ast
import contextlib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .report import OUTPUT_DIR_PARAMETER, RunnerError

PARAMETERS_TAG = "parameters"
NOTEBOOK_PATTERN = re.compile(r"^(?P<number>\d{2}[a-z]?)_[A-Za-z0-9_-]+\.ipynb$")


class UnknownParameterError(RunnerError):
    """A parameter was passed that no selected notebook declares in its ``parameters`` cell."""


def find_notebooks(notebooks_dir: str | os.PathLike[str]) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``, ``NNa_name.ipynb``) in a directory, in order."""
    if not Path(notebooks_dir).is_dir():
        raise RunnerError(f"notebooks directory {notebooks_dir} does not exist; pass --notebooks")
    return sorted(p for p in Path(notebooks_dir).iterdir() if NOTEBOOK_PATTERN.match(p.name))


def select_notebooks(notebooks: Sequence[Path], only: str | Iterable[str] | None) -> list[Path]:
    """The notebooks named in ``only`` (numbers such as ``"01,03a"`` or stems), in run order.
    A number matches exactly: ``03`` selects ``03_x`` but not ``03a_y``."""
    if only is None:
        return list(notebooks)
    items = [only] if isinstance(only, str) else only
    wanted = {t.strip().removesuffix(".ipynb") for item in items for t in item.split(",")} - {""}
    if not wanted:
        raise RunnerError("--only is empty; give notebook numbers such as --only 01,03")
    names = {nb: {nb.stem, NOTEBOOK_PATTERN.match(nb.name)["number"]} for nb in notebooks}
    if unknown := sorted(wanted - set().union(*names.values())):
        stems = ", ".join(nb.stem for nb in notebooks) or "none"
        raise RunnerError(f"--only {', '.join(unknown)} matches no notebook; available: {stems}")
    return [nb for nb in notebooks if names[nb] & wanted]


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{name: default}`` in cell order, from papermill's reading of the parameters cell; a
    default that is not a literal stays source text."""
    import papermill

    return {name: _literal(p["default"]) for name, p in papermill.inspect_notebook(path).items()}


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def parse_parameter_value(text: str) -> Any:
    """Read a ``-p NAME VALUE`` value like papermill's CLI: ``True``/``False``/``None`` (and
    ``true``/``false``/``null``), numbers, ``[...]``/``{...}`` as YAML; anything else is text."""
    from papermill.iorw import NoDatesSafeLoader  # YAML that never turns text into dates

    stripped = text.strip()
    keywords = {"True": True, "true": True, "False": False, "false": False, "None": None}
    if stripped in keywords or stripped in ("null", "~"):
        return keywords.get(stripped)
    for number in (int, float):
        with contextlib.suppress(ValueError):
            return number(stripped)
    if not stripped.startswith(("[", "{")):
        return str(text)
    try:
        return yaml.load(stripped, Loader=NoDatesSafeLoader)
    except yaml.YAMLError as exc:
        raise RunnerError(f"cannot parse {text!r} as a list or mapping: {exc}") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# A bound declared at the end of a parameter's comment, e.g. ``N_DOCUMENTS = 0  # ... [min 0]``
# (min, max, under, over); for a list it holds for every item. Words, not ">=": papermill skips
# a parameter line that holds a second "=".
BOUND_PATTERN = re.compile(r"\[(min|max|under|over)\s+(-?\d+(?:\.\d+)?)\]")
_OPERATORS = {"min": ">=", "max": "<=", "under": "<", "over": ">"}
_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def parameter_bounds(path: str | os.PathLike[str]) -> dict[str, list[tuple[str, float]]]:
    """``{name: [(operator, limit), ...]}`` for the parameters whose comment declares bounds."""
    import papermill

    bounds = {}
    for name, parameter in papermill.inspect_notebook(path).items():
        found = BOUND_PATTERN.findall(parameter.get("help") or "")
        if found:
            bounds[name] = [(_OPERATORS[word], float(limit)) for word, limit in found]
    return bounds


def _type_error(name: str, default: Any, value: Any, notebook: Path, why: str = "") -> RunnerError:
    return RunnerError(
        f"{name} expects {type(default).__name__} in {notebook.name} (default {default!r}); "
        f"got {value!r}{why}"
    )


def _fit_one(name: str, value: Any, default: Any, notebook: Path) -> Any:
    """``value`` if it has the type of ``default``: a bool stays a bool, an int an int (never a
    float), a float takes ints and floats, text takes text, a list a list; numbers are finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _type_error(name, default, value, notebook, " (not a finite number)")
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = _is_number(value)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise _type_error(name, default, value, notebook)
    if isinstance(default, list) and default and value:
        kinds = {type(item) for item in default}
        if len(kinds) == 1:
            value = [
                _fit_one(f"{name}[{i}]", item, default[0], notebook) for i, item in enumerate(value)
            ]
    return value


def _fit(
    name: str, value: Any, default: Any, notebook: Path, bounds: Sequence[tuple[str, float]] = ()
) -> Any:
    """Fit a passed value to the type of the notebook's default and to its declared bounds, or
    say why it does not fit. Text is read by `parse_parameter_value` unless the default is text
    too (so ``-p MILVUS_TOKEN 0123`` stays ``"0123"``)."""
    if isinstance(value, str) and not isinstance(default, str):
        value = parse_parameter_value(value)
    value = _fit_one(name, value, default, notebook)
    for item in value if isinstance(value, list) else [value]:
        for operator, limit in bounds:
            if _is_number(item) and not _COMPARE[operator](item, limit):
                shown = int(limit) if limit.is_integer() else limit
                raise RunnerError(
                    f"{name} must be {operator} {shown} in {notebook.name}; got {value!r}"
                )
    return value


def validate_parameters(
    notebooks: Sequence[str | os.PathLike[str]],
    params: Mapping[str, Any],
    left_out: Sequence[str | os.PathLike[str]] = (),
) -> dict[Path, dict[str, Any]]:
    """Check ``params`` against the notebooks and return ``{notebook: {name: value}}``.

    Every name must be declared by at least one of ``notebooks``, else `UnknownParameterError`
    lists the valid names, and the notebooks of ``left_out`` (those --only left out) that declare
    it. A parameter goes to every notebook that declares it, fitted to that notebook's default
    and bounds (`_fit`: an int default takes only ints, a bool only bools, a list only lists,
    no number may be NaN or infinite, and a bound such as ``[min 0]`` in the parameter's comment
    holds). ``OUTPUT_DIR`` is refused: the runner sets it per notebook.
    """
    if OUTPUT_DIR_PARAMETER in params:
        raise RunnerError(
            f"{OUTPUT_DIR_PARAMETER} is set by the runner for each notebook "
            "(outputs/<run>/<notebook>/); choose the location with --output-root and --run-name"
        )
    declared = {Path(nb): notebook_parameters(nb) for nb in notebooks}
    valid = set().union(*declared.values()) - {OUTPUT_DIR_PARAMETER}
    if unknown := sorted(set(params) - valid):
        one = len(unknown) == 1
        message = (
            f"unknown parameter{'' if one else 's'} {', '.join(unknown)}: no notebook in this run "
            f"declares {'it' if one else 'them'} in its '{PARAMETERS_TAG}' cell. Valid names: "
            f"{', '.join(sorted(valid)) or 'none'}. See them per notebook with --list."
        )
        for name in unknown:
            if owners := [Path(nb).stem for nb in left_out if name in notebook_parameters(nb)]:
                message += f"\n{name} is declared by {', '.join(owners)}, which --only left out"
        raise UnknownParameterError(message)
    fitted = {}
    for nb, defaults in declared.items():
        bounds = parameter_bounds(nb)
        fitted[nb] = {
            n: _fit(n, v, defaults[n], nb, bounds.get(n, ()))
            for n, v in params.items()
            if n in defaults
        }
    return fitted
