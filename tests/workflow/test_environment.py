"""Software environments: environment.yml (development) and workflow/envs/aifa-steps.yaml
(every rule's, for ``snakemake --sdm conda``) list pyproject.toml's dependencies and install
the package itself. Conda cannot run here: these check the files and where their pip line
points."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from ..helpers import REPO

RULES_ENV = REPO / "workflow" / "envs" / "aifa-steps.yaml"
DEV_ENV = REPO / "environment.yml"
#: conda-forge names of PyPI packages whose names differ there.
CONDA_NAMES = {"matplotlib": "matplotlib-base", "snakemake": "snakemake-minimal"}


def conda_dependencies(path: Path) -> tuple[list[str], list[str]]:
    """(conda specs, pip lines) of an environment file."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    specs = [d for d in deps if isinstance(d, str)]
    pip = [line for d in deps if isinstance(d, dict) for line in d.get("pip", [])]
    return specs, pip


def editable_target(pip: list[str]) -> str:
    """The path of the environment's one editable pip install."""
    targets = [line.split(maxsplit=1)[1] for line in pip if line.startswith(("-e ", "--editable "))]
    assert len(targets) == 1, pip
    return targets[0]


def is_the_repository(path: Path) -> bool:
    project = path / "pyproject.toml"
    return project.exists() and tomllib.loads(project.read_text())["project"]["name"] == (
        "aifa-steps"
    )


@pytest.mark.parametrize("env", [DEV_ENV, RULES_ENV], ids=["environment.yml", "rules"])
def test_environments_list_the_python_dependencies(env):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs, _ = conda_dependencies(env)
    for dep in project["dependencies"]:
        name = re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0]
        version = dep[len(name) :].strip()
        assert f"{CONDA_NAMES.get(name, name)}{version}" in specs, (dep, env.name)


def test_the_development_environment_installs_the_package():
    # Conda runs pip in the environment file's folder.
    _, pip = conda_dependencies(DEV_ENV)
    assert is_the_repository((DEV_ENV.parent / editable_target(pip)).resolve())


def test_every_rule_names_the_environment_that_installs_the_package():
    # Snakemake creates a rule's environment from a copy of its file in
    # <working directory>/.snakemake/conda/, and conda runs pip there: from the repository
    # root, the pip line must lead back to it (and from the file's own folder too).
    _, pip = conda_dependencies(RULES_ENV)
    target = editable_target(pip)
    assert is_the_repository((REPO / ".snakemake" / "conda" / target).resolve())
    assert is_the_repository((RULES_ENV.parent / target).resolve())
    specs, _ = conda_dependencies(RULES_ENV)
    assert {"astrometry>=0.93", "astromatic-source-extractor"} <= set(specs)  # shell rules
    named = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        for k, line in enumerate(lines):
            if line.strip() == "conda:":
                named.append((path.name, lines[k + 1].strip()))
    assert named and {env for _, env in named} == {'"../envs/aifa-steps.yaml"'}, named
