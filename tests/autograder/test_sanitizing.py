"""Student outputs and markdown made safe to render (autograder/sanitizing.py), in the formgrader and feedback."""

import base64
from html.parser import HTMLParser

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.ansi import ansi2html
from nbconvert.filters.markdown_mistune import InvalidNotebook
from nbgrader.server_extensions.formgrader import handlers
from traitlets.config import Config

from autograder.sanitizing import (
    HideOutputsAfterGrading,
    SanitizeMarkdown,
    SanitizeOutputs,
    clean_text,
    markdown_problems,
    sanitize_output,
)

MARK = "lcteach_payload"  # in every hostile string, so a test can tell the student's from the page's own
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake but valid base64").decode()
HOSTILE_ANSWERS = [
    f"<script>alert('{MARK}')</script>",
    f"my answer <img src=x onerror=alert(1) title={MARK}>",
    f"[click me](javascript:alert('{MARK}'))",
    f"[click me][r]\n\n[r]: JaVaScRiPt:alert('{MARK}')",
    f'<a href="javascript&colon;alert(1)">{MARK}</a>',
    f"$\\href{{javascript:alert('{MARK}')}}{{x}}$",
    f"![x](attachment:missing.png) {MARK}",
    f"<details open ontoggle=alert('{MARK}')>",
    f"<!-- {MARK} --><svg onload=alert(1)>",
]
HONEST_ANSWER = (
    "(a) Chunks start every $512 - 64 = 448$ positions, so $w < n$; see `a<b` and\n\n"
    "| n | cost |\n|--:|:--|\n| 1024 | **O(n w)** |\n\n- [x] done\n\n```python\nx = [i for i in range(3) if i < 2]\n```\n"
    "[the paper](https://arxiv.org/abs/2004.05150)"
)
ODD_STREAM = (
    f"\x1b]8;;http://evil.example/{MARK}\x1b\\link\x1b]8;;\x1b\\ \x1b[38m\x1b[48;5m\x1b[38;2;999m\x1b[1;31mred\x1b[0m"
    "\x1bPdevice control\x1b\\\x00\x07\x08\x0b\x0c\x7f\x9b31m!\n 50%\r100%\n\ud800end\n"
)


def test_clean_text_strips_escapes_and_controls_and_keeps_colours():
    cleaned = clean_text(ODD_STREAM)
    assert cleaned == "link \x1b[1m\x1b[31mred\x1b[0m\x1b[31m!\n100%\nend\n"  # a line rewritten by \\r: its last text
    assert ansi2html(cleaned).startswith('link <span class="ansi-red-intense-fg ansi-bold">red</span>')
    with pytest.raises(IndexError):  # what crashed nbconvert, and with it the whole batch's feedback
        ansi2html("\x1b[38m")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\x1b[];:m0123456789\x07\\\r\nPa\x9b\x00")), max_size=40) | st.text())
def test_clean_text_never_leaves_what_crashes_ansi2html(text):
    cleaned = clean_text(text)
    ansi2html(cleaned)
    assert clean_text(cleaned) == cleaned
    assert not any(ord(c) < 32 and c not in "\n\t\x1b" for c in cleaned)


def test_rich_outputs_keep_text_and_checked_images_only():
    output = nbformat.v4.new_output(
        "display_data",
        data={
            "text/plain": "<IPython.core.display.HTML object>\x1b[38m",
            "text/html": f"<script>{MARK}</script>",
            "application/javascript": MARK,
            "image/svg+xml": f"<svg onload='{MARK}'/>",
            "text/markdown": f"[x](javascript:{MARK})",
            "image/png": PNG,
            "image/jpeg": f'" onerror="{MARK}',  # not base64: dropped
        },
        metadata={"image/png": {"width": 100, "height": f"1 onload={MARK}"}, "filenames": {"image/png": "/etc/x"}},
    )
    clean = sanitize_output(output)
    assert clean.data == {"text/plain": "<IPython.core.display.HTML object>", "image/png": PNG}
    assert clean.metadata == {"image/png": {"width": 100}}
    only_html = sanitize_output(nbformat.v4.new_output("display_data", data={"text/html": "<b>x</b>"}))
    assert only_html.data == {
        "text/plain": "[output removed by the grader: text/html; it keeps text and PNG/JPEG images]"
    }
    error = sanitize_output(nbformat.v4.new_output("error", ename="E\x1b[38m", evalue="v\x00", traceback=["\x1b]8;;x"]))
    assert (error.ename, error.evalue, error.traceback) == ("E", "v", [""])


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS)
def test_hostile_markdown_is_found(answer):
    assert markdown_problems(answer)


def test_plain_markdown_answers_stay_as_written():
    assert markdown_problems(HONEST_ANSWER) == []
    assert markdown_problems(f"![plot](attachment:plot.png) {MARK}", {"plot.png": {"image/png": PNG}}) == []


def notebook_of_answers() -> nbformat.NotebookNode:
    """An autograded-looking notebook: the written answers, a locked instruction, hostile outputs."""
    cells = [nbformat.v4.new_markdown_cell("# Instructions <em>locked</em>", metadata={"nbgrader": {"locked": True}})]
    for index, answer in enumerate([*HOSTILE_ANSWERS, HONEST_ANSWER]):
        cells.append(
            nbformat.v4.new_markdown_cell(
                answer,
                metadata={
                    "nbgrader": {
                        "grade": True,
                        "solution": True,
                        "locked": False,
                        "points": 1,
                        "score": 0.0,  # GetGrades puts the scores in before feedback is rendered
                        "grade_id": f"written_{index}",
                        "schema_version": 3,
                    }
                },
            )
        )
    code = nbformat.v4.new_code_cell("print(...)")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=ODD_STREAM),
        nbformat.v4.new_output("display_data", data={"text/html": f"<script>{MARK}</script>", "text/plain": "x"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": f"alert('{MARK}')"}),
        nbformat.v4.new_output("error", ename="ValueError", evalue="\x1b[38mboom", traceback=["\x1b[38mboom"]),
    ]
    cells.append(code)
    cells.append(nbformat.v4.new_raw_cell(f"<script>{MARK}</script>", metadata={"format": "text/html"}))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def sanitized(notebook):
    for preprocessor in (SanitizeMarkdown(), SanitizeOutputs()):
        notebook, _ = preprocessor.preprocess(notebook, {})
    return notebook


class ActiveContent(HTMLParser):
    """Everything of a page that can run code: scripts, event handlers, javascript: addresses,
    and the elements that load or run content (svg, iframe, object, embed)."""

    def __init__(self):
        super().__init__()
        self.found, self._script = [], False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or "javascript:" in value.replace(" ", "").lower():
                self.found.append(f"<{tag} {name}={value[:60]}>")
        if tag in ("svg", "iframe", "object", "embed", "script"):
            self.found.append(f"<{tag}>")

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script:
            self.found.append(f"script: {data.strip()[:80]}")


def active(html: str) -> list[str]:
    """The page's active content, in order; a student's shows as a difference from a plain notebook's."""
    parser = ActiveContent()
    parser.feed(html)
    return parser.found


def plain(notebook):
    """The same notebook with harmless answers and outputs: its page's active content is the template's."""
    notebook = nbformat.from_dict(notebook)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            cell.source = "an answer"
        else:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="output")]
    return notebook


def render(notebook, template: str) -> str:
    config = Config()
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    # as nbgrader's GenerateFeedback does: the feedback template inlines bootstrap's CSS
    config.HTMLExporter.extra_template_paths = [f"{handlers.static_path}/node_modules/bootstrap/dist/css"]
    resources = {
        "nbgrader": {"notebook": "n", "score": 0, "max_score": 1, "late_penalty": 0},
        "assignment_id": "w",
        "notebook_id": "n",
        "submission_id": "s",
        "index": 0,
    }
    resources |= {"total": 1, "base_url": "", "student": "x", "last_name": "", "first_name": "", "notebook_path": ""}
    html, _ = HTMLExporter(config=config).from_notebook_node(notebook, resources=resources)
    return html


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_no_student_script_runs_in_the_formgrader_or_the_feedback(template):
    raw = notebook_of_answers()
    with pytest.raises(InvalidNotebook):  # unsanitised, a missing attachment stops the HTML export
        render(nbformat.from_dict(raw), template)
    unsafe = nbformat.from_dict(raw)
    unsafe.cells = [c for c in unsafe.cells if "attachment:" not in c.source]
    for cell in unsafe.cells:  # and an ANSI escape stops ansi2html: leave those out too
        for output in cell.get("outputs", []):
            for key in ("text", "evalue"):
                if key in output:
                    output[key] = output[key].replace("\x1b[38m", "")
            if "traceback" in output:
                output.traceback = [line.replace("\x1b[38m", "") for line in output.traceback]
    baseline = active(render(plain(raw), template))
    assert active(render(unsafe, template)) != baseline  # the check sees the payloads unsanitised
    notebook = sanitized(raw)
    html = render(notebook, template)
    assert active(html) == baseline
    assert MARK in html  # the answers are still shown, as text
    assert "my answer &lt;img src=x onerror=" in html
    honest = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "written_9")
    assert honest.source == HONEST_ANSWER  # plain Markdown is left alone
    assert notebook.cells[0].source == "# Instructions <em>locked</em>"  # locked cells are the release's
    assert sanitized(nbformat.from_dict(notebook)) == notebook  # feedback sanitises again: no change


def test_written_answers_lose_their_control_characters():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("a\x1b[31mb\x00c\x07d\te\r\nf")])
    SanitizeMarkdown().preprocess(notebook, {})
    assert notebook.cells[0].source == "a[31mbcd\te\r\nf"


def test_feedback_hides_what_ran_after_the_first_graded_cell():
    graded = {"nbgrader": {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "t"}}
    output = nbformat.v4.new_output("stream", name="stdout", text="hidden input 0.123")
    cells = [
        nbformat.v4.new_code_cell("print('mine')", outputs=[nbformat.v4.new_output("stream", text="mine")]),
        nbformat.v4.new_code_cell(
            "grade.part(f)", metadata=graded, outputs=[nbformat.v4.new_output("stream", text="3/3")]
        ),
        nbformat.v4.new_code_cell("print(seen)", outputs=[output]),
    ]
    notebook, _ = HideOutputsAfterGrading().preprocess(nbformat.v4.new_notebook(cells=cells), {})
    texts = ["".join(o.get("text", "") for o in cell.outputs) for cell in notebook.cells]
    assert texts[:2] == ["mine", "3/3"] and "0.123" not in texts[2] and "not shown" in texts[2]
