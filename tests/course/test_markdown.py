"""The markdown cells of every solutions notebook hold no control characters, TABs included.

A TAB in markdown is almost always a LaTeX command that lost its backslash on the way in:
``"\\times"`` or ``"\\text"`` written into a Python string that was not raw becomes a TAB
followed by ``imes`` or ``ext`` (likewise \\b, \\f, \\v, \\a and \\r eat \\beta, \\frac, \\vec,
\\alpha and \\rho). The notebook still renders, with the formula silently wrong. The cells are
read as the release reads them (``autograder.releasing.build_notebook``).
"""

import pytest

from autograder.layout import SOLUTIONS
from autograder.releasing import build_notebook

NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.py"))
NAMES = {"\t": "TAB", "\b": "backspace", "\f": "form feed", "\v": "vertical tab", "\a": "bell", "\r": "carriage return"}


def name(char: str) -> str:
    return NAMES.get(char, f"U+{ord(char):04X}")


def control_characters(text: str) -> list[tuple[int, str, str]]:
    """(line number, name, the line with its control characters shown as <NAME>) of every
    control character but the newline in ``text``."""
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        shown = "".join(f"<{name(c)}>" if c < " " or c == "\x7f" else c for c in line).strip()
        found += [(number, name(c), shown) for c in sorted({c for c in line if c < " " or c == "\x7f"})]
    return found


def test_control_characters_are_found_where_latex_lost_its_backslash():
    text = "plain line\n$n " + "\t" + "imes d$ and " + "\f" + "rac{a}{b}\nno trouble: \\times"
    assert [(number, name) for number, name, _ in control_characters(text)] == [(2, "TAB"), (2, "form feed")]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[str(p.relative_to(SOLUTIONS)) for p in NOTEBOOKS])
def test_markdown_cells_have_no_tabs_or_other_control_characters(source):
    problems = [
        f"cell {index}, line {number}: {char} in: {line}"
        for index, cell in enumerate(build_notebook(source).cells)
        if cell.cell_type == "markdown"
        for number, char, line in control_characters(cell.source)
    ]
    assert not problems, (
        f"{source.relative_to(SOLUTIONS)}: markdown with control characters; a LaTeX command such as "
        "\\times or \\text probably lost its backslash (write the source as it should render):\n" + "\n".join(problems)
    )


# Weeks whose lectures have been given answers and references (issue 11); add a week once its
# lectures have them too.
SELF_STUDY_WEEKS = ("week1_foundations",)
LECTURES = sorted(p for week in SELF_STUDY_WEEKS for p in (SOLUTIONS / week).glob("*.py") if p.stem != "exercises")


@pytest.mark.parametrize("source", LECTURES, ids=[str(p.relative_to(SOLUTIONS)) for p in LECTURES])
def test_every_question_has_a_collapsed_answer_and_the_lecture_ends_with_references(source):
    markdown = [cell.source for cell in build_notebook(source).cells if cell.cell_type == "markdown"]
    questions = [text for text in markdown if "**Check your understanding.**" in text]
    assert questions, f"{source.name} asks no 'Check your understanding' question"
    unanswered = [
        text.split("**Check your understanding.**")[1][:80].strip()
        for text in questions
        if not all(
            tag in text.split("**Check your understanding.**")[1]
            for tag in ("<details>", "<summary>Answer</summary>", "</details>")
        )
    ]
    assert not unanswered, f"{source.name}: questions without a <details> answer after them: {unanswered}"
    assert markdown[-1].startswith("## References"), f"{source.name} must end with a '## References' cell"
    assert "arXiv:" in markdown[-1] and "**Further reading**" in markdown[-1]
