"""What grading a part produces: a failed check, the outcome of each check, the part's result.

``PartResult``'s ``repr`` is the points earned, so a graded notebook cell that ends with
``grade.<part>(fn)`` gives nbgrader its partial credit, while ``report()`` is printed for the
student. This module loads no torch: the judge's summary and the report read it alone.

A failed check tells the student what went wrong in two layers. Its *message* and *hint* say
what was expected, what was seen and the mistake it matches, in words that hold whatever the
inputs were: the self-check and the graded feedback both show them. Its *details* say what
it was seen on (the inputs, the entries that differ, the values expected and returned): only
the self-check shows them, and a graded run says that they are withheld, because on a graded
run they would describe the hidden inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

HIDDEN_NOTE = "seen on the hidden inputs, which the feedback does not show"


class CheckFailed(Exception):
    """A check did not pass: ``message`` says what was expected and seen, ``hint`` how to fix it.

    Neither may hold a value drawn for the check (a size, a seed, an entry) or a value expected
    on such inputs: those go in ``details``, which graded runs withhold. ``raised`` is set when the
    student's code raised: a ``channel.StudentRaised`` naming the exception's type, so that
    checks test the kind of error by type, never by its message. The exception's own message
    may quote the inputs, so it becomes the details, and the message names the type alone
    (unless ``details`` is given: a check that wraps such a failure passes its details on).
    """

    def __init__(self, message: str, hint: str = "", raised=None, details: str | None = None):
        if details is None and raised is not None:
            lines = (raised.message or "").strip().splitlines()
            message, details = f"your function raised {raised.type_name}", lines[0][:300] if lines else ""
        details = details or ""
        super().__init__(message)
        self.message, self.hint, self.raised, self.details = str(message), hint, raised, details

    def reworded(self, message: str | None = None, hint: str | None = None) -> CheckFailed:
        """This failure with another message or hint; what the student's code raised and the details stay."""
        return CheckFailed(
            self.message if message is None else message,
            self.hint if hint is None else hint,
            raised=self.raised,
            details=self.details,
        )

    def raised_a(self, kind: type[BaseException]) -> bool:
        """Whether this failure is the student's code raising ``kind`` (or a subclass)."""
        return self.raised is not None and self.raised.is_a(kind)

    def full_text(self) -> str:
        """The message with its details: what a check may search, e.g. for torch's vmap error."""
        return f"{self.message} {self.details}"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    message: str = ""
    hint: str = ""
    weight: int = 1
    details: str = ""  # what the failure was seen on: the self-check shows it, a graded run withholds it


@dataclass
class PartResult:
    """Outcome of one graded part. ``repr`` is the score alone, as nbgrader's partial credit needs."""

    part: str
    max_points: float
    outcomes: list[CheckOutcome]
    delegated_to: str | None = None
    graded: bool = False

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def points(self) -> float:
        """max_points times the weighted fraction of checks passed; 0 for a delegating function."""
        if self.delegated_to or not self.outcomes:
            return 0.0
        earned = sum(o.weight for o in self.outcomes if o.passed)
        return round(self.max_points * earned / sum(o.weight for o in self.outcomes), 2)

    def __repr__(self) -> str:
        return f"{self.points:g}"

    def __float__(self) -> float:
        return self.points

    def report(self) -> str:
        """What the student reads: every check, and for a failed one its message and hint; the
        details too in a self-check, in a graded run only the note that they are withheld."""
        kind = "graded run" if self.graded else "self-check"
        lines = [f"{self.part} ({kind}): {self.passed}/{len(self.outcomes)} checks passed"]
        if self.delegated_to:
            lines.append(
                f"  ✗ no credit: your function calls {self.delegated_to}, which does the exercise for you. "
                "Write it with plain torch operations."
            )
        for outcome in self.outcomes:
            mark = "✓" if outcome.passed else "✗"
            lines.append(f"  {mark} {outcome.name}")
            if outcome.passed:
                continue
            lines.append(f"      {outcome.message}")
            if outcome.details:
                lines.append(f"      ({HIDDEN_NOTE})" if self.graded else f"      details: {outcome.details}")
            if outcome.hint:
                lines.append(f"      hint: {outcome.hint}")
        lines.append(f"  score: {self.points:g} / {self.max_points:g}")
        return "\n".join(lines)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, at most 300 characters: what a report shows of it."""
    text = str(error).strip().splitlines()
    return text[0][:300] if text else "(no message)"
