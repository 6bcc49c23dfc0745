"""The guard that student code runs under in the kernel.

``StudentGuard.call`` runs a student's function and
- records any call into lcteach's reference implementations or torch's fused attention
  (a part that delegates earns nothing), and stops the call there,
- sends warnings and progress bars to stdout (nbgrader scores a cell with stderr output 0),
- stops a call that outlives ``CALL_TIME_LIMIT``,
- turns any exception into a failed check, so one broken function costs only its part.
What student code may use from lcteach is ``lcteach.grading.policy.STUDENT_TOOLS``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterable

import torch

from lcteach.grading.policy import PRESENTATION_TOOLS, STUDENT_TOOLS
from lcteach.grading.results import CheckFailed, first_line

# Seconds one call of student code may run; the autograder's sandbox sets it from its config.
CALL_TIME_LIMIT = float(os.environ.get("LCTEACH_CALL_TIME_LIMIT", 60))


class DelegationDetected(Exception):
    """The student's function called code that does the exercise for it."""


class StudentTimeout(Exception):
    """Raised inside student code that outlives CALL_TIME_LIMIT."""


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


# Modules whose use is allowed in graded functions: tools, not answers (lcteach.lazy loads names).
_ALLOWED_MODULES = ("lcteach.grading", "lcteach.lazy", *STUDENT_TOOLS, *PRESENTATION_TOOLS)


_LCTEACH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
                # Code that lcteach's own files hold: methods a dataclass generates (its __repr__,
                # shared by every dataclass) come from the dataclasses module and are no answer.
                if code.co_filename.startswith(_LCTEACH_DIR):
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
            from lcteach.grading.channel import raised_by

            raise CheckFailed(
                f"your function raised {type(error).__name__}: {first_line(error)}",
                "run your function on a small example in a scratch cell and read the traceback",
                raised=raised_by(error),
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


def private_copy(value):
    """``value`` with every tensor cloned and every list, tuple and dict rebuilt; other objects as they are."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if type(value) in (list, tuple):
        return type(value)(private_copy(item) for item in value)
    if type(value) is dict:
        return {key: private_copy(item) for key, item in value.items()}
    return value


def _warning_to_stdout(message, category, filename, lineno, file=None, line=None):
    print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stdout)


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
