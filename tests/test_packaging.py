"""The package declares what it imports, and the two ways to install it agree.

pip reads pyproject.toml, conda reads environment.yml; a test keeps their dependency lists in
step, and another reads every import in the library, tests, benchmarks, scripts and notebooks and
checks that the distribution behind it is declared (directly, not through another package).
"""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# conda-forge names that differ from the PyPI names in pyproject.toml.
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# Imported on purpose without being dependencies: the peers that `make bench-peers` installs in
# their own venv, and the Milvus server that scripts/test_server.sh installs in its own.
OWN_VENVS = {"afterthoughts", "chonkie", "milvus"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0])


def declared() -> set[str]:
    requirements = PROJECT["dependencies"]
    for extra in PROJECT.get("optional-dependencies", {}).values():
        requirements = [*requirements, *extra]
    return {requirement_name(r) for r in requirements}


def imported_modules() -> dict[str, str]:
    """Top-level module -> one file that imports it, over every Python source and notebook."""
    sources = [(p, p.read_text()) for d in ("lc_utils", "tests", "benchmarks", "scripts")
               for p in (ROOT / d).rglob("*.py")]  # fmt: skip
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        cells = nbformat.read(notebook, as_version=4).cells
        lines = [line for c in cells if c.cell_type == "code" for line in c.source.splitlines()]
        code = [line for line in lines if not line.lstrip().startswith(("%", "!"))]  # magics
        sources.append((notebook, "\n".join(code)))
    modules = {}
    for path, text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return modules


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()
    local = {"lc_utils", "tests", "_common"} | OWN_VENVS
    missing = {}
    for module, where in imported_modules().items():
        if module in sys.stdlib_module_names or module in local:
            continue
        names = {normalized(d) for d in distributions.get(module, [module])}
        if not names & declared():
            missing[module] = where
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    wanted = {requirement_name(r) for r in PROJECT["dependencies"]}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"][0] == "conda-forge"
    assert "defaults" not in environment["channels"]
    conda, pip = set(), []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip = entry["pip"]
        else:
            name = requirement_name(entry)
            conda.add(CONDA_TO_PYPI.get(name, name))
    assert "python=3.11" in environment["dependencies"]
    pip_names = {requirement_name(r) for r in pip if not r.startswith("-e")}
    listed = (conda - {"python", "pip"}) | pip_names
    assert listed == wanted, {"missing": wanted - listed, "extra": listed - wanted}
    assert '-e ".[dev]"' in pip, "the pip section must install the package with its extras"


def test_python_and_transformers_ranges_are_the_ones_tested():
    # CI runs Python 3.11, and the suite ran on the installed transformers.
    assert PROJECT["requires-python"] == ">=3.11,<3.12"
    assert sys.version_info[:2] == (3, 11)
    transformers = next(r for r in PROJECT["dependencies"] if r.startswith("transformers"))
    low, high = re.fullmatch(r"transformers>=([\d.]+),<(\d+)", transformers).groups()
    installed = importlib.metadata.version("transformers")

    def release(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version)[:3])

    assert release(low) <= release(installed) < release(high), (transformers, installed)


def test_license_is_an_spdx_expression_with_its_file():
    # A TOML table here makes setuptools print a deprecation warning on every install.
    assert PROJECT["license"] == "Apache-2.0"
    assert all((ROOT / name).is_file() for name in PROJECT["license-files"])


def test_every_subpackage_and_the_report_templates_ship_with_the_package():
    """setuptools lists packages by hand: a new folder of modules left out of the list would
    install without it, and the report templates are data that must be listed too."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "lc_utils").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert folders <= set(setuptools["packages"]), sorted(folders - set(setuptools["packages"]))
    assert "lc_utils.run.templates" in setuptools["packages"]
    assert setuptools["package-data"]["lc_utils.run.templates"] == ["*.j2"]
    templates = ROOT / "lc_utils" / "run" / "templates"
    assert sorted(p.suffix for p in templates.iterdir()) == [".j2"] * 3


def test_torch_is_a_range_and_the_makefile_installs_the_cpu_wheel_first():
    torch = next(r for r in PROJECT["dependencies"] if requirement_name(r) == "torch")
    assert ">=" in torch and "<" in torch
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index('"torch==2.13.0"') < makefile.index('-e ".[dev]"')
