"""The trusted session: a part's checks call the student's function through the channel.

``RemoteSession`` is what a check's ``case.call`` goes through when the trusted grader judges
a submission: the student's function is a ``channel.Remote`` held by the sandboxed kernel,
FlexAttention's ``create_mask`` and the grader's probes run there as tools, a grader's
callback runs here, and ``case.measure`` sends the call to the measuring process
instead. Nothing the student's process says is taken for more than a returned value.
"""

from __future__ import annotations

from collections.abc import Callable

from lcteach.grading.channel import (
    TOOLS,
    Callback,
    ChannelError,
    ChannelTimeout,
    Client,
    Remote,
    RemoteMethod,
    StudentRaised,
    Tool,
    tool,
)
from lcteach.grading.results import CheckFailed


def _tools() -> dict[Callable, str]:
    """This process's copies of the student's side's tools, each mapped to its name in ``TOOLS``."""
    return {tool(name): name for name in TOOLS}


class RemoteSession:
    """Calls into the student's process; ``measurer()`` starts the measuring process on first need."""

    def __init__(self, client: Client, student, measurer: Callable[[], object] | None = None):
        self.client, self.student = client, student
        self._start_measurer, self._measurer = measurer, None
        self.stopped: str | None = None  # why no further call can be made
        self.delegated_to: str | None = None  # the references are not in the sandbox: never set
        self._tool_names = _tools()

    def call(self, fn, args: tuple, kwargs: dict):
        return self._through(self.client.call, self._target(fn), args, kwargs)

    def method(self, obj, name: str) -> RemoteMethod:
        if not isinstance(obj, Remote):
            raise CheckFailed(
                f"expected an object, got {type(obj).__name__}", "return the object the exercise asks for"
            )
        return obj.method(name)

    def callback(self, fn: Callable) -> Callback:
        return Callback(fn)

    def measure(self, args: tuple, kwargs: dict):
        """The student's function called once in the measuring process: a ``Measured``."""
        if self._start_measurer is None:
            raise CheckFailed("this grading run cannot measure", "grade the notebook with make grade")
        if self._measurer is None:
            try:
                self._measurer = self._start_measurer()
            except (ChannelError, OSError) as error:
                self.stopped = "the measuring process did not start"
                raise CheckFailed(
                    f"your notebook's code did not start in the measuring process ({error})",
                    "the cells above must run top to bottom without the notebook's earlier state",
                ) from None
        measurer = self._measurer
        return self._through(measurer.measure, measurer.student, args, kwargs)

    def close(self) -> None:
        if self._measurer is not None:
            self._measurer.release()

    def _target(self, fn):
        if isinstance(fn, (Remote, RemoteMethod)):
            return fn
        name = self._tool_names.get(fn)
        if name is None:
            raise TypeError(f"{fn!r} is neither the student's code nor one of its tools")
        return Tool(name)

    def _through(self, call: Callable, target, args: tuple, kwargs: dict):
        if self.stopped:
            raise CheckFailed(f"not run: {self.stopped}")
        try:
            return call(target, *args, **kwargs)
        except StudentRaised as error:
            raise CheckFailed(
                f"your function raised {error.type_name}: {error.message or '(no message)'}",
                "run your function on a small example in a scratch cell and read the traceback",
                raised=error,
            ) from None
        except ChannelTimeout:
            self.stopped = "an earlier call ran out of time"
            raise CheckFailed(
                f"your function was still running after {self.client.time_limit:g} s and was stopped",
                "look for a loop whose condition never becomes false",
            ) from None
        except ChannelError as error:
            self.stopped = "the notebook's process stopped answering"
            raise CheckFailed(
                f"the grader lost your function's process ({error})",
                "a function that exits, crashes the process or runs out of memory ends the grading of its part",
            ) from None
