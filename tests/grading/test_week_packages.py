"""The week packages (lcteach.grading.week1, week2): light to import, one module of checks per
part named by its number in the notebook, and how the trusted grader finds a part."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from lcteach.grading import week1, week2
from lcteach.grading.session import Part, find_part

WEEKS = (week1, week2)
PARTS = [part for week in WEEKS for part in week.PARTS]
# What declaring the parts must not load: the sandbox that imports them holds no reference implementation.
NOT_LOADED = ("torch", "lcteach.kernels", "lcteach.masks", "lcteach.measure", "lcteach.chunking", "lcteach.analysis")


@pytest.mark.parametrize("week", WEEKS, ids=lambda week: week.__name__)
def test_importing_a_week_loads_neither_torch_nor_a_reference_nor_a_check(week):
    code = (
        f"import sys\nfrom lcteach.grading import {week.__name__.rpartition('.')[2]} as grade\n"
        "names = [part.__name__ for part in grade.PARTS], grade.POINTS\n"
        f"print(' '.join(m for m in sys.modules if m.startswith({NOT_LOADED!r}) or m.startswith('{week.__name__}.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


@pytest.mark.parametrize("week", WEEKS, ids=lambda week: week.__name__)
def test_every_part_has_its_module_and_every_module_its_part(week):
    folder = Path(week.__file__).parent
    for number, part in enumerate(week.PARTS, 1):
        assert part.module == f"part{number}_{part.__name__}"
        assert (folder / f"{part.module}.py").is_file()
    assert {path.stem for path in folder.glob("part*.py")} == {part.module for part in week.PARTS}
    assert week.POINTS == {part.__name__: part.points for part in week.PARTS}


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.id)
def test_a_parts_checks_are_its_modules_checks(part):
    week = importlib.import_module(part.package)
    module = importlib.import_module(f"{part.package}.{part.module}")
    assert part.checks == module.CHECKS and len(part.checks) > 0
    assert all(check.__module__ == module.__name__ and check.check_name for check in part.checks)
    assert getattr(week, part.__name__) is part  # loading the module did not overwrite the part
    assert part.package == week.__name__ and part.__module__ == week.__name__


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.id)
def test_a_part_reads_like_the_function_it_stands_for(part):
    assert part.id == f"{part.package}.{part.__name__}" and part.__qualname__ == part.__name__
    assert part.__doc__.startswith(f"Grade the student's ``{part.__name__}`` ({part.points:g} points): ")
    assert all(check.check_name in part.__doc__ for check in part.checks)
    assert Part.__doc__.startswith("One graded part")


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.id)
def test_find_part_finds_each_part_by_its_id(part):
    """The trusted grader finds a part by ``lcteach.grading.<week>.<name>``."""
    assert find_part(part.id) is part


@pytest.mark.parametrize("name", ["lcteach.grading.week1.CHECKS", "lcteach.grading.week9.x", "os.system", 3])
def test_find_part_refuses_anything_else(name):
    with pytest.raises(ValueError):
        find_part(name)


def test_a_part_and_its_module_need_different_names():
    with pytest.raises(ValueError, match="two different identifiers"):
        Part("lcteach.grading.week1", "dense_attention", 3, "dense_attention")
