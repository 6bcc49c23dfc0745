"""The autograder's trusted steps, without a kernel: reading code for tricks, rebuilding a
submission on the release, finding the grader call of a cell."""

from __future__ import annotations

import nbformat
import pytest

from autograder.judging import GraderCall, grader_call
from autograder.preprocessors import restore_cells
from autograder.tampering import inspect_cells

IMPORTS = "import torch\nimport numpy as np\nimport lcteach\nfrom lcteach.grading import week1 as grade\n"


def kinds(code: str) -> list[str]:
    return [f.kind for f in inspect_cells([("imports", IMPORTS), ("answer", code)])]


@pytest.mark.parametrize(
    "code",
    [
        "grade.dense_attention = lambda fn, seed=None: 3.0",
        "import lcteach.grading.expectations as expectations\nexpectations.expect_close = lambda *a, **k: None",
        "from lcteach.grading import session\nsetattr(session, 'judge', None)",
        "grade = None",
        "import sys\nsys.setprofile(None)",
        "import sys\nsys.displayhook(3.0)",
        "class Fake:\n    def _repr_mimebundle_(self, **kw):\n        return {}",
        "import importlib\nimportlib.import_module('lcteach.grading.session')",
        "import importlib\nimportlib.import_module(name)",
        "from IPython import get_ipython\nget_ipython().display_pub.publish({})",
    ],
)
def test_tampering_with_the_grader_is_found(code):
    assert "tampering" in kinds(code)


@pytest.mark.parametrize(
    "code, kind",
    [
        ("torch.allclose = lambda *a, **k: True", "patching"),
        ("import builtins\nbuiltins.abs = lambda x: 0", "patching"),
        ("np.polyfit = None", "patching"),
        ("def f(q, k, v):\n    return lcteach.dense_attention(q, k, v)", "reference"),
        ("from lcteach.kernels.dense import dense_attention as da", "reference"),
        ("import torch.nn.functional as F\nout = F.scaled_dot_product_attention(q, k, v)", "reference"),
    ],
)
def test_patches_and_reference_uses_are_reported(code, kind):
    assert kinds(code) == [kind]


@pytest.mark.parametrize(
    "code",
    [
        "def dense_attention(q, k, v, mask=None):\n    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5\n"
        "    return torch.softmax(s, -1) @ v, torch.softmax(s, -1)",
        "self_grade = 3\nclass A:\n    pass\na = A()\na.x = 1\nsetattr(a, 'y', 2)",
        "from lcteach.viz import plot_mask\nfrom lcteach.measure import peak_memory\nlcteach.viz.plot_mask",
        "%timeit torch.ones(3)\n!ls",
        "this is not python (",
    ],
)
def test_honest_code_raises_nothing(code):
    assert kinds(code) == []


def test_findings_name_the_cell_and_line():
    [finding] = inspect_cells([("c1", "import torch\n\ntorch.equal = None")])
    assert (finding.cell, finding.line) == ("c1", 3) and "torch.equal" in str(finding)


def cell(kind: str, source: str, grade_id: str | None = None, **nbgrader) -> nbformat.NotebookNode:
    new = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if grade_id:
        new.id = grade_id
        new.metadata.nbgrader = {"grade_id": grade_id, "schema_version": 3, **nbgrader}
    return new


def released() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(
        cells=[
            cell("markdown", "# Exercises", "intro", locked=True, grade=False, solution=False),
            cell("code", "import torch", None),
            cell("code", "def f(x):\n    raise NotImplementedError()", "f", solution=True, grade=False, locked=False),
            cell("code", "grade.f(f)", "test_f", grade=True, solution=False, locked=True, points=2),
            cell("code", "def g(x):\n    raise NotImplementedError()", "g", solution=True, grade=False, locked=False),
            cell("code", "grade.g(g)", "test_g", grade=True, solution=False, locked=True, points=1),
        ]
    )


def sources(nb) -> list[str]:
    return [c.source for c in nb.cells]


def test_restore_keeps_answers_and_added_cells_and_brings_back_tests():
    release = released()
    release.cells[1].id = "cell-1"
    submitted = nbformat.from_dict(release)
    submitted = nbformat.v4.new_notebook(cells=[nbformat.from_dict(c) for c in release.cells])
    submitted.cells[2].source = "def f(x):\n    return x"
    submitted.cells[3].source = "3.0"  # a rewritten test
    del submitted.cells[5]  # a deleted test
    submitted.cells.insert(3, cell("code", "helper = 1"))  # an added cell after f
    submitted.cells[4], submitted.cells[0] = submitted.cells[0], submitted.cells[4]  # reordered
    submitted.cells[1].source = "import torch\nimport math"  # edited an unlocked plain cell
    restored = restore_cells(submitted, release)
    assert [c.id for c in restored.cells][:2] == ["intro", "cell-1"]
    assert sources(restored)[1:] == [
        "import torch\nimport math",
        "def f(x):\n    return x",
        "helper = 1",
        "grade.f(f)",
        release.cells[4].source,
        "grade.g(g)",
    ]
    assert "nbgrader" not in restored.cells[3].metadata


def test_restore_strips_roles_the_student_gave_to_cells():
    release = released()
    submitted = nbformat.v4.new_notebook(cells=[nbformat.from_dict(c) for c in release.cells])
    submitted.cells[5].metadata.nbgrader.update(grade_id="mine", points=100)  # relabelled test
    submitted.cells[2].metadata.nbgrader.update(grade=True, points=50)  # a solution made a graded cell
    submitted.cells[3].cell_type = "markdown"  # re-typed test
    restored = restore_cells(submitted, release)
    graded = {
        c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader.get("points")
        for c in restored.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert graded == {"test_f": 2, "test_g": 1}
    assert restored.cells[3].cell_type == "code" and restored.cells[3].source == "grade.f(f)"
    assert sum("grade.g(g)" in c.source for c in restored.cells) == 2  # the relabelled copy stays a plain cell


@pytest.mark.parametrize(
    "source, call",
    [
        ("grade.dense_attention(dense_attention)", GraderCall("dense_attention", "dense_attention")),
        ("x = 1\ngrade.fit_exponent(my_fit)", GraderCall("fit_exponent", "my_fit")),
        ("grade.fit_exponent(fit_exponent, seed=7331)", None),
        ("grade.fit_exponent(lambda: 1)", None),
        ("assert square(3) == 9", None),
        ("x = grade.f(f)", None),
        ("def (", None),
    ],
)
def test_grader_call_reads_the_last_line_of_a_test_cell(source, call):
    assert grader_call(source) == call
