"""The grading engine: run a part's checks on a student's function, score it, explain failures.

A *part* is one graded exercise, declared by its week package as a ``Part`` and called as
``grade.<part>(student)``. Its checks, the ``CHECKS`` of the part's own module, are
functions ``check(student, case)`` that raise ``CheckFailed`` with what was expected, what
was seen and a hint; ``_run_checks`` runs them and returns a ``PartResult``.

Checks reach student code only through their ``Case``: ``case.call`` calls it,
``case.callback`` wraps a grader function that student code may call, ``case.measure``
calls it once where its peak memory and CPU time are measured. The session behind the case
decides where that happens:

- in a student's own notebook, ``LocalSession`` (``lcteach.grading.local``): the self-check,
  run in the student's process under a guard;
- when an instructor grades, ``RemoteSession`` (``lcteach.grading.remote``): the checks run in
  the trusted grader's process (``judge_remote``) and call the function the sandboxed kernel
  handed over (``lcteach.grading.handoff``) through the channel; measured calls go to a fresh
  measuring process. The kernel never holds an input's expected value or the hidden seed.

Importing this module loads neither torch nor a check module: a week package imports
``Part`` from here, and ``from lcteach.grading import week1 as grade`` stays light.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lcteach.grading.results import CheckFailed, CheckOutcome, PartResult, first_line

if TYPE_CHECKING:
    import torch

PUBLIC_SEED = 0  # seeds the self-check; graded runs draw a seed per submission and part


@dataclass
class Case:
    """What a check gets besides the student's function: a seeded generator, the run's kind, and
    the ways to run student code."""

    generator: torch.Generator
    graded: bool
    session: object = field(repr=False, default=None)

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], drawn from the case's generator."""
        import torch

        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def randn(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normal samples drawn in float64, then cast to ``dtype`` (default float32)."""
        import torch

        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(dtype or torch.float32)

    def call(self, fn: Callable, *args, **kwargs):
        """Call student code (the student's function, an object it returned, or a tool such as
        FlexAttention's ``create_mask`` applied to it) and return its result as data; an
        exception becomes a failed check. The code never gets the check's own tensors: a
        function that writes into its inputs cannot change what the check compares."""
        return self.session.call(fn, args, kwargs)

    def method(self, obj, name: str) -> Callable:
        """The method ``name`` of an object the student's code returned (a cache, a memory), for
        ``case.call``: objects keep their state between calls, in whichever process holds them."""
        return self.session.method(obj, name)

    def callback(self, fn: Callable):
        """``fn``, a grader function, as an argument student code may call (it runs in the grader's process)."""
        return self.session.callback(fn)

    def measure(self, *args, **kwargs):
        """Call the student's function once where its work is measured: a ``Measured`` (value,
        peak_bytes above the process's baseline, cpu_seconds)."""
        return self.session.measure(args, kwargs)


Check = Callable[[Callable, Case], None]


def check(name: str, weight: int = 1) -> Callable[[Check], Check]:
    """Decorator naming a check as the student will read it in the report, with its share of the points."""

    def wrap(fn: Check) -> Check:
        fn.check_name, fn.check_weight = name, weight
        return fn

    return wrap


class _PartDoc:
    """``Part.__doc__``: the class's docstring on the class; on a part, what it grades (this loads its checks)."""

    def __init__(self, text: str):
        self.text = text

    def __get__(self, part: Part | None, owner=None) -> str:
        if part is None:
            return self.text
        checks = "; ".join(c.check_name for c in part.checks)
        return f"Grade the student's ``{part.__name__}`` ({part.points:g} points): {checks}"


class Part:
    __doc__ = _PartDoc(
        """One graded part, as its week package declares it: ``Part(__name__, "dense_attention", 3,
    "part1_dense_attention")`` in ``lcteach/grading/week1/__init__.py``.

    Calling it grades, ``grade.dense_attention(student, seed=None) -> PartResult``, like a
    function named after the part. Its checks are the ``CHECKS`` of the module
    ``<package>.<module>``, loaded when first needed: declaring parts loads no check module
    and no reference implementation. Its id is ``<package>.<name>``. The module's name
    must differ from the part's, since importing ``package.module`` sets that attribute of the
    package."""
    )

    def __init__(self, package: str, name: str, points: float, module: str):
        if not (name.isidentifier() and module.isidentifier()) or module == name:
            raise ValueError(f"a part and its module need two different identifiers, got {name!r} and {module!r}")
        self.package, self.module, self.points = package, module, points
        self.__name__ = self.__qualname__ = name
        self.__module__ = package

    @property
    def id(self) -> str:
        """The part's full name, e.g. ``lcteach.grading.week1.dense_attention``."""
        return f"{self.package}.{self.__name__}"

    @functools.cached_property
    def checks(self) -> tuple[Check, ...]:
        """The ``CHECKS`` of the part's module, in order."""
        return tuple(importlib.import_module(f"{self.package}.{self.module}").CHECKS)

    def __call__(self, student, seed: int | None = None) -> PartResult:
        """The self-check in a student's notebook; in the autograding kernel, the hand-off of
        ``student`` to the trusted grader (``lcteach.grading.handoff``), which judges it."""
        from lcteach.grading.handoff import grading_mode, hand_off

        if grading_mode():
            return hand_off(f"{self.package.rpartition('.')[2]}.{self.__name__}", student)
        return grade_part(self.id, self.points, self.checks, student, seed)

    def __repr__(self) -> str:
        return f"<Part {self.id} ({self.points:g} points, checks in {self.module})>"


def grade_part(part: str, max_points: float, checks: Sequence[Check], student, seed: int | None) -> PartResult:
    """Run every check of a part on ``student`` in this process (the self-check), print the report."""
    from lcteach.grading.local import LocalSession

    result = _run_checks(part, max_points, checks, LocalSession(student), seed, _not_callable(student))
    print(result.report())
    return result


def judge_remote(part: Part, client, student, seed: int, measurer=None) -> PartResult:
    """Run a part's checks in this (trusted) process on a student's function held by the other end
    of ``client`` (a ``channel.Client``); ``measurer()`` starts the measuring process on first need."""
    from lcteach.grading.channel import Remote
    from lcteach.grading.remote import RemoteSession

    kind = None if isinstance(student, Remote) and student.is_callable else _not_callable(student)
    session = RemoteSession(client, student, measurer)
    try:
        return _run_checks(part.id, part.points, part.checks, session, seed, kind)
    finally:
        session.close()


def _not_callable(student) -> str | None:
    """The type name of a student's entry that is not a function, or None."""
    from lcteach.grading.channel import Remote

    if isinstance(student, Remote):
        return student.kind
    if callable(student):
        return None
    return vars(type)["__name__"].__get__(type(student), type)


def find_part(part) -> Part:
    """The part named ``lcteach.grading.<week>.<name>``; ValueError if there is none."""
    module_name, _, name = part.rpartition(".") if type(part) is str else ("", "", "")
    if not module_name.startswith("lcteach.grading.") or not name.isidentifier():
        raise ValueError(f"not a graded part: {part!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ValueError(f"no grading package {module_name!r}") from None
    grade = getattr(module, name, None)
    if grade not in getattr(module, "PARTS", ()):
        raise ValueError(f"{module_name} has no part {name!r}")
    return grade


def _run_checks(
    part: str, max_points: float, checks: Sequence[Check], session, seed: int | None, not_callable: str | None
) -> PartResult:
    import torch

    graded = seed is not None
    outcomes = []
    for index, run_check in enumerate(checks):
        name, weight = run_check.check_name, run_check.check_weight
        if not_callable is not None:
            outcomes.append(
                CheckOutcome(
                    name,
                    False,
                    f"expected a function, got {not_callable}",
                    "define the function in the cell above and run that cell",
                    weight,
                )
            )
            continue
        if session.delegated_to:
            outcomes.append(CheckOutcome(name, False, "not run: the function delegates", weight=weight))
            continue
        if session.stopped:  # one stuck call per grade: the cell stays within its own time limit
            outcomes.append(CheckOutcome(name, False, f"not run: {session.stopped}", weight=weight))
            continue
        generator = torch.Generator().manual_seed((PUBLIC_SEED if seed is None else seed) * 1000 + index)
        try:
            run_check(session.student, Case(generator, graded, session))
        except CheckFailed as failure:
            outcomes.append(CheckOutcome(name, False, failure.message, failure.hint, weight, failure.details))
        except Exception as error:  # noqa: BLE001 - a result the checks did not foresee fails its check only
            outcomes.append(
                CheckOutcome(
                    name,
                    False,
                    f"the result could not be checked ({type(error).__name__})",
                    "return the types the exercise asks for",
                    weight,
                    first_line(error),  # torch's message may quote the hidden sizes
                )
            )
        else:
            outcomes.append(CheckOutcome(name, True, weight=weight))
    return PartResult(part.rpartition(".")[2], max_points, outcomes, session.delegated_to, graded)
