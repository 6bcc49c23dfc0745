"""pytest plugin for nbval runs: a cell that writes to stderr fails, as nbgrader would score it 0.

Used by tests/course/test_notebooks.py: ``pytest --nbval-lax -p tests.nbval_strict NOTEBOOK.ipynb``.
"""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None) or []
    stderr = [o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    if call.when == "call" and report.passed and stderr:
        report.outcome = "failed"
        report.longrepr = "the cell wrote to stderr:\n" + "".join(stderr)[:2000]
