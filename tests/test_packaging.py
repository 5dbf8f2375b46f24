"""The two ways to install (pip with pyproject.toml, conda with environment.yml) agree."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI names in pyproject.toml.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "huggingface_hub": "huggingface-hub",
    "matplotlib-base": "matplotlib",
}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {requirement_name(r) for r in project["dependencies"]}
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


def test_torch_is_a_range_and_the_makefile_installs_the_cpu_wheel_first():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = next(r for r in project["dependencies"] if requirement_name(r) == "torch")
    assert ">=" in torch and "<" in torch
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index('"torch==2.13.0"') < makefile.index('-e ".[dev]"')
