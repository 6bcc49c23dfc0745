"""Hostile submissions graded in one batch next to an honest one (the start of issue 3's corpus).

Each case edits the full solution the way a student trying a trick would, and states the
score it must get. The sandbox's own escapes (network, files, limits) are probed from inside a
kernel in test_sandbox.py; here the whole pipeline grades them.
"""

import json
import shutil

import pytest
from conftest import needs_sandbox

from autograder.pipeline import build_demo_class, grade_class

pytestmark = [pytest.mark.slow, needs_sandbox]

WEEK = "week1_foundations"
HONEST = 18  # every auto-graded point; the written answer waits for a human

# student -> (grade_id of the cell to change, new source or a prefix ending in "\n", expected score, reason)
CASES = {
    "exits": ("process_in_chunks", "import sys; sys.exit(3)\n", HONEST - 3, "test_process_in_chunks 0/3"),
    "rewrites_test": ("test_dense_attention", "3.0", HONEST, None),
    "fakes_test_and_code": ("dense_attention", "def dense_attention(q, k, v, mask=None):\n    return None",
                            HONEST - 3, "test_dense_attention 0/3"),
    "reads_hidden_tests": ("fit_exponent", "print(open('/work/main/solutions/week1_foundations/exercises.py').read())\n",
                           HONEST - 2, "test_fit_exponent 0/2"),
}


def tamper(path, grade_id: str, source: str) -> None:
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell["source"] = source + "".join(cell["source"]) if source.endswith("\n") else source
    path.write_text(json.dumps(notebook))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build_demo_class(root, WEEK)
    submitted = root / "submitted"
    full = submitted / "full" / WEEK
    for student, (grade_id, source, _, _) in CASES.items():
        shutil.copytree(full, submitted / student / WEEK)
        tamper(submitted / student / WEEK / "exercises.ipynb", grade_id, source)
    # Besides breaking its function, this one replaces the locked test with its full score.
    tamper(submitted / "fakes_test_and_code" / WEEK / "exercises.ipynb", "test_dense_attention", "3.0")
    for other in ("partial", "untouched", "missing", "broken"):
        shutil.rmtree(submitted / other)
    report = grade_class(root, [WEEK], timeout=600, jobs=2)
    return {r.submission.student: r for r in report.results}


def test_the_honest_submission_is_unaffected(graded):
    assert graded["full"].score == HONEST


@pytest.mark.parametrize("student", sorted(CASES))
def test_each_trick_gets_its_expected_score(graded, student):
    _, _, expected, lost = CASES[student]
    result = graded[student]
    assert (result.score, result.status) == (expected, "graded"), result.reason
    if lost:
        assert lost in result.reason
