"""The package as a whole: a light top-level import, one home for each top-level name, the lint."""

import ast
import importlib
import importlib.util
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import lcteach

HEAVY = ("torch", "matplotlib", "ipywidgets", "IPython")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has loaded after running ``code``."""
    check = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split()


def test_import_lcteach_loads_neither_torch_nor_plotting_nor_widgets():
    assert _loaded_after("import lcteach") == []


def test_a_top_level_name_loads_its_subpackage_only():
    loaded = _loaded_after("from lcteach import dense_attention")
    assert "torch" in loaded and "matplotlib" not in loaded and "ipywidgets" not in loaded


def test_the_release_path_does_not_import_torch():
    """`make release` loads the pipeline and the nbgrader config's preprocessors, never torch."""
    assert _loaded_after("import autograder.pipeline, autograder.preprocessors, autograder.release") == ["IPython"]


@pytest.mark.parametrize("name", lcteach.__all__)
def test_every_top_level_name_is_the_subpackages_object(name):
    package = lcteach._HOME[name]
    assert getattr(lcteach, name) is getattr(importlib.import_module(package), name)
    assert getattr(lcteach, name).__module__.startswith(package + ".")


def test_an_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'dense'"):
        lcteach.dense  # noqa: B018


def test_no_module_imports_a_private_name_from_another_module():
    """What two modules share has a public home: ``from lcteach.x import _helper`` appears nowhere."""
    offenders = []
    for info in pkgutil.walk_packages(lcteach.__path__, "lcteach."):
        tree = ast.parse(pathlib.Path(importlib.util.find_spec(info.name).origin).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("lcteach")):
                offenders += [f"{info.name}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
    assert offenders == []
