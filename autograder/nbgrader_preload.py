"""What the fork server of nbgrader commands imports once (commands.run_nbgrader).

Every nbgrader command of the course scripts runs in a process of its own, forked from one
server process that imported this module: nbgrader with its apps, the course's preprocessors
and kernel manager, and every week's grading checks with torch and the reference
implementations. An autograde process forked from it starts with all of that in memory instead
of importing it anew (about 6 s of CPU in each graded notebook). Importing starts no thread
that forking would lose, and nothing here holds a submission's data.
"""

import importlib
import os
import pkgutil
import sys

# When it is imported, jsonschema compiles the grammar of its optional IRI format checker
# (rfc3987_syntax): 2.5 s of CPU. No notebook schema checks an IRI, so nbgrader runs without it.
sys.modules["rfc3987_syntax"] = None

import nbformat  # noqa: E402
import nbgrader.apps.nbgraderapp  # noqa: E402
from nbconvert.exporters import HTMLExporter  # noqa: E402
from nbgrader.server_extensions.formgrader import handlers  # noqa: E402
from traitlets.config import Config  # noqa: E402

import autograder.preprocessors  # noqa: E402, F401 - what nbgrader_config.py names
import autograder.sandbox  # noqa: E402, F401
import autograder.sanitizing  # noqa: E402, F401
import lcteach.grading  # noqa: E402

NbGraderApp = nbgrader.apps.nbgraderapp.NbGraderApp


def _load_checks() -> None:
    """Every part's checks, loaded as a graded run loads them (``Part.checks``, cached from here on)."""
    for week in pkgutil.iter_modules(lcteach.grading.__path__, "lcteach.grading."):
        if week.ispkg:
            for part in importlib.import_module(week.name).PARTS:
                part.checks  # noqa: B018 - the property imports the part's module and keeps its checks


def _render_feedback_once() -> None:
    """Render a small notebook of our own with the feedback template, so that what nbconvert does
    once per process (lazy imports, Pygments, Mistune) is done here: a forked ``nbgrader
    generate_feedback`` then takes about 0.5 s instead of 1.5 s. Only trusted content runs here."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Warm-up\n\n$x$ **b** `c`\n\n| a |\n|---|\n| 1 |"),
            nbformat.v4.new_code_cell(
                "def f(x):\n    return x",
                outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="\x1b[31mx\x1b[0m"),
                    nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["t"]),
                ],
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    notebook.metadata["language_info"] = {"name": "python"}
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.HTMLExporter.extra_template_paths = [os.path.join(handlers.static_path, "node_modules/bootstrap/dist/css")]
    resources = {"nbgrader": {"notebook": "warm-up", "score": 0, "max_score": 0, "late_penalty": 0}}
    HTMLExporter(config=config).from_notebook_node(notebook, resources=resources)


_load_checks()
_render_feedback_once()
