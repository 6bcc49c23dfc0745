"""The hostile corpus: crafted submissions graded in one batch next to an honest one.

Each case starts from the full solution and edits it the way a student trying a trick
would; CASES gives the score it must get (HONEST is every auto-graded point) and, where it
matters, what the per-student report must say. The sandbox's escapes are also probed from
inside a kernel in test_sandbox.py; here the whole pipeline grades them, as `make grade` does.
Part points: dense_attention 3, causal_mask 1, sliding_window 2, online_softmax_step 3,
tiled_attention 4, process_in_chunks 3, fit_exponent 2.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import needs_sandbox

from autograder.pipeline import REPO, build_demo_class, grade_class
from lcteach.grading import week1 as grade

pytestmark = [pytest.mark.slow, needs_sandbox]

WEEK = "week1_foundations"
HONEST = 18  # every auto-graded point; the written answer waits for a human
MAX = 20
ROOT_MARK = "@ROOT@"  # replaced by the course root's path


@dataclass
class Case:
    threat: int  # the number of the case in issue 3's threat model
    edits: list  # functions (notebook dict, root) -> None, applied in order
    score: float
    report: list[str] = field(default_factory=list)  # strings the student's report lines must contain


def prefix(grade_id: str, code: str):
    """Run ``code`` at the top of a cell (before its function is defined)."""
    return lambda nb, root: _edit(nb, grade_id, lambda src: code.replace(ROOT_MARK, str(root)) + "\n" + src)


def suffix(grade_id: str, code: str):
    """Run ``code`` after a solution cell's own code, e.g. to wrap the function it defined."""
    return lambda nb, root: _edit(nb, grade_id, lambda src: src + "\n" + code.replace(ROOT_MARK, str(root)))


def replace(grade_id: str, source: str):
    return lambda nb, root: _edit(nb, grade_id, lambda src: source)


def _edit(nb: dict, grade_id: str, change) -> None:
    cell = _cell(nb, grade_id)
    cell["source"] = change("".join(cell["source"]))


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def delete(grade_id: str):
    return lambda nb, root: nb["cells"].remove(_cell(nb, grade_id))


def move_to_top(grade_id: str):
    def edit(nb, root):
        cell = _cell(nb, grade_id)
        nb["cells"].remove(cell)
        nb["cells"].insert(0, cell)

    return edit


def retype(grade_id: str, source: str):
    def edit(nb, root):
        cell = _cell(nb, grade_id)
        cell.update(cell_type="markdown", source=source)
        cell.pop("outputs", None), cell.pop("execution_count", None)

    return edit


def metadata(target: str, **changes):
    return lambda nb, root: _cell(nb, target)["metadata"]["nbgrader"].update(changes)


def top_level(**changes):
    return lambda nb, root: nb.update(changes)


WRAP_DENSE = "_honest = dense_attention\ndef dense_attention(q, k, v, mask=None):\n"

CASES: dict[str, Case] = {
    # 1. results that fool a comparison in the student's process
    "always_equal": Case(
        1,
        [
            suffix(
                "dense_attention",
                "class Yes:\n    __eq__ = lambda s, o: True\n"
                "    __float__ = lambda s: 0.0\n    shape = property(lambda s: None)\n"
                + WRAP_DENSE
                + "    return Yes(), Yes()",
            )
        ],
        HONEST - 3,
        ["dense_attention: returns (out, weights)"],
    ),
    "nan_output": Case(
        1,
        [
            suffix(
                "dense_attention",
                WRAP_DENSE + "    out, w = _honest(q, k, v, mask)\n    return out * float('nan'), w * float('nan')",
            )
        ],
        HONEST - 3,
    ),
    "tensor_subclass": Case(
        1,
        [
            suffix(
                "dense_attention",
                "class Agreeable(torch.Tensor):\n"
                "    __eq__ = lambda s, o: True\n"
                "    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):\n"
                "        return True if f in (torch.allclose, torch.equal) else "
                "super().__torch_function__(f, t, a, k or {})\n" + WRAP_DENSE + "    out, w = _honest(q, k, v, mask)\n"
                "    return (out * 0).as_subclass(Agreeable), w.as_subclass(Agreeable)",
            )
        ],
        HONEST - 3,
    ),
    # 2. monkeypatching before the tests run
    "patches_torch": Case(
        2,
        [
            suffix(
                "dense_attention",
                "torch.allclose = lambda *a, **k: True\n"
                "torch.equal = lambda *a, **k: True\n" + WRAP_DENSE + "    return _honest(q * 2, k, v, mask)",
            )
        ],
        HONEST - 1.5,  # right shapes, rows, saturation
        ["found: patching: changes `torch.allclose`"],
    ),
    "patches_builtins": Case(
        2,
        [
            suffix(
                "fit_exponent",
                "import builtins, math\nbuiltins.abs = lambda x: 0.0\n"
                "math.isfinite = lambda x: True\n"
                "def fit_exponent(ns, values):\n    return 0.0",
            )
        ],
        HONEST - 2,
        ["fit_exponent: an exact n^2 law gives 2"],
    ),
    "patches_grader": Case(
        2,
        [
            suffix(
                "dense_attention",
                "import lcteach.grading.expectations as expectations\n"
                "expectations.expect_close = lambda *a, **k: None\n"
                + WRAP_DENSE
                + "    return _honest(q * 2, k, v, mask)",
            )
        ],
        0,
        ["found: tampering: changes `expectations.expect_close`"],
    ),
    "replaces_grader": Case(
        2, [suffix("dense_attention", "grade.dense_attention = lambda fn, seed=None: 3.0")], 0, ["tampering"]
    ),
    "forges_record": Case(
        2,
        [
            suffix(
                "dense_attention",
                "from IPython.display import display\n"
                "from lcteach.grading.record import MIMETYPE\n"
                + WRAP_DENSE
                + "    display({MIMETYPE: {'version': 1}}, raw=True)\n"
                "    return _honest(q, k, v, mask)",
            )
        ],
        0,
        ["tampering: uses `MIMETYPE`"],
    ),
    "switches_guard_off": Case(
        3,
        [
            suffix(
                "dense_attention",
                "import sys, lcteach\n"
                + WRAP_DENSE
                + "    sys.setprofile(None)\n    return lcteach.dense_attention(q, k, v, mask)",
            )
        ],
        0,
        ["tampering: uses `setprofile`"],
    ),
    # 3. delegating to the reference
    "delegates_to_lcteach": Case(
        3,
        [
            suffix(
                "dense_attention", "import lcteach\n" + WRAP_DENSE + "    return lcteach.dense_attention(q, k, v, mask)"
            )
        ],
        HONEST - 3,
        ["found: reference: uses lcteach.dense_attention"],
    ),
    "delegates_to_sdpa": Case(
        3,
        [
            suffix(
                "tiled_attention",
                "import torch.nn.functional as F\n"
                "def tiled_attention(q, k, v, block_size=128):\n"
                "    out = F.scaled_dot_product_attention(q, k, v)\n"
                "    return out, torch.logsumexp(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, -1)",
            )
        ],
        HONEST - 4,
    ),
    # 4. reading what the kernel must not see
    "reads_hidden_tests": Case(
        4,
        [prefix("fit_exponent", f"print(open('{REPO}/solutions/{WEEK}/exercises.py').read())")],
        HONEST - 2,
        ["test_fit_exponent 0/2"],
    ),
    "reads_gradebook_and_others": Case(
        4,
        [
            prefix(
                "process_in_chunks",
                "import os\nprint(os.listdir('@ROOT@/submitted'))\n"
                "print(open('@ROOT@/gradebook.db', 'rb').read()[:100])",
            )
        ],
        HONEST - 3,
    ),
    # 5. writing outside its scratch folder: every attempt fails, so the cell runs on
    "writes_outside": Case(
        5,
        [
            prefix(
                "causal_mask",
                "import os\nrefused = []\n"
                "for path in ['@ROOT@/gradebook.db', '@ROOT@/feedback/x.html', '@ROOT@/hacked',\n"
                "             '@ROOT@/submitted/full/week1_foundations/exercises.ipynb',\n"
                f"             '{REPO}/lcteach/hacked.py', 'exercises.ipynb', '/usr/hacked']:\n"
                "    try:\n        open(path, 'a').write('x')\n"
                "    except OSError as error:\n        refused.append(str(error))\n"
                "assert len(refused) == 6, refused  # its own copy, in scratch, is writable\n"
                "print(refused)",
            )
        ],
        HONEST,
        ["limit: write outside the scratch folder refused"],
    ),
    # 6. network
    "uses_network": Case(
        6,
        [prefix("sliding_window", "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=5)")],
        HONEST - 2,
        ["limit: network refused"],
    ),
    # 7. endless work in a graded call (call limit 20 s here) and past the cell's time limit (60 s here)
    "endless_loop": Case(
        7,
        [suffix("tiled_attention", "def tiled_attention(q, k, v, block_size=128):\n    while True:\n        pass")],
        HONEST - 4,
    ),
    "sleeps_forever": Case(
        7,
        [
            suffix(
                "online_softmax_step",
                "import time\ndef online_softmax_step(m, l, acc, scores, values):\n    time.sleep(10 ** 6)",
            )
        ],
        HONEST - 3 - 4,
    ),  # the solution's tiled_attention calls online_softmax_step too
    "ignores_interrupts": Case(
        7,
        [
            suffix(
                "process_in_chunks",
                "import signal\n"
                "def process_in_chunks(fn, x, chunk_size, overlap):\n"
                "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                "    while True:\n        pass",
            )
        ],
        HONEST - 3 - 2,
        ["did not stop when interrupted"],
    ),
    # 8. bombs
    "memory_bomb": Case(
        8,
        [prefix("causal_mask", "ballast = torch.ones(2 ** 31, dtype=torch.float32)")],
        HONEST - 1,
        ["limit: memory limit"],
    ),
    "fork_bomb": Case(
        8,
        [
            prefix(
                "sliding_window",
                "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3)\n        os._exit(0)",
            )
        ],
        HONEST - 2,
        ["limit: process limit"],
    ),
    # 9. the kernel dies: parts already graded keep their points
    "os_exit": Case(9, [prefix("online_softmax_step", "import os\nos._exit(1)")], 3 + 1 + 2, ["the kernel died"]),
    "segfault": Case(
        9, [prefix("tiled_attention", "import ctypes\nctypes.string_at(0)")], 3 + 1 + 2 + 3, ["the kernel died"]
    ),
    "sys_exit": Case(9, [prefix("process_in_chunks", "import sys\nsys.exit(3)")], HONEST - 3),
    # 10. test cells and metadata
    "edits_test_cells": Case(
        10,
        [
            replace("test_dense_attention", "3.0"),
            delete("test_fit_exponent"),
            move_to_top("test_causal_mask"),
            move_to_top("test_tiled_attention"),
            retype("test_sliding_window", "2"),
            metadata("test_online_softmax_step", points=100, grade_id="mine"),
            metadata("dense_attention", grade=True, points=50),
            metadata("test_process_in_chunks", locked=False, solution=True),
        ],
        HONEST,
    ),
    "fakes_test_and_code": Case(
        10,
        [
            replace("test_dense_attention", "3.0"),
            replace("dense_attention", "def dense_attention(q, k, v, mask=None):\n    return None"),
        ],
        HONEST - 3,
    ),
    # 11. floods
    "floods": Case(
        11,
        [
            suffix("dense_attention", "for _ in range(2000):\n    print('x' * 10000)"),
            prefix(
                "causal_mask",
                "for i in range(8):\n    try:\n"
                "        with open(f'big{i}', 'wb') as f:\n"
                "            for _ in range(100):\n                f.write(b'x' * 2 ** 20)\n"
                "    except OSError as error:\n        print(error)",
            ),
        ],
        HONEST,
        ["output truncated", "limit: file size limit", "limit: disk space limit"],
    ),
    # 13. honest work that is noisy
    "warns_and_shows_progress": Case(
        13,
        [
            suffix(
                "dense_attention",
                "import sys, warnings\nfrom tqdm.auto import tqdm\n" + WRAP_DENSE + "    warnings.warn('just saying')\n"
                "    sys.stderr.write('to stderr\\n')\n"
                "    for _ in tqdm(range(3)):\n        pass\n"
                "    return _honest(q, k, v, mask)",
            )
        ],
        HONEST,
    ),
    # 14. trying to read the hidden inputs back from the feedback
    "leaks_inputs": Case(
        14,
        [
            suffix(
                "dense_attention",
                WRAP_DENSE + "    print('LEAK' + 'ED', q.flatten()[:3].tolist())\n"
                "    raise ValueError('LEAK' + f'ED {q.sum().item()}')",
            )
        ],
        HONEST - 3,
    ),
}
# Whole-file cases (12): graded notebooks that cannot be read, and extras that must be ignored.
FILE_CASES = {
    "wrong_nbformat": (top_level(nbformat=5), 0, "not a valid notebook"),
    "old_nbformat": (top_level(nbformat_minor=0), HONEST, None),
}


def _strip_ids(nb: dict) -> None:
    for cell in nb["cells"]:
        cell.pop("id", None)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build_demo_class(root, WEEK)
    with (root / "nbgrader_config.py").open("a") as config:  # shorter limits keep the batch quick
        config.write("\nc.Execute.timeout = 60\nc.SandboxedKernelManager.call_seconds = 20\n")
    submitted = root / "submitted"
    full = submitted / "full" / WEEK
    for student, case in {
        **CASES,
        **{s: Case(12, [edit], score) for s, (edit, score, _) in FILE_CASES.items()},
    }.items():
        shutil.copytree(full, submitted / student / WEEK)
        path = submitted / student / WEEK / "exercises.ipynb"
        notebook = json.loads(path.read_text())
        for edit in case.edits:
            edit(notebook, root)
        if student == "old_nbformat":
            _strip_ids(notebook)
        path.write_text(json.dumps(notebook))
    shutil.copytree(full, submitted / "extra_files" / WEEK)
    (submitted / "extra_files" / WEEK / "scratch.ipynb").write_text("{not json")
    shutil.copy(full / "exercises.ipynb", submitted / "extra_files" / WEEK / "exercises-copy.ipynb")
    (submitted / "extra_files" / WEEK / "notes.txt").write_text("hello")
    for other in ("partial", "untouched"):
        shutil.rmtree(submitted / other)
    # An LMS download with file names Canvas did not write: reported, never a crash.
    archive = root / "downloaded" / WEEK / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as download:
        download.write(full / "exercises.ipynb", "exercises (1).ipynb")
        download.write(full / "exercises.ipynb", "doejane_4711_99012_homework.ipynb")
    report = grade_class(root, [WEEK], timeout=600, jobs=2)
    return root, report, {r.submission.student: r for r in report.results}


def _report_lines(result) -> str:
    return "\n".join(
        [
            result.reason,
            *result.failed_checks,
            *(f"limit: {x}" for x in result.limits),
            *(f"found: {x}" for x in result.findings),
        ]
    )


def test_honest_submissions_are_unaffected(graded):
    _, _, results = graded
    assert (results["full"].score, results["full"].max_score) == (HONEST, MAX), results["full"].reason
    assert results["extra_files"].score == HONEST
    assert not results["full"].failed_checks and not results["full"].findings


@pytest.mark.parametrize("student", list(CASES))
def test_hostile_submission_gets_its_expected_score(graded, student):
    _, _, results = graded
    result, case = results[student], CASES[student]
    lines = _report_lines(result)
    assert (result.score, result.max_score) == (case.score, MAX), lines
    for text in case.report:
        assert text in lines, lines


@pytest.mark.parametrize("student", sorted(FILE_CASES))
def test_unreadable_or_old_notebooks(graded, student):
    _, _, results = graded
    _, score, reason = FILE_CASES[student]
    assert results[student].score == score
    assert reason is None or reason in results[student].reason


def test_missing_and_corrupt_notebooks_score_zero_with_a_reason(graded):
    _, _, results = graded
    assert "missing from the submission" in results["missing"].reason
    assert "not a valid notebook" in results["broken"].reason


def test_lms_files_with_wrong_names_are_reported(graded):
    _, report, _ = graded
    assert any("exercises (1).ipynb: not an LMS submission file name" in line for line in report.skipped_files)
    assert any("homework.ipynb is not a notebook of" in line for line in report.skipped_files)


def test_nothing_outside_the_scratch_folder_was_written(graded):
    root, report, _ = graded
    assert not (root / "hacked").exists() and not (REPO / "lcteach" / "hacked.py").exists()
    assert not Path("/usr/hacked").exists()
    assert report.gradebook_problems == []
    assert json.loads((root / "submitted" / "full" / WEEK / "exercises.ipynb").read_text())  # untouched JSON
    autograded = root / "autograded" / "floods" / WEEK
    assert sum(p.stat().st_size for p in autograded.rglob("*")) < 3 * 2**20  # the notebook only, output cut


def test_feedback_reveals_no_hidden_inputs(graded, capsys):
    """The function printed and raised its inputs; those of the hidden run appear nowhere."""
    root, _, _ = graded
    html = (root / "feedback" / "leaks_inputs" / WEEK / "exercises.html").read_text()
    hidden = []

    def spy(q, k, v, mask=None):
        hidden.append(q)
        raise ValueError("seen")

    grade.dense_attention(spy, seed=7331)
    assert len(hidden) == len(grade.dense_attention.checks)
    for q in hidden:
        assert str(q.flatten()[:3].tolist()) not in html and f"{q.sum().item()}" not in html
    assert "7331" not in html and "HIDDEN TESTS" not in html


def test_grading_is_deterministic(graded, tmp_path):
    """Graded again, alone and with one worker, two submissions get the same scores check by check."""
    root, _, results = graded
    again = tmp_path / "again"
    shutil.copytree(root, again, ignore=shutil.ignore_patterns("autograded", "feedback", "downloaded", "reports"))
    for student in (again / "submitted").iterdir():
        if student.name not in ("full", "patches_torch"):
            shutil.rmtree(student)
    for result in grade_class(again, [WEEK], timeout=600, jobs=1).results:
        first = results[result.submission.student]
        assert (result.score, result.failed_checks) == (first.score, first.failed_checks)
