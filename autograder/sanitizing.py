"""nbgrader preprocessors that make a student's notebook safe to show (named in nbgrader_config.py).

Everything a student's notebook holds ends up as HTML: in the formgrader, which renders the
autograded notebook in the instructor's browser, and in the feedback HTML. So before either:

- ``SanitizeOutputs`` (autograde, after the scores are saved; feedback): streams, errors and
  plain text lose control characters and terminal escapes, except the colours that nbconvert
  renders (well-formed SGR codes, rebuilt); rich outputs keep ``text/plain``, ``image/png`` and
  ``image/jpeg`` (checked to be base64) only: HTML, JavaScript, SVG, Markdown, LaTeX, widgets
  and any other type are dropped with a note. One odd escape can no longer crash nbconvert's
  ``ansi2html`` (``\\x1b[38m`` did) and so the feedback.
- ``HideOutputsAfterGrading`` (feedback): the outputs of code cells that ran after the first
  graded cell are not shown, but the grader's own verdicts: student code that kept the hidden
  inputs it was called with could print them there, and the feedback goes back to the student.
- ``SanitizeMarkdown`` (autograde's sanitize steps; feedback): every markdown cell a student
  could edit (all but locked cells) is parsed with the parser nbconvert renders it with; if it
  holds raw HTML, a link or image whose address is not plainly safe, TeX that makes links or
  HTML, or renders to anything outside a small list of tags and attributes, it is replaced by its
  text in a code block, which renders as text. Plain Markdown answers stay as written, less
  their control characters (but tab and line breaks). Editable
  raw cells lose the format that would put them into the HTML as is, and attachments keep PNG
  and JPEG images only.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from html.parser import HTMLParser

from nbconvert.filters.markdown_mistune import MarkdownWithMath, markdown2html_mistune
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

KEPT_MIMETYPES = ("text/plain", "image/png", "image/jpeg")

# ---------------------------------------------------------------- text: control characters and escapes

# Terminal escape sequences (ECMA-48): CSI (ESC [ or 0x9b), OSC (ESC ]) and the string controls
# DCS, SOS, PM, APC up to their terminator (BEL or ESC \) or the end, then any other ESC sequence.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~])"
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 and C1 controls but tab and newline, DEL, lone surrogates; ESC is left only in the colours
# that _ESCAPES rebuilt.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\ud800-\udfff]")
# In a written answer no control character is kept but tab, newline and carriage return.
_MARKDOWN_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SGR_SIMPLE = {0, 1, 2, 3, 4, 5, 7, 8, 9, *range(21, 30), *range(30, 38), 39, *range(40, 48), 49}
_SGR_SIMPLE |= {*range(90, 98), *range(100, 108)}


def _sgr(params: str) -> str:
    """The SGR colour codes of ``params`` that are well formed, rebuilt one per escape; else ""."""
    if not re.fullmatch(r"[0-9;]*", params):
        return ""
    codes = [int(p) if p and len(p) <= 3 else -1 for p in params.split(";")] if params else [0]
    kept, i = [], 0
    while i < len(codes):
        code = codes[i]
        if code in _SGR_SIMPLE:
            kept.append(str(code))
            i += 1
        elif code in (38, 48) and codes[i + 1 : i + 2] == [5] and 0 <= (codes[i + 2 : i + 3] or [-1])[0] < 256:
            kept.append(f"{code};5;{codes[i + 2]}")
            i += 3
        elif code in (38, 48) and codes[i + 1 : i + 2] == [2] and all(0 <= c < 256 for c in codes[i + 2 : i + 5]):
            if len(codes[i + 2 : i + 5]) < 3:
                break
            kept.append(f"{code};2;" + ";".join(map(str, codes[i + 2 : i + 5])))
            i += 5
        else:
            break  # anything else makes the rest of the sequence unreliable: drop it
    return "".join(f"\x1b[{k}m" for k in kept)


def _escape(match: re.Match) -> str:
    if match.group("final") == "m" and not match.group("inter"):
        return _sgr(match.group("params"))
    return ""


def _carriage_returns(line: str) -> str:
    """What a terminal shows of a line that ``\\r`` rewrites (progress bars): its last version."""
    parts = [part for part in line.split("\r") if part]
    return parts[-1] if parts else ""


def clean_text(text: str) -> str:
    """``text`` without terminal escapes (but well-formed colours) and control characters (but
    tab and newline); a line rewritten with ``\\r`` keeps its last version."""
    if not isinstance(text, str):
        text = "".join(map(str, text)) if isinstance(text, list) else str(text)
    text = _ESCAPES.sub(_escape, text)
    text = "\n".join(_carriage_returns(line) if "\r" in line else line for line in text.split("\n"))
    return _CONTROLS.sub("", text)


def _is_base64(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# ---------------------------------------------------------------- outputs


def _note(text: str) -> NotebookNode:
    return from_dict({"output_type": "stream", "name": "stdout", "text": text})


def sanitize_output(output: NotebookNode) -> NotebookNode:
    """A copy of a code cell's output that is safe to render (see the module docstring)."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return from_dict({"output_type": "stream", "name": name, "text": clean_text(output.get("text", ""))})
    if kind == "error":
        traceback = output.get("traceback")
        return from_dict(
            {
                "output_type": "error",
                "ename": clean_text(output.get("ename", "")),
                "evalue": clean_text(output.get("evalue", "")),
                "traceback": [clean_text(line) for line in traceback] if isinstance(traceback, list) else [],
            }
        )
    if kind not in ("execute_result", "display_data"):
        return _note(f"[an output of type {clean_text(str(kind))[:40]!r} was removed by the grader]\n")
    data, kept, dropped = output.get("data") or {}, {}, []
    for mimetype, value in data.items() if isinstance(data, dict) else ():
        if mimetype == "text/plain":
            kept[mimetype] = clean_text(value)
        elif mimetype in ("image/png", "image/jpeg") and _is_base64(value):
            kept[mimetype] = value
        else:
            dropped.append(clean_text(str(mimetype))[:60])
    if dropped and "text/plain" not in kept:
        shown = ", ".join(sorted(dropped)[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
        kept["text/plain"] = f"[output removed by the grader: {shown}; it keeps text and PNG/JPEG images]"
    metadata = {}
    for mimetype in ("image/png", "image/jpeg"):
        size = (output.get("metadata") or {}).get(mimetype)
        if mimetype in kept and isinstance(size, dict):
            sizes = {k: v for k, v in size.items() if k in ("width", "height") and type(v) is int and 0 < v < 10**5}
            if sizes:
                metadata[mimetype] = sizes
    result = {"output_type": kind, "data": kept, "metadata": metadata}
    if kind == "execute_result":
        count = output.get("execution_count")
        result["execution_count"] = count if type(count) is int else None
    return from_dict(result)


class SanitizeOutputs(NbGraderPreprocessor):
    """Make every code cell's outputs safe to render in the formgrader and the feedback."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [sanitize_output(output) for output in cell.get("outputs", [])]
        return cell, resources


# ---------------------------------------------------------------- markdown the student wrote

_SAFE_TOKENS = {
    "paragraph",
    "text",
    "emphasis",
    "strong",
    "codespan",
    "linebreak",
    "softbreak",
    "heading",
    "list",
    "list_item",
    "block_text",
    "block_code",
    "block_quote",
    "thematic_break",
    "blank_line",
    "table",
    "table_head",
    "table_body",
    "table_row",
    "table_cell",
    "strikethrough",
    "task_list_item",
    "def_list",
    "def_list_head",
    "def_list_item",
    "inline_math",
    "block_math",
    "link",
    "image",
}
# TeX that MathJax turns into links, HTML, styles or loaded code.
_ACTIVE_TEX = re.compile(r"\\(?:href|url|html|style|class|cssId|require|unicode|data|mmlToken|bbox|toggle)\b")
_ALLOWED_TAGS = {
    "p",
    "a",
    "img",
    "code",
    "pre",
    "span",
    "div",
    "em",
    "strong",
    "del",
    "br",
    "hr",
    "blockquote",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "input",
    *(f"h{level}" for level in range(1, 7)),
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "li": {"class"},
    "input": {"class", "type", "disabled", "checked"},
    "th": {"style"},
    "td": {"style"},
    "div": {"class"},
    "span": {"class"},
    "code": {"class"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}


def _address(url: str) -> str:
    """A URL as a browser reads its scheme: entities decoded, controls and spaces removed, lower case."""
    return re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(url or "")).lower()


def safe_link(url: str) -> bool:
    """A link a click on which cannot run code: http(s), mailto, or an address without a scheme."""
    address = _address(url)
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", address)
    return scheme is None or scheme.group(1) in ("http", "https", "mailto")


def safe_image(url: str, attachments: dict) -> bool:
    """An image the page shows without fetching anything: a PNG or JPEG attachment, or data URL."""
    address = _address(url)
    if address.startswith("attachment:"):
        return url.strip()[len("attachment:") :] in attachments
    return re.fullmatch(r"data:image/(png|jpeg);base64,[a-z0-9+/=]*", address) is not None


class _HTMLCheck(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in _ALLOWED_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name not in _ALLOWED_ATTRIBUTES.get(tag, set()):
                self.problems.append(f"{tag} {name}=")
            elif name == "href" and not safe_link(value):
                self.problems.append("a link")
            elif name == "src" and not re.fullmatch(
                r"(?:data:image/(png|jpeg);base64,[A-Za-z0-9+/=]*|attachment:.*)", value
            ):
                self.problems.append("an image")
            elif name == "style" and not re.fullmatch(r"text-align:(left|right|center)", value):
                self.problems.append("a style")
            elif name == "type" and value != "checkbox":
                self.problems.append("an input")

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.problems.append("an HTML comment")

    def handle_decl(self, decl):
        self.problems.append("a declaration")

    def handle_pi(self, data):
        self.problems.append("a processing instruction")

    def unknown_decl(self, data):
        self.problems.append("a declaration")


def markdown_problems(source: str, attachments: dict | None = None) -> list[str]:
    """What makes a markdown source unsafe to render (empty when it is plain Markdown)."""
    attachments = attachments or {}
    problems = []
    try:
        tokens, _ = MarkdownWithMath(renderer=None).parse(source)
    except Exception as error:  # noqa: BLE001 - a parser failure means: do not render it
        return [f"it does not parse ({type(error).__name__})"]

    def walk(items):
        for token in items:
            kind = token.get("type")
            if kind not in _SAFE_TOKENS:
                problems.append("HTML" if kind in ("block_html", "inline_html") else f"a {kind}")
            url = (token.get("attrs") or {}).get("url")
            if kind == "link" and not safe_link(url):
                problems.append("a link that runs code")
            if kind == "image" and not safe_image(url, attachments):
                problems.append("an image that is not an attached PNG or JPEG")
            if kind in ("inline_math", "block_math") and _ACTIVE_TEX.search(token.get("raw", "")):
                problems.append("TeX that makes links or HTML")
            walk(token.get("children") or [])

    walk(tokens)
    if not problems:  # the parser agrees; check what the renderer makes of it too
        check = _HTMLCheck()
        try:
            check.feed(markdown2html_mistune(source) if not attachments else _render(source, attachments))
            check.close()
        except Exception as error:  # noqa: BLE001
            return [f"it does not render ({type(error).__name__})"]
        problems += check.problems
    return list(dict.fromkeys(problems))


def _render(source: str, attachments: dict) -> str:
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)


def as_text(source: str, problems: list[str]) -> str:
    """Markdown that shows ``source`` verbatim, as text in a code block, with a note saying why."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
    why = ", ".join(re.sub(r"[^a-zA-Z0-9 ()/-]", "", p) for p in problems[:3])
    return (
        f"*The grader shows this answer as text: it holds {why}, which it does not render.*\n\n"
        f"{fence}text\n{source}\n{fence}\n"
    )


def _safe_attachments(attachments) -> dict:
    if not isinstance(attachments, dict):
        return {}
    kept = {}
    for name, bundle in attachments.items():
        if isinstance(bundle, dict):
            images = {m: v for m, v in bundle.items() if m in ("image/png", "image/jpeg") and _is_base64(v)}
            if images and isinstance(name, str) and re.fullmatch(r"[\w.\-]+", name):
                kept[name] = images
    return kept


class SanitizeMarkdown(NbGraderPreprocessor):
    """Show every markdown cell a student could edit as text when it would render anything but
    plain Markdown; see the module docstring."""

    def preprocess_cell(self, cell, resources, index):
        if utils.is_locked(cell):
            return cell, resources
        if cell.cell_type == "markdown":
            source = _MARKDOWN_CONTROLS.sub("", cell.source if isinstance(cell.source, str) else "".join(cell.source))
            cell.source = source
            if "attachments" in cell:
                cell.attachments = _safe_attachments(cell.attachments)
                if not cell.attachments:
                    del cell["attachments"]
            problems = markdown_problems(source, cell.get("attachments"))
            if problems:
                self.log.warning("cell %s: shown as text (%s)", cell.get("id"), ", ".join(problems))
                cell.source = as_text(source, problems)
                cell.pop("attachments", None)
        elif cell.cell_type == "raw":
            for key in ("format", "raw_mimetype"):
                cell.metadata.pop(key, None)
        return cell, resources


class HideOutputsAfterGrading(NbGraderPreprocessor):
    """In feedback, drop the outputs of the code cells after the first graded cell (graded cells
    keep theirs: the grader wrote them); see the module docstring."""

    def preprocess(self, nb, resources):
        graded = False
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if utils.is_grade(cell):
                graded = True
            elif graded and cell.get("outputs"):
                cell.outputs = [
                    _note("[outputs of cells that ran after the first graded cell are not shown in feedback]\n")
                ]
        return nb, resources
