"""The setup: pins agree between pyproject.toml and environment.yml, are installed, and the
repository has the agreed layout and make targets."""

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PINS = PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]


def conda_dependencies() -> tuple[list[str], list[str]]:
    """(conda packages, pip requirements) of environment.yml."""
    dependencies = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = [d for d in dependencies if isinstance(d, str)]
    pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
    return conda, pip


def test_environment_yml_pins_what_pyproject_pins():
    _, pip = conda_dependencies()
    assert [str(Requirement(r)) for r in pip if r != "-e ."] == [str(Requirement(r)) for r in PINS]
    assert "-e ." in pip


def test_environment_yml_python_meets_requires_python():
    conda, _ = conda_dependencies()
    python = next(d.split("=", 1)[1] for d in conda if d.startswith("python="))
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(python)


@pytest.mark.parametrize("pin", PINS)
def test_installed_version_meets_pin(pin):
    requirement = Requirement(pin)
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is not installed: `make` reinstalls after a pyproject.toml change")
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} does not meet {pin}: `rm -rf .venv` and rerun make"
    )


def test_top_level_is_the_agreed_layout():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    top = {name.split("/")[0] + ("/" if "/" in name else "") for name in files} - {".gitignore"}
    assert top == {
        "course/",
        "solutions/",
        "lcteach/",
        "autograder/",
        "tests/",
        ".ci/",
        "environment.yml",
        "pyproject.toml",
        "README.md",
        "Makefile",
    }
    assert [name for name in files if name.startswith(".ci/")] == [".ci/run"]
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_make_help_lists_every_workflow():
    output = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    listed = set(re.findall(r"^  (\w+) ", output, flags=re.MULTILINE))
    assert {"help", "lab", "test", "release", "grade", "feedback", "demo", "clean"} <= listed


def test_jupyterlab_has_the_widget_and_nbgrader_extensions():
    jupyter = Path(sys.executable).parent / "jupyter"
    output = subprocess.run([jupyter, "labextension", "list"], capture_output=True, text=True, check=True)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", output.stdout + output.stderr)
    for extension in ("@jupyter-widgets/jupyterlab-manager", "@jupyter/nbgrader"):
        assert re.search(rf"{re.escape(extension)} v\S+ enabled OK", listing), listing


def test_the_course_kernel_keeps_openmp_threads_asleep():
    """Any Jupyter started from .venv, with make or without, runs kernels with OMP_WAIT_POLICY=PASSIVE."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).is_relative_to(Path(sys.prefix))
    assert spec.env.get("OMP_WAIT_POLICY") == "PASSIVE"
