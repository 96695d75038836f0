"""The package list in pyproject.toml names every Python package and config group (a folder left
out would be missing from the wheel), and runtime dependencies are ranges with an exact
constraints file beside them."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_and_config_group_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "recctl").rglob("__init__.py")}
    groups = {f"recctl.conf.{d.name}" for d in (REPO / "conf").iterdir() if d.is_dir()}
    plugins = {f"hydra_plugins.{p.parent.name}" for p in (REPO / "hydra_plugins").glob("*/__init__.py")}
    assert plugins == {"hydra_plugins.recctl_optuna_sweeper"}  # Hydra finds sweepers only there
    assert listed == code | groups | plugins | {"recctl.conf"}


def test_dependencies_are_ranges_and_the_tested_set_is_pinned():
    project = _pyproject()["project"]
    requirements = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    assert not [r for r in requirements if "==" in r], "exact pins belong in constraints.txt"
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    names = {re.split(r"[<>=!~ \[]", r)[0].lower() for r in requirements}
    assert names <= pinned, f"not in constraints.txt: {sorted(names - pinned)}"
    assert isinstance(project["license"], str)
