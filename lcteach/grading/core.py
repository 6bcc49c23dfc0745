"""The grading engine: run a part's checks on a student's function, score it, explain failures.

A *part* is one graded exercise: a list of checks, each a function ``check(student, case)``
that raises ``CheckFailed`` with what was expected, what was seen and a hint. ``grade_part``
runs them and returns a ``PartResult`` whose ``repr`` is the points earned, so a graded
notebook cell that ends with ``grade.<part>(fn)`` gives nbgrader its partial credit, while
the report is printed for the student.

Checks see student code only through ``case.call``, which runs it under a guard that
- records any call into lcteach's reference implementations or torch's fused attention
  (a part that delegates earns nothing),
- sends warnings and progress bars to stdout (nbgrader scores a cell with stderr output 0),
- turns any exception into a failed check, so one broken function costs only its part,
and hands the check plain data (``record.py``), never the student's objects. Every result is
written to the part's grading record. The autograder takes that record out of the kernel and
``judge`` replays the same checks on it in a trusted process: that replay, not the kernel's
own report, decides the grade.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.nn.attention.flex_attention import create_mask

from lcteach.grading import record
from lcteach.grading.policy import STUDENT_TOOLS

PUBLIC_SEED = 0  # seeds the self-check; graded runs pass their own seed from hidden test code


class CheckFailed(Exception):
    """A check did not pass: ``message`` says what was expected and seen, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


class DelegationDetected(Exception):
    """The student's function called code that does the exercise for it."""


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
    record: dict | None = field(default=None, repr=False)

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

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The score, and in an autograding kernel (LCTEACH_GRADING_RECORD=1) the grading record."""
        bundle = {"text/plain": repr(self)}
        if self.record is not None and os.environ.get("LCTEACH_GRADING_RECORD") == "1":
            bundle[record.MIMETYPE] = self.record
        return bundle

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


@dataclass
class Case:
    """What a check gets besides the student's function: a seeded generator, the run's kind, and
    ``call`` to run student code."""

    generator: torch.Generator
    graded: bool
    session: Recording | Replay = field(repr=False, default=None)

    @property
    def guard(self) -> StudentGuard | Replay:
        return self.session.guard

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], drawn from the case's generator."""
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(dtype)

    def call(self, fn: Callable, *args, **kwargs):
        """Call student code under the guard and return its result as plain data (functions stay
        functions); an exception becomes a failed check. The code gets copies of tensor, list,
        tuple and dict arguments: one that writes into its inputs cannot change the inputs the
        check goes on to use (the trusted replay never sees such writes)."""
        return self.session.call(fn, args, kwargs)

    def observe(self, value):
        """Record what a grader callback saw during student calls (replay returns the recorded value)."""
        return self.session.observe(value)


Check = Callable[[Callable, Case], None]


def check(name: str, weight: int = 1) -> Callable[[Check], Check]:
    """Decorator naming a check as the student will read it in the report, with its share of the points."""

    def wrap(fn: Check) -> Check:
        fn.check_name, fn.check_weight = name, weight
        return fn

    return wrap


def make_part(module: str, name: str, points: float, *checks: Check):
    """The grade function of one part, ``grade.<name>(student, seed=None)``, from its checks."""

    def grade(student, seed: int | None = None) -> PartResult:
        return grade_part(f"{module}.{name}", points, checks, student, seed)

    grade.__name__ = grade.__qualname__ = name
    grade.__module__ = module
    grade.points, grade.checks = points, checks
    grade.__doc__ = f"Grade the student's ``{name}`` ({points:g} points): " + "; ".join(c.check_name for c in checks)
    return grade


def grade_part(part: str, max_points: float, checks: Sequence[Check], student, seed: int | None) -> PartResult:
    """Run every check of a part on ``student``, print the report, return the result with its record."""
    session = Recording(student)
    kind = None if callable(student) else record.type_name(student)
    result = _run_checks(part, max_points, checks, session, seed, kind)
    result.record = {
        "version": record.VERSION,
        "part": part,
        "seed": seed,
        "not_callable": kind,
        "checks": session.checks,
    }
    print(result.report())
    return result


def judge(grading_record: dict) -> PartResult:
    """Replay a part's checks on a grading record; the trusted side of grading.

    Raises record.RecordError when the record is damaged or names no known part.
    """
    if type(grading_record) is not dict or grading_record.get("version") != record.VERSION:
        raise record.RecordError("not a grading record of this lcteach version")
    part, seed, kind = grading_record.get("part"), grading_record.get("seed"), grading_record.get("not_callable")
    grade = _find_part(part)
    if seed is not None and type(seed) is not int or kind is not None and type(kind) is not str:
        raise record.RecordError("the record's seed or student entry is damaged")
    checks = grading_record.get("checks")
    if type(checks) is not list or len(checks) > len(grade.checks) or any(type(c) is not list for c in checks):
        raise record.RecordError("the record's check list is damaged")
    return _run_checks(part, grade.points, grade.checks, Replay(checks), seed, kind)


def _find_part(part) -> Callable:
    """The grade function a record names, e.g. ``lcteach.grading.week1.dense_attention``."""
    import importlib

    module_name, _, name = part.rpartition(".") if type(part) is str else ("", "", "")
    if not module_name.startswith("lcteach.grading.") or not name.isidentifier():
        raise record.RecordError(f"the record names no graded part ({part!r})")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise record.RecordError(f"the record names an unknown module {module_name!r}") from None
    grade = getattr(module, name, None)
    if grade not in getattr(module, "PARTS", ()):
        raise record.RecordError(f"the record names an unknown part {part!r}")
    return grade


def _run_checks(
    part: str, max_points: float, checks: Sequence[Check], session, seed: int | None, not_callable: str | None
) -> PartResult:
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
        if session.guard.delegated_to:
            outcomes.append(CheckOutcome(name, False, "not run: the function delegates", weight=weight))
            continue
        if session.guard.timed_out:  # one stuck call per grade: the cell stays within its own time limit
            outcomes.append(CheckOutcome(name, False, "not run: an earlier call ran out of time", weight=weight))
            continue
        generator = torch.Generator().manual_seed((PUBLIC_SEED if seed is None else seed) * 1000 + index)
        session.start_check()
        try:
            run_check(session.student, Case(generator, graded, session))
            session.end_check()
        except CheckFailed as failure:
            outcomes.append(CheckOutcome(name, False, failure.message, failure.hint, weight))
        except Exception as error:  # noqa: BLE001 - a result the checks did not foresee fails its check only
            outcomes.append(
                CheckOutcome(
                    name,
                    False,
                    f"the result could not be checked ({type(error).__name__}: {_first_line(error)})",
                    "return the types the exercise asks for",
                    weight,
                )
            )
        else:
            outcomes.append(CheckOutcome(name, True, weight=weight))
    return PartResult(part.rpartition(".")[2], max_points, outcomes, session.guard.delegated_to, graded)


class Recording:
    """Runs a check's student calls under the guard and writes down what each returned or raised."""

    def __init__(self, student: Callable):
        self.student = student
        self.guard = StudentGuard()
        self.checks: list[list[dict]] = []

    def start_check(self) -> None:
        self.checks.append([])

    def end_check(self) -> None:
        pass

    def call(self, fn: Callable, args, kwargs):
        before = self.guard.delegated_to
        args, kwargs = _private_copy(args), _private_copy(kwargs)
        try:
            value = self.guard.call(fn, *args, **kwargs)
        except CheckFailed as failure:
            self._write({"error": failure.message, "hint": failure.hint}, before)
            raise
        encoded = record.encode(value)
        self._write({"result": encoded}, before)
        return value if callable(value) and type(encoded) is dict and "opaque" in encoded else record.decode(encoded)

    def observe(self, value):
        self._write({"observed": record.encode(value)}, self.guard.delegated_to)
        return record.decode(record.encode(value))

    def _write(self, entry: dict, delegated_before: str | None) -> None:
        if self.guard.delegated_to != delegated_before:
            entry["delegated_to"] = self.guard.delegated_to
        if self.guard.timed_out:
            entry["timed_out"] = True
        self.checks[-1].append(entry)


def _private_copy(value):
    """``value`` with every tensor cloned and every list, tuple and dict rebuilt; other objects as they are."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if type(value) in (list, tuple):
        return type(value)(_private_copy(item) for item in value)
    if type(value) is dict:
        return {key: _private_copy(item) for key, item in value.items()}
    return value


class Replay:
    """Plays a grading record back to the checks: each student call returns what it returned in the kernel."""

    student = record.OpaqueFunction()

    def __init__(self, checks: list[list[dict]]):
        self.guard = self  # checks reach the guard through the case: delegation and trusted callbacks
        self.delegated_to: str | None = None
        self.timed_out = False
        self._checks = iter(checks)
        self._entries: Iterator[dict] = iter(())

    @staticmethod
    def trusted(fn: Callable) -> Callable:
        return fn

    def start_check(self) -> None:
        self._entries = iter(next(self._checks, []))

    def end_check(self) -> None:
        if next(self._entries, None) is not None:
            raise CheckFailed(
                "the grading record holds calls this check does not make",
                "grade the notebook as released, without changing the test cells",
            )

    def call(self, fn: Callable, args, kwargs):
        entry = self._next("result", "error")
        if "error" in entry:
            raise CheckFailed(str(entry["error"]), str(entry.get("hint", "")))
        return record.decode(entry["result"])

    def observe(self, value):
        return record.decode(self._next("observed")["observed"])

    def _next(self, *kinds: str) -> dict:
        entry = next(self._entries, None)
        if type(entry) is not dict or not any(kind in entry for kind in kinds):
            raise CheckFailed(
                "the grading record ends before this check's calls",
                "the kernel stopped or the grader was changed during this check",
            )
        if entry.get("delegated_to"):
            self.delegated_to = str(entry["delegated_to"])
        self.timed_out = self.timed_out or entry.get("timed_out") is True
        return entry


# ---------------------------------------------------------------- guarding student code


def _code_objects(obj, seen: set) -> Iterable[types.CodeType]:
    """Every code object reachable from a function or class: methods and nested functions too."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        for accessor in (obj.fget, obj.fset, obj.fdel):
            if accessor is not None:
                yield from _code_objects(accessor, seen)
        return
    if isinstance(obj, functools.partial):
        obj = obj.func
    code = getattr(obj, "__code__", obj if isinstance(obj, types.CodeType) else None)
    if isinstance(code, types.CodeType):
        if code in seen:
            return
        seen.add(code)
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from _code_objects(const, seen)
    elif isinstance(obj, type) and obj not in seen:
        seen.add(obj)
        for value in vars(obj).values():
            yield from _code_objects(value, seen)


# Modules whose use is allowed in graded functions: tools, not answers.
_ALLOWED_MODULES = ("lcteach.grading", *STUDENT_TOOLS)


@functools.cache
def _forbidden() -> tuple[dict[types.CodeType, str], dict[int, str]]:
    """Code objects of lcteach's reference implementations and ids of torch's fused attention."""
    import importlib
    import pkgutil

    import lcteach

    codes: dict[types.CodeType, str] = {}
    seen: set = set()
    for info in pkgutil.walk_packages(lcteach.__path__, "lcteach."):
        if info.name.startswith(_ALLOWED_MODULES):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            for code in _code_objects(value, seen):
                codes[code] = f"{module.__name__}.{name}"
    builtins = {
        id(torch.nn.functional.scaled_dot_product_attention): "torch.nn.functional.scaled_dot_product_attention"
    }
    from torch.nn.attention import flex_attention

    for code in _code_objects(flex_attention.flex_attention, set()):
        codes[code] = "torch.nn.attention.flex_attention.flex_attention"
    return codes, builtins


class StudentGuard:
    """Runs student code: catches exceptions, keeps stderr clean, records delegation."""

    def __init__(self):
        self.delegated_to: str | None = None
        self.timed_out = False

    def _profile(self, frame, event, arg):
        codes, builtins = _forbidden()
        if event == "call" and frame.f_code in codes:
            self.delegated_to = codes[frame.f_code]
        elif event == "c_call" and id(arg) in builtins:
            self.delegated_to = builtins[id(arg)]
        else:
            return
        raise DelegationDetected(self.delegated_to)  # stops the student's call at once

    def call(self, fn: Callable, *args, **kwargs):
        """Run ``fn`` guarded; its exceptions become CheckFailed."""
        _forbidden()  # build the table outside the profiled region
        previous, tampered, threads = sys.getprofile(), False, torch.get_num_threads()
        # One thread: student code runs many small ops, where thread hand-offs cost more than
        # they save, and a grading worker should not take the whole machine.
        torch.set_num_threads(1)
        try:
            with _time_limit(CALL_TIME_LIMIT), warnings.catch_warnings(), contextlib.redirect_stderr(sys.stdout):
                warnings.simplefilter("always")
                warnings.showwarning = _warning_to_stdout
                sys.setprofile(self._profile)
                try:
                    return fn(*args, **kwargs)
                finally:
                    tampered = sys.getprofile() != self._profile
                    sys.setprofile(previous)
        except DelegationDetected:
            raise CheckFailed(f"your function calls {self.delegated_to}") from None
        except StudentTimeout:
            tampered = False  # the alarm may land in the guard's own profile function, which switches it off
            self.timed_out = True
            raise CheckFailed(
                f"your function was still running after {CALL_TIME_LIMIT:g} s and was stopped",
                "look for a loop whose condition never becomes false",
            ) from None
        except Exception as error:  # noqa: BLE001 - an error in student code fails this check only
            raise CheckFailed(
                f"your function raised {type(error).__name__}: {_first_line(error)}",
                "run your function on a small example in a scratch cell and read the traceback",
            ) from None
        finally:
            torch.set_num_threads(threads)
            if tampered and self.delegated_to is None:
                self.delegated_to = "sys.setprofile (it switched off the grader's guard)"

    @staticmethod
    def trusted(fn: Callable) -> Callable:
        """Wrap a grader-supplied callback so that the code it runs is not held against the student."""

        @functools.wraps(fn)
        def run(*args, **kwargs):
            current = sys.getprofile()
            sys.setprofile(None)
            try:
                return fn(*args, **kwargs)
            finally:
                sys.setprofile(current)

        return run


# Seconds one call of student code may run; the autograder's sandbox sets it from its config.
CALL_TIME_LIMIT = float(os.environ.get("LCTEACH_CALL_TIME_LIMIT", 60))


def _warning_to_stdout(message, category, filename, lineno, file=None, line=None):
    print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stdout)


class StudentTimeout(Exception):
    """Raised inside student code that outlives CALL_TIME_LIMIT."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the block with StudentTimeout after ``seconds`` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise StudentTimeout()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else "(no message)"


# ---------------------------------------------------------------- comparisons


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) that a correct but differently ordered computation meets in ``dtype``."""
    return {
        torch.float64: (1e-9, 1e-11),
        torch.float32: (1e-4, 1e-5),
        torch.bfloat16: (2e-2, 2e-2),
        torch.float16: (5e-3, 5e-3),
    }.get(dtype, (1e-4, 1e-5))


def expect_tensor(
    value, what: str, shape: Sequence[int] | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Check that ``value`` is a plain tensor of the given shape and dtype; return it detached."""
    if type(value) is not torch.Tensor and not isinstance(value, torch.nn.Parameter):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailed(
            f"{what} should have shape {tuple(shape)}, got {tuple(value.shape)}",
            "check which dimensions your matmuls and reductions keep",
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(
            f"{what} should have dtype {dtype} (the inputs' dtype), got {value.dtype}",
            "create new tensors with dtype=q.dtype and device=q.device",
        )
    return value.detach()


def expect_close(
    seen: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    hint: str = "",
    mistakes: dict[str, torch.Tensor] | None = None,
) -> None:
    """Compare with dtype-fitting tolerances; name a known mistake the result matches, if any."""
    rtol, atol = tolerance(expected.dtype)
    if torch.isnan(seen).any() and not torch.isnan(expected).any():
        raise CheckFailed(f"{what} contains NaN where finite values were expected", hint)
    if torch.allclose(seen, expected, rtol=rtol, atol=atol, equal_nan=True):
        return
    error = (seen.double() - expected.double()).abs().nan_to_num(nan=math.inf).max().item()
    for mistake, wrong in (mistakes or {}).items():
        if wrong.shape == seen.shape and torch.allclose(seen, wrong, rtol=rtol, atol=atol, equal_nan=True):
            hint = f"your result matches {mistake}"
            break
    raise CheckFailed(
        f"{what} differs from the expected values: max abs error {error:.3g} "
        f"(tolerance {atol:g} + {rtol:g} x |expected|)",
        hint,
    )


def expect_pair(result, function: str, names: str):
    """Check that a student's function returned two values, e.g. names = "(out, weights)"."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"{function} should return a pair {names}, got {type(result).__name__}",
            f"end your function with `return {names.strip('()')}`",
        )
    return result


def expect_value_error(case: Case, fn: Callable, *args, call: str, hint: str) -> None:
    """Check that student code ``fn(*args)`` raises ValueError; ``call`` names the call in messages."""
    try:
        case.call(fn, *args)
    except CheckFailed as failure:
        if "ValueError" in failure.message:
            return
        raise CheckFailed(f"{call} should raise ValueError, but {failure.message}", hint) from None
    raise CheckFailed(f"{call} returned instead of raising ValueError", hint)


def student_mask(case: Case, mask_mod, n_q: int, n_k: int) -> torch.Tensor:
    """Materialise a student's mask_mod with FlexAttention's create_mask, as real code would: bool (n_q, n_k)."""
    if not callable(mask_mod):
        raise CheckFailed(
            f"expected a mask_mod function, got {type(mask_mod).__name__}",
            "a generate_... function must return its inner mask_mod function, not call it",
        )
    try:
        mask = case.call(create_mask, mask_mod, None, None, n_q, n_k, device="cpu")
    except CheckFailed as failure:
        if "vmap" not in failure.message:
            raise
        raise CheckFailed(
            failure.message,
            "use tensor operations (>=, -, %, &, |) on the indices, not Python "
            "if/and/or: FlexAttention calls mask_mod on tensors under torch.vmap",
        ) from None
    return expect_tensor(mask, "the materialised mask", (1, 1, n_q, n_k), torch.bool)[0, 0]


def expect_mask(seen: torch.Tensor, expected: torch.Tensor, what: str, mistakes: dict[str, torch.Tensor]) -> None:
    """Bool masks equal, or fail naming a differing entry and the known mistake ``seen`` matches, if any."""
    if torch.equal(seen, expected):
        return
    wrong = (seen != expected).nonzero()
    hint = next((f"your mask matches {name}" for name, m in mistakes.items() if torch.equal(seen, m)), "")
    i, j = wrong[0].tolist()
    raise CheckFailed(
        f"{what}: {len(wrong)} of {seen.numel()} entries differ; e.g. (query {i}, key {j}) "
        f"should be {'allowed' if expected[i, j] else 'blocked'}",
        hint,
    )
