"""What grading a part produces: a failed check, the outcome of each check, the part's result.

``PartResult``'s ``repr`` is the points earned, so a graded notebook cell that ends with
``grade.<part>(fn)`` gives nbgrader its partial credit, while ``report()`` is printed for the
student. This module loads no torch: the judge's summary and the report read it alone.
"""

from __future__ import annotations

from dataclasses import dataclass


class CheckFailed(Exception):
    """A check did not pass: ``message`` says what was expected and seen, ``hint`` how to fix it.

    ``raised`` is set when the student's code raised: a ``channel.StudentRaised`` naming the
    exception's type, so that checks test the kind of error by type, never by its message.
    """

    def __init__(self, message: str, hint: str = "", raised=None):
        super().__init__(message)
        self.message, self.hint, self.raised = message, hint, raised

    def raised_a(self, kind: type[BaseException]) -> bool:
        """Whether this failure is the student's code raising ``kind`` (or a subclass)."""
        return self.raised is not None and self.raised.is_a(kind)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    message: str = ""
    hint: str = ""
    weight: int = 1


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
            if self.graded:  # the details would describe the hidden inputs
                lines.append("      failed on the hidden inputs; the self-check above shows what this check looks for")
                continue
            lines.append(f"      {outcome.message}")
            if outcome.hint:
                lines.append(f"      hint: {outcome.hint}")
        lines.append(f"  score: {self.points:g} / {self.max_points:g}")
        return "\n".join(lines)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, at most 300 characters: what a report shows of it."""
    text = str(error).strip().splitlines()
    return text[0][:300] if text else "(no message)"
