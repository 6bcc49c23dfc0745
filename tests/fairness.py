"""The fairness corpus of a week: for every graded part, functions that are right in other ways
than the solution, and classic mistakes with the score each deserves and the check that must
find it. Graded through ``grading_helpers.run`` (in this process and through the channel, as the
trusted grader grades), so that every week is held to the same rules:

- a right function earns full marks, however it is written;
- a wrong one earns what it deserves: property points (shapes, stability, memory, seeds, errors
  for bad arguments, edge cases) count only when the values are right;
- its mistake is reported under the check that found it (that check's message is the finding,
  not "not counted"), and the checks it only blocks say "not counted";
- graded feedback names the mistake and a hint, but nothing of the hidden inputs: it reads the
  same for every hidden seed, and the student's own error messages do not reach it.

A week's test module binds the tests ``fairness_tests(grade, CORPUS)`` returns.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from grading_helpers import run

from lcteach.grading.results import HIDDEN_NOTE

GRADED_SEEDS = (4242, 9001)  # two hidden seeds: graded feedback must not change between them
NOT_COUNTED = "not counted"


@dataclass(frozen=True)
class Right:
    """A function that is right, written unlike the solution: it earns full marks."""

    name: str
    fn: Callable
    public: bool = True  # also graded on the public inputs (False for slow, measured parts)
    known: str = ""  # a known grader bug, with its reason: the test is then a non-strict xfail


@dataclass(frozen=True)
class Wrong:
    """A classic mistake: its score (or a range), the check that finds it and what that check says."""

    name: str
    fn: Callable
    points: float | tuple[float, float]
    fails: str  # the start of the name of the check that finds the real mistake
    says: str  # words of that check's message or hint, shown in graded feedback too
    not_counted: Sequence[str] = ()  # starts of names of checks that fail as "not counted"
    seed_invariant: bool = True  # False where a message shows a measured time, which varies by run
    known: str = ""  # a known grader bug, with its reason: the test is then a non-strict xfail


_MARKER = "SECRET-INPUTS-7f3a"


def _raise_with_inputs(*args, **kwargs):
    """A submission whose error message quotes every argument it got."""
    raise ValueError(f"{_MARKER} {args!r} {kwargs!r}"[:250])


def mask_mod_raising_with_inputs(b, h, q_idx, kv_idx):
    """The same for a part whose function is a mask_mod itself (create_mask wants four arguments)."""
    raise ValueError(f"{_MARKER} {q_idx!r} {kv_idx!r}"[:250])


def _outcome(result, prefix: str):
    matches = [o for o in result.outcomes if o.name.startswith(prefix)]
    assert len(matches) == 1, f"no single check starts with {prefix!r}: {[o.name for o in result.outcomes]}"
    return matches[0]


def _in_range(points: float, expected) -> bool:
    low, high = expected if isinstance(expected, tuple) else (expected, expected)
    return low - 0.006 <= points <= high + 0.006  # PartResult rounds points to 0.01


def _params(corpus: dict, kind: type, seeds: Callable) -> list:
    """pytest params (part, variant, *seed) of the corpus's variants of ``kind``, one for each
    tuple of ``seeds(variant)``: () for no seed, (None,) for the public inputs, (seed,) for a hidden
    seed; a variant with a known grader bug is a non-strict xfail."""
    return [
        pytest.param(
            part,
            variant,
            *seed,
            id="-".join([part.__name__, variant.name, *("public" if s is None else "graded" for s in seed)]),
            marks=[pytest.mark.xfail(reason=variant.known, strict=False)] if variant.known else [],
        )
        for part, variants in corpus.items()
        for variant in variants
        if isinstance(variant, kind)
        for seed in seeds(variant)
    ]


def fairness_tests(grade, corpus: dict, raisers: dict | None = None) -> tuple[Callable, ...]:
    """The fairness tests of a week: ``corpus`` maps each part of ``grade.PARTS`` to its variants;
    ``raisers`` gives a part whose function has a fixed signature its own function that raises with
    its arguments (default: one that takes any arguments).
    Bind them in the week's module as test_every_part_has_a_corpus, test_right_variants_earn_full_marks,
    test_wrong_variants_earn_what_they_deserve and test_graded_feedback_hides_the_students_inputs."""
    rights = _params(corpus, Right, lambda v: ((None,), (GRADED_SEEDS[0],)) if v.public else ((GRADED_SEEDS[0],),))
    wrongs = _params(corpus, Wrong, lambda v: ((),))

    def test_every_part_has_a_corpus():
        """At least two right-but-different and two classic wrong functions for every part."""
        assert set(corpus) == set(grade.PARTS)
        for part, variants in corpus.items():
            assert sum(isinstance(v, Right) for v in variants) >= 2, part
            assert sum(isinstance(v, Wrong) for v in variants) >= 2, part
            for variant in variants:
                if isinstance(variant, Wrong):
                    _outcome_names = [c.check_name for c in part.checks]
                    assert any(name.startswith(variant.fails) for name in _outcome_names), variant.name

    @pytest.mark.parametrize(("part", "variant", "seed"), rights)
    def test_right_variants_earn_full_marks(part, variant, seed, capsys):
        result, report = run(part, variant.fn, capsys, seed)
        assert result.points == part.points, report

    @pytest.mark.parametrize(("part", "variant"), wrongs)
    def test_wrong_variants_earn_what_they_deserve(part, variant, capsys):
        result, _ = run(part, variant.fn, capsys, GRADED_SEEDS[0])
        report = result.report()
        assert _in_range(result.points, variant.points), report
        found = _outcome(result, variant.fails)
        assert not found.passed, report
        assert not found.message.startswith(NOT_COUNTED), f"the mistake must be reported where it is found\n{report}"
        assert variant.says in f"{found.message} {found.hint}", report
        for prefix in variant.not_counted:
            blocked = _outcome(result, prefix)
            assert not blocked.passed and blocked.message.startswith(NOT_COUNTED), report
        # Graded feedback: the diagnosis, never the details; "hidden inputs" only where details were withheld.
        assert variant.says in report and "details:" not in report, report
        assert report.count(HIDDEN_NOTE) == sum(bool(o.details) for o in result.outcomes if not o.passed)
        if variant.seed_invariant:
            again = part(variant.fn, seed=GRADED_SEEDS[1])
            capsys.readouterr()
            changed = "\n".join(difflib.unified_diff(report.splitlines(), again.report().splitlines(), lineterm=""))
            assert not changed, f"graded feedback changed with the hidden seed:\n{changed}"

    @pytest.mark.parametrize("part", list(corpus), ids=lambda part: part.__name__)
    def test_graded_feedback_hides_the_students_inputs(part, capsys):
        """A submission that puts its arguments into its error messages: the self-check shows them,
        graded feedback names the error's type only."""
        raiser = (raisers or {}).get(part, _raise_with_inputs)
        graded, _ = run(part, raiser, capsys, GRADED_SEEDS[0])
        assert graded.points == 0 and _MARKER not in graded.report(), graded.report()
        assert "your function raised ValueError" in graded.report()
        public = part(raiser)
        capsys.readouterr()
        assert _MARKER in public.report()

    return (
        test_every_part_has_a_corpus,
        test_right_variants_earn_full_marks,
        test_wrong_variants_earn_what_they_deserve,
        test_graded_feedback_hides_the_students_inputs,
    )
